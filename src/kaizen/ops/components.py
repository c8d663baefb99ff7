"""Every long-lived process of the platform, one line each; the supervisor's Procfile.

A component is a command, the non-secret environment only it needs, and how to tell that it
is healthy: an HTTP URL answering 2xx, optionally with a named field of its JSON reporting
`healthy` (Airflow's api-server reports the scheduler, dag-processor and triggerer by their
heartbeats).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
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

    def procfile_line(self, pid_file: Path) -> str:
        """`name: echo $$ > pid_file && exec [env K=V ...] argv`. honcho runs it with `sh -c` in
        a new session; `exec` keeps that pid (the session id of everything the component
        starts) and leaves no shell in between to swallow signals."""
        command = shlex.join(self.argv)
        if self.env:
            assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
            command = f"env {assignments} {command}"
        return f"{self.name}: echo $$ > {shlex.quote(str(pid_file))} && exec {command}"


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
    # fmt: off
    return [
        *stores,
        Component("airflow-api", [airflow, "api-server"], health_url=monitor, health_field="metadatabase", port=settings.airflow_port, ui=af),
        Component("airflow-scheduler", [airflow, "scheduler", "--skip-serve-logs"], health_url=monitor, health_field="scheduler"),
        Component("airflow-dag-processor", [airflow, "dag-processor"], health_url=monitor, health_field="dag_processor"),
        Component("airflow-triggerer", [airflow, "triggerer", "--skip-serve-logs"], health_url=monitor, health_field="triggerer"),
        Component("mlflow", mlflow_argv(settings), env=mlflow_env(settings), health_url=f"{ml}/health", port=settings.mlflow_port, ui=ml),
        # Feast's feature server behind Kaizen's bearer token; /health is its one open route.
        Component("feature-server", [_bin("kaizen"), *_project_option(settings), "feature-server"], health_url=f"{fs}/health", port=settings.feature_server_port, ui=fs),
        # The prediction API; /health is 503 until a champion exists: up, not ready (see health).
        Component("prediction-api", [_bin("kaizen"), "serve"], health_url=f"{pa}/health", port=settings.prediction_api_port, ui=pa, unready_status=503),
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


def procfile(items: list[Component], layout: Layout) -> str:
    header = "# Generated by `kaizen up` from kaizen.ops.components; edits are overwritten.\n"
    lines = (c.procfile_line(layout.component_pid_file(c.name)) for c in items)
    return header + "".join(line + "\n" for line in lines)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))
