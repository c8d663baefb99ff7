"""Kaizen: a feature store and continuously improving ML workflows on rails."""

import os

# scikit-learn's HistGradientBoosting runs on GNU OpenMP, whose idle threads spin for a while
# before they sleep. On a shared 2-core box (Airflow tasks side by side, the tests, a second
# process) the spinning threads take the CPU the working ones need: one training fit took
# 122 s instead of 20 s under a load of 8. Passive waiting gives that back and costs little
# alone. Set before anything loads libgomp; an explicit OMP_WAIT_POLICY still wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
