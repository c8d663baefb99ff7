"""Prometheus metrics of one API process, in their own registry (never the global one, so two
apps in one process, as in the tests, do not collide).

With `--workers N` each worker counts its own requests and `/metrics` answers from whichever
worker took the scrape; scrape each worker, or run one worker per port, for exact totals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)

# Loopback requests take a few milliseconds; a slow feature store, tens to hundreds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
CONTENT_TYPE = CONTENT_TYPE_LATEST


@contextlib.contextmanager
def _in_process_values() -> Iterator[None]:
    """Importing Feast sets PROMETHEUS_MULTIPROC_DIR (feast/metrics.py, for its own Gunicorn
    workers), which would put every metric created afterwards in mmap files of a temp dir
    shared by unrelated instances. These metrics belong to this process and this app only.

    Not restored on exit: a labelled child (`.labels(...)`) is created at its first use, long
    after construction, and must get an in-process value too. Feast's multiprocess mode only
    matters in its own server's workers, which never run in a process that serves these."""
    values.ValueClass = values.MutexValue
    yield


class ServingMetrics:
    def __init__(self) -> None:
        with _in_process_values():
            self._create()

    def _create(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "kaizen_prediction_latency_seconds",
            "Time to answer a prediction request (features, scoring, logging hand-off).",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "kaizen_predictions_total",
            "Predictions made, per model version, alias and role (served or shadow).",
            ["model_version", "alias", "role", "decision"],
            registry=r,
        )
        self.errors = Counter(
            "kaizen_prediction_errors_total",
            "Failed requests and predictions, by reason.",
            ["reason"],
            registry=r,
        )
        self.log_dropped = Counter(
            "kaizen_prediction_log_dropped_total",
            "Prediction log rows dropped because the log's queue was full.",
            registry=r,
        )
        self.log_written = Counter(
            "kaizen_prediction_log_rows_written_total",
            "Prediction log rows written to the lake.",
            registry=r,
        )
        self.log_write_errors = Counter(
            "kaizen_prediction_log_write_errors_total",
            "Failed writes of a prediction log file (the rows are retried once, then dropped).",
            registry=r,
        )
        self.log_queued = Gauge(
            "kaizen_prediction_log_queued_rows",
            "Prediction log rows waiting to be written.",
            registry=r,
        )
        self.model = Gauge(
            "kaizen_model_loaded",
            "1 for the model version each alias serves (0: one it served before).",
            ["alias", "model_version"],
            registry=r,
        )
        self.swaps = Counter(
            "kaizen_alias_swaps_total",
            "Times the version behind an alias changed while serving.",
            ["alias"],
            registry=r,
        )
        self.refresh_errors = Counter(
            "kaizen_alias_refresh_errors_total",
            "Failed alias refreshes (the models loaded before keep serving).",
            registry=r,
        )
        self.explainer_warm = Gauge(
            "kaizen_explainer_warm",
            "1 once the explainer is compiled (kaizen serve warms it in the background after a "
            "start, and requests served meanwhile are slower: it shares the GIL), 0 before, "
            "-1 if that failed (the first /explain compiles it).",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
