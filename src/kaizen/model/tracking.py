"""MLflow for this profile: where runs and the registry live, and the model's experiment.

By default Kaizen talks to the same stores the platform's MLflow server serves (`kaizen up`):
a SQLite database and an artifact directory under `.kaizen/mlflow` in `local`, so runs
appear in the UI whether or not the server is up. Set KAIZEN_MLFLOW_TRACKING_URI to go
through a server instead (with MLFLOW_TRACKING_USERNAME/PASSWORD).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from kaizen.config import Settings

# The first use of a SQLite store creates its tables; two threads doing it at once (the
# prediction API loads several projects' models in the background) fail with "already exists".
_CONFIGURE = threading.Lock()


def tracking_uri(settings: Settings) -> str:
    from kaizen.ops.layout import mlflow_backend_store_uri

    return settings.mlflow_tracking_uri or mlflow_backend_store_uri(settings)


def artifact_root(settings: Settings) -> str:
    from kaizen.ops.layout import mlflow_artifacts_destination

    return mlflow_artifacts_destination(settings)


def configure(settings: Settings, experiment: str) -> Any:
    """Point MLflow at this profile's stores and return the experiment (created on first use)."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if settings.s3_endpoint_url:  # artifacts on S3 (stack): MLflow's S3 client reads these
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
        if settings.s3_access_key_id and settings.s3_secret_access_key:
            os.environ["AWS_ACCESS_KEY_ID"] = settings.s3_access_key_id.get_secret_value()
            os.environ["AWS_SECRET_ACCESS_KEY"] = settings.s3_secret_access_key.get_secret_value()
    uri = tracking_uri(settings)
    if uri.startswith("postgresql"):
        from kaizen.postgres import ensure_database

        ensure_database(uri)
    if uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(uri[len("sqlite:///") :]), exist_ok=True)
    with _CONFIGURE:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            return found
        location = f"{artifact_root(settings).rstrip('/')}/{experiment}"
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # another process made it
            mlflow.create_experiment(experiment, artifact_location=location)
        return mlflow.get_experiment_by_name(experiment)
