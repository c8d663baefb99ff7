"""Benchmarks: every hot path as a ratio to a raw baseline measured in the same run."""

import os

# The environment `make bench` was started with, taken before any suite runs. Suites open
# Feast stores and GX contexts in this process, and those write their settings into
# os.environ (`feature_store.yaml` and `great_expectations.yml` expand variables): a child
# given os.environ would inherit another suite's temporary params file, registry or lake.
LAUNCH_ENV: dict[str, str] = dict(os.environ)
