"""Model versions and their aliases, as the gates and the server see them: loaded, scored,
measured."""

from __future__ import annotations

import functools
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from kaizen.errors import InputError
from kaizen.runtime import Runtime

FEATURE_SERVICE_TAG = "kaizen.feature_service"  # set by `register` from the release manifest


@dataclass
class Version:
    number: str
    run_id: str
    tags: dict[str, str]
    aliases: list[str]
    model: Any
    size_bytes: int

    @property
    def feature_service(self) -> str:
        """The Feast feature service the version was trained with (its release manifest)."""
        return self.tags.get(FEATURE_SERVICE_TAG, "")

    @property
    def inputs(self) -> list[str]:
        schema = self.model.feature_names_in_ if hasattr(self.model, "feature_names_in_") else None
        return list(schema) if schema is not None else []

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        with threadpool_limits(limits=1):  # small batches: OpenMP threads only wait
            return self.model.predict_proba(frame[self.inputs])[:, 1]

    def cpu_p99_ms(self, frame: pd.DataFrame, rows: int, trials: int = 3) -> dict[str, float]:
        """p99 of one-row predictions in this thread's CPU time: what a request costs the
        server, and unlike wall time it does not grow with a neighbour's load (a busy machine
        once measured 308 ms wall for a 20 ms model). The gate reads the median of `trials`;
        the spread between trials is kept as the noise check."""
        sample = frame[self.inputs].head(rows)
        per_trial, wall = [], []
        with threadpool_limits(limits=1):  # OpenMP on the calling thread: its CPU time is all
            self.model.predict_proba(sample.iloc[[0]])  # warm
            for _ in range(trials):
                cpu, elapsed = [], []
                for i in range(len(sample)):
                    started, started_cpu = time.perf_counter(), time.thread_time()
                    self.model.predict_proba(sample.iloc[[i]])
                    cpu.append((time.thread_time() - started_cpu) * 1000)
                    elapsed.append((time.perf_counter() - started) * 1000)
                per_trial.append(float(np.percentile(cpu, 99)))
                wall.append(float(np.percentile(elapsed, 99)))
        return {
            "cpu_p99_ms": float(np.median(per_trial)),
            "cpu_p99_spread": max(per_trial) / max(min(per_trial), 1e-6),
            "wall_p99_ms": float(np.median(wall)),  # for the record; the gate ignores it
        }


def load(rt: Runtime, number: str) -> Version:
    import mlflow

    from kaizen.model.registry import client

    registry = client(rt)
    name = rt.model_name
    found = registry.get_model_version(name, number)
    model, size = _artifacts(mlflow.get_registry_uri(), name, str(number), found.run_id)
    return Version(str(number), found.run_id, dict(found.tags), list(found.aliases), model, size)


@functools.lru_cache(maxsize=8)
def _artifacts(registry_uri: str, name: str, number: str, run_id: str) -> tuple[Any, int]:
    """A version's model and size. Its artifacts never change once registered, so the daily
    monitor and the gates load each model once per process (its tags and aliases, which do
    change, are read fresh by `load`); the key names the registry and the run."""
    import mlflow

    model = mlflow.sklearn.load_model(f"models:/{name}/{number}")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{number}", dst_path=tmp))
        size = sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
    return model, size


def by_alias(rt: Runtime, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    from kaizen.model.registry import client

    try:
        found = client(rt).get_model_version_by_alias(rt.model_name, alias)
        return str(found.version)  # MLflow returns an int here and a str elsewhere
    except MlflowException:
        return None


def holdout_of(rt: Runtime, version: Version) -> pd.DataFrame:
    """The frozen holdout the version was evaluated on (logged by `register`)."""
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path="evaluation/holdout.parquet"
        )
    except Exception as exc:
        raise InputError(
            f"version {version.number} has no logged holdout ({exc.__class__.__name__}); re-register it"
        ) from None
    return pd.read_parquet(path)


def manifest(version: Version) -> dict[str, Any]:
    out = {}
    for key, value in version.tags.items():
        if key.startswith("kaizen."):
            try:
                out[key[7:]] = json.loads(value)
            except ValueError:
                out[key[7:]] = value
    return out
