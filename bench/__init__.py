"""Benchmarks: every hot path as a ratio to a raw baseline measured in the same run."""

import os
import sys
from pathlib import Path

# The environment `make bench` was started with, taken before any suite runs. Suites open
# Feast stores and GX contexts in this process, and those write their settings into
# os.environ (`feature_store.yaml` and `great_expectations.yml` expand variables): a child
# given os.environ would inherit another suite's temporary params file, registry or lake.
LAUNCH_ENV: dict[str, str] = dict(os.environ)

# The benchmarks run on the worked example (credit_risk): every project's own source folder
# (projects/<name>/src) is importable, as the test suite's root conftest makes it.
for _src in sorted((Path(__file__).resolve().parents[1] / "projects").glob("*/src")):
    if str(_src) not in sys.path:
        sys.path.insert(0, str(_src))
