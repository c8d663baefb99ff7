"""Reading the model registry: versions, their aliases and release manifests."""

from __future__ import annotations

from typing import Any

from kaizen.runtime import Runtime


def client(rt: Runtime) -> Any:
    from mlflow.tracking import MlflowClient

    from kaizen.model import tracking

    tracking.configure(rt.settings, rt.experiment)
    return MlflowClient()


def latest_version(rt: Runtime) -> Any | None:
    """The newest registered version of the model, or None."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client(rt).search_model_versions(f"name = '{rt.model_name}'")
    except MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version), default=None)
