"""Prometheus metrics of one API process, in their own registry (never the global one, so two
apps in one process, as in the tests, do not collide). Every family has a `project` label:
one process serves several projects, and `ServingMetrics.for_project(name)` is one
project's view of the families, with that label bound.

With `--workers N` each worker counts its own requests and `/metrics` answers from whichever
worker took the scrape; scrape each worker, or run one worker per port, for exact totals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

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


PROJECT = "project"


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
            [PROJECT, "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "kaizen_predictions_total",
            "Predictions made, per model version, alias and role (served or shadow).",
            [PROJECT, "model_version", "alias", "role", "decision"],
            registry=r,
        )
        self.errors = Counter(
            "kaizen_prediction_errors_total",
            "Failed requests and predictions, by reason.",
            [PROJECT, "reason"],
            registry=r,
        )
        self.log_dropped = Counter(
            "kaizen_prediction_log_dropped_total",
            "Prediction log rows dropped because the log's queue was full.",
            [PROJECT],
            registry=r,
        )
        self.log_written = Counter(
            "kaizen_prediction_log_rows_written_total",
            "Prediction log rows written to the lake.",
            [PROJECT],
            registry=r,
        )
        self.log_write_errors = Counter(
            "kaizen_prediction_log_write_errors_total",
            "Failed writes of a prediction log file (the rows are retried once, then dropped).",
            [PROJECT],
            registry=r,
        )
        self.log_queued = Gauge(
            "kaizen_prediction_log_queued_rows",
            "Prediction log rows waiting to be written.",
            [PROJECT],
            registry=r,
        )
        self.model = Gauge(
            "kaizen_model_loaded",
            "1 for the model version each alias serves (0: one it served before).",
            [PROJECT, "alias", "model_version"],
            registry=r,
        )
        self.swaps = Counter(
            "kaizen_alias_swaps_total",
            "Times the version behind an alias changed while serving.",
            [PROJECT, "alias"],
            registry=r,
        )
        self.refresh_errors = Counter(
            "kaizen_alias_refresh_errors_total",
            "Failed alias refreshes (the models loaded before keep serving).",
            [PROJECT],
            registry=r,
        )
        self.explainer_warm = Gauge(
            "kaizen_explainer_warm",
            "1 once the explainer is compiled (kaizen serve warms it in the background after a "
            "start, and requests served meanwhile are slower: it shares the GIL), 0 before, "
            "-1 if that failed (the first /explain compiles it). One process-wide warm-up, "
            "shown for each project it serves.",
            [PROJECT],
            registry=r,
        )
        self.projects: list[str] = []

    def for_project(self, project: str) -> ProjectMetrics:
        """The families with `project` bound (its unlabelled series start at 0)."""
        if project not in self.projects:
            self.projects.append(project)
        return ProjectMetrics(self, project)

    def set_explainer_warm(self, value: float) -> None:
        for project in self.projects:
            self.explainer_warm.labels(project).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Bound:
    """A labelled family with the project label given: `.labels(*rest)` adds the rest."""

    def __init__(self, family: Any, project: str) -> None:
        self._family, self._project = family, project

    def labels(self, *rest: str) -> Any:
        return self._family.labels(self._project, *rest)


class ProjectMetrics:
    """One project's series: the same attributes as before the `project` label, bound."""

    def __init__(self, families: ServingMetrics, project: str) -> None:
        self.families = families
        self.project = project
        self.registry = families.registry
        self.latency = _Bound(families.latency, project)
        self.predictions = _Bound(families.predictions, project)
        self.errors = _Bound(families.errors, project)
        self.model = _Bound(families.model, project)
        self.swaps = _Bound(families.swaps, project)
        self.log_dropped = families.log_dropped.labels(project)
        self.log_written = families.log_written.labels(project)
        self.log_write_errors = families.log_write_errors.labels(project)
        self.log_queued = families.log_queued.labels(project)
        self.refresh_errors = families.refresh_errors.labels(project)
        self.explainer_warm = families.explainer_warm.labels(project)

    def render(self) -> bytes:
        return self.families.render()


def render_all(metrics: list[ServingMetrics]) -> bytes:
    """The exposition of several registries as one (a family once, with every sample)."""
    distinct = list({id(m): m for m in metrics}.values())
    if len(distinct) == 1:
        return distinct[0].render()
    merged: dict[str, Any] = {}
    for m in distinct:
        for family in m.registry.collect():
            if family.name in merged:
                merged[family.name].samples.extend(family.samples)
            else:
                merged[family.name] = family
    return generate_latest(_Families(list(merged.values())))  # type: ignore[arg-type]


class _Families:
    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> list[Any]:
        return self._families
