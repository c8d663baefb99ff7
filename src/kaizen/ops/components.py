"""Every long-lived process of the platform, one line each; the supervisor's plan.

A component is a command, the non-secret environment only it needs, how to tell that it is
healthy (an HTTP URL answering 2xx, optionally with a named field of its JSON reporting
`healthy`: Airflow's api-server reports the scheduler, dag-processor and triggerer by their
heartbeats), and the components that must answer before it starts.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kaizen.config import Settings
from kaizen.ops.layout import (
    HOST,
    Layout,
    mlflow_artifacts_destination,
    mlflow_backend_store_uri,
)


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    health_url: str | None = None
    health_field: str | None = None  # a key of the health JSON whose "status" must be healthy
    port: int | None = None  # listens here (on HOST): checked free before the start
    also_binds: tuple[int, ...] = ()  # its other ports on HOST, checked free too
    ui: str | None = None
    # An answer meaning "running, not ready" (the prediction API before any champion): healthy
    # for the supervisor, so `kaizen up` works on a fresh platform, and said in the detail.
    unready_status: int | None = None

    # Started only once each of these components answers its health check (and again after a
    # crash of this one): the scheduler runs no task before the api-server answers.
    after: tuple[str, ...] = ()
    # After a crash its leftover processes finish what they run (the scheduler's LocalExecutor
    # workers, each running a task) and are stopped once idle; any other component's leftovers
    # are killed before the restart (a uvicorn worker would keep the port).
    drains: bool = False


def components(settings: Settings) -> list[Component]:
    """What `kaizen up` runs under one supervisor, in start order."""
    airflow = _bin("airflow")
    af = f"http://{HOST}:{settings.airflow_port}"
    ml = f"http://{HOST}:{settings.mlflow_port}"
    fs = f"http://{HOST}:{settings.feature_server_port}"
    pa = f"http://{HOST}:{settings.prediction_api_port}"
    monitor = f"{af}/api/v2/monitor/health"
    # The scheduler's and triggerer's log servers bind every interface (no host setting):
    # skip them. Task logs are files under AIRFLOW_HOME, which the api-server reads directly.
    stores = [s3_component(settings)] if settings.runs_s3_server else []
    # The S3 store holds MLflow's artifacts and the lake the servers read: it answers first.
    s3 = ("s3",) if stores else ()
    # The scheduler runs tasks and the triggerer resumes them: both talk to the api-server's
    # execution API, so they start after it answers. The prediction API loads models from MLflow.
    # fmt: off
    return [
        *stores,
        Component("airflow-api", [airflow, "api-server"], health_url=monitor, health_field="metadatabase", port=settings.airflow_port, ui=af),
        Component("airflow-scheduler", [airflow, "scheduler", "--skip-serve-logs"], health_url=monitor, health_field="scheduler", after=("airflow-api",), drains=True),
        Component("airflow-dag-processor", [airflow, "dag-processor"], health_url=monitor, health_field="dag_processor"),
        Component("airflow-triggerer", [airflow, "triggerer", "--skip-serve-logs"], health_url=monitor, health_field="triggerer", after=("airflow-api",)),
        Component("mlflow", mlflow_argv(settings), env=mlflow_env(settings), health_url=f"{ml}/health", port=settings.mlflow_port, ui=ml, after=s3),
        # Feast's feature server behind Kaizen's bearer token; /health is its one open route.
        Component("feature-server", [_bin("kaizen"), *_project_option(settings), "feature-server"], health_url=f"{fs}/health", port=settings.feature_server_port, ui=fs, after=s3),
        # The prediction API; /health is 503 until a champion exists: up, not ready (see health).
        Component("prediction-api", [_bin("kaizen"), "serve"], health_url=f"{pa}/health", port=settings.prediction_api_port, ui=pa, unready_status=503, after=("mlflow", *s3)),
    ]
    # fmt: on


def feature_server_project(settings: Settings) -> str | None:
    """Feast's feature server serves one project's repo: the selected one, else the first of
    the install by name (`kaizen -p NAME up` picks another)."""
    from kaizen.project.locate import project_names

    return settings.project or next(iter(project_names(settings.projects_dir)), None)


def _project_option(settings: Settings) -> list[str]:
    name = feature_server_project(settings)
    return ["--project", name] if name else []


def s3_component(settings: Settings) -> Component:
    """SeaweedFS as the `stack` profile's S3 store, first in start order: its identity file
    (generated credentials, 0600) refuses unsigned requests, and it creates the buckets the
    settings' s3:// locations name."""
    from kaizen.seaweed import port_plan, weed_command

    layout = Layout.from_settings(settings)
    ports = port_plan(settings.s3_port)
    argv = weed_command(
        layout.seaweedfs_dir, ports, layout.s3_identities, ",".join(settings.s3_buckets())
    )
    others = tuple(p for p in ports.values() if p != settings.s3_port)
    health = f"http://{HOST}:{settings.s3_port}/healthz"
    return Component("s3", argv, health_url=health, port=settings.s3_port, also_binds=others)


def mlflow_argv(settings: Settings) -> list[str]:
    """MLflow's tracking server with its basic-auth app, reachable only as 127.0.0.1/localhost."""
    port = settings.mlflow_port
    return [
        _bin("mlflow"),
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        mlflow_backend_store_uri(settings),
        "--artifacts-destination",
        mlflow_artifacts_destination(settings),
        # Refuse other Host headers (DNS rebinding) and other browser origins (CSRF).
        "--allowed-hosts",
        f"{HOST}:{port},localhost:{port}",
        "--cors-allowed-origins",
        f"http://{HOST}:{port},http://localhost:{port}",
    ]


def mlflow_env(settings: Settings) -> dict[str, str]:
    s3 = {}
    if mlflow_artifacts_destination(settings).startswith("s3://") and settings.s3_endpoint_url:
        # The artifact proxy's boto3 client; the key pair reaches it through the environment
        # `kaizen up` starts the supervisor with, never through this (written) file.
        s3["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    return {
        **s3,
        # Admin name, password and auth database: a 0600 file written by `kaizen up`.
        "MLFLOW_AUTH_CONFIG_PATH": str(Layout.from_settings(settings).mlflow_auth_config),
        # The GenAI job runner (a Huey consumer) is not used here; on two cores it only costs.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def write_plan(items: list[Component]) -> str:
    """The components as the supervisor reads them back (`read_plan`)."""
    return json.dumps([asdict(c) for c in items], indent=1) + "\n"


def read_plan(text: str) -> list[Component]:
    tuples = ("also_binds", "after")
    return [
        Component(**{k: tuple(v) if k in tuples else v for k, v in row.items()})
        for row in json.loads(text)
    ]


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))
