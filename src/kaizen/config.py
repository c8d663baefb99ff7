"""The one typed settings object: locations, services and secrets from `KAIZEN_*` and `.env`.

Behaviour (windows, thresholds, hyperparameters) lives in `params.yaml` (see `kaizen.params`);
this object only says *where* things are and *which* engines run them. The `profile` picks
the defaults: `local` is files and SQLite on one laptop, `stack` is Postgres, Redis, S3 and
Spark. Any single value can still be overridden by its own variable.

Nothing happens at import time: call `get_settings()`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kaizen.errors import ConfigError, describe_validation_error

Profile = Literal["local", "stack"]
Engine = Literal["pandas", "spark"]


def _default_home() -> Path:
    return Path(os.environ.get("KAIZEN_HOME") or Path.cwd()).resolve()


# Both servers run their blocking work (an online read, a model) in Starlette's thread pool,
# anyio's 40 threads per process: past that many in flight a request only waits for a thread.
DEFAULT_MAX_IN_FLIGHT = 40


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KAIZEN_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    profile: Profile = "local"
    home: Path = Field(default_factory=_default_home, description="the install's root")

    # The project (a folder under projects_dir with a kaizen.yaml): its name or its path.
    # Unset: the project the working directory is in, else the only one there is.
    project: str | None = None
    projects_dir: Path = Path("projects")
    project_dir: Path | None = None  # resolved from `project`; set by the validator

    # Locations: a local path or any fsspec URL (s3://bucket/prefix). `{project}` in either
    # is the project's name; unset, each project keeps its own under <project>/data (local)
    # or s3://kaizen/<project>/ (stack).
    raw_root: str = ""
    lake_root: str = ""
    # The project's files; relative paths are inside the project's folder.
    params_file: Path = Path("params.yaml")

    # The GX file context (committed suites) and where its results and Data Docs go.
    expectations_dir: Path = Path("expectations")
    gx_uncommitted_dir: Path = Path("expectations/uncommitted")  # `{project}` as for the lake
    # Data Docs for every validation (the default), or only for failed ones: rendering a
    # page costs ~1.4 s per batch, which long simulations and bulk tests skip.
    gx_data_docs: Literal["every", "failures"] = "every"

    # Airflow's home (metadata DB, logs) and the DAGs it runs.
    airflow_home: Path = Path(".airflow")
    dags_folder: Path = Path("projects")  # every project's dags/ (see projects/.airflowignore)

    # Engines.
    engine: Engine | None = None
    spark_master: str = "local[2]"  # a cluster's master URL at scale (see kaizen.spark)

    # Feast: the declarative repo, and where its registry and online store live. `local`:
    # a registry file and SQLite under feast_data_dir; `stack`: SQL registry on Postgres and
    # Redis. Either can be switched alone.
    feast_repo: Path = Path("feature_repo")
    feast_data_dir: Path = Path("data/feast")  # inside the project's folder; `{project}` as above
    feast_registry: Literal["file", "sql"] | None = None
    feast_online_store: Literal["sqlite", "redis"] | None = None
    postgres_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/kaizen"
    redis_connection: str = "127.0.0.1:6379"  # Feast's form: host:port[,password=...,db=N]

    # The local platform (`kaizen up`): pid, Procfile, logs, secret files and MLflow's stores.
    runtime_dir: Path = Path(".kaizen")
    # Every UI listens on 127.0.0.1 only; the ports can move so two instances run side by side.
    airflow_port: int = Field(default=8080, ge=1, le=65535)
    mlflow_port: int = Field(default=5000, ge=1, le=65535)
    # Admin logins. The passwords are generated into .env on the first `kaizen up`.
    airflow_admin_username: str = Field(default="admin", pattern=r"^[A-Za-z0-9_.@-]+$")
    airflow_admin_password: SecretStr | None = None
    mlflow_admin_username: str = Field(default="admin", pattern=r"^[A-Za-z0-9_.@-]+$")
    mlflow_admin_password: SecretStr | None = None
    # The Feast feature server (`kaizen feature-server`): Feast's own app behind a bearer token.
    # It never runs open: no token, no server. The token is generated into .env on the first
    # `kaizen up`. Loopback by default; another host only by choice (e.g. inside a container).
    feature_server_host: str = "127.0.0.1"
    feature_server_port: int = Field(default=6566, ge=1, le=65535)
    feature_server_token: SecretStr | None = None  # reads only
    # Writes (write-to-online-store, push, materialize) need this second token; unset (the
    # default, never generated), the server takes no writes at all.
    feature_server_write_token: SecretStr | None = None
    # What one request may carry: entity rows of a read or rows of a write, and body bytes.
    feature_server_max_entities: int = Field(default=1000, ge=1, le=100_000)
    feature_server_max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    # How far past the server's clock a written event time may be (clock skew), in seconds.
    feature_server_future_tolerance_seconds: float = Field(default=300, ge=0, le=86_400)
    # Requests in flight past which a server answers 503 at once (`kaizen.asgi.LoadShed`; per
    # worker process; never /health): a property of the deployment, like its workers, not of
    # a project.
    feature_server_max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=1, le=10_000)
    # The prediction API (`kaizen serve`): the champion model on the online features, behind
    # its own bearer token (generated into .env by the first `kaizen up`; no token, no server).
    prediction_api_host: str = "127.0.0.1"
    prediction_api_port: int = Field(default=6570, ge=1, le=65535)
    prediction_api_token: SecretStr | None = None
    prediction_api_max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=1, le=10_000)
    serve_projects: list[str] = []  # the projects `kaizen serve` serves; empty: every one
    # Where Kaizen logs runs and registers models; empty means straight to the stores below
    # (the ones `kaizen up`'s server serves). An http(s) URL goes through a tracking server.
    mlflow_tracking_uri: str = ""
    # MLflow's stores; empty means SQLite and files under `runtime_dir/mlflow`.
    mlflow_backend_store_uri: str = ""
    mlflow_auth_database_uri: str = ""
    mlflow_artifacts_destination: str = ""

    # S3-compatible object store (used when a root is an s3:// URL).
    s3_endpoint_url: str | None = None
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    # The `stack` profile's S3 store. "seaweedfs": `kaizen up` runs SeaweedFS on
    # 127.0.0.1:s3_port (it also takes the 12 ports above it) with credentials generated into
    # .env, and the endpoint defaults to it. "external": a store run elsewhere (AWS, MinIO,
    # compose's container) at s3_endpoint_url, never started by `kaizen up`.
    s3_server: Literal["seaweedfs", "external"] = "seaweedfs"
    s3_port: int = Field(default=8333, ge=1, le=65535 - 12)

    # Monitoring alerts: POSTed as JSON to this webhook (a secret: Slack-style URLs carry a
    # token); empty means alerts go to the log only.
    alert_webhook_url: SecretStr | None = None
    alert_webhook_timeout_s: float = Field(default=3.0, gt=0, le=60)

    # Logs.
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    _given: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _profile_defaults(self) -> Settings:
        # What was set explicitly, as it was set (before the defaults below join it).
        self._given = {k: getattr(self, k) for k in self.model_fields_set}
        stack = self.profile == "stack"
        for name in ("projects_dir", "airflow_home", "dags_folder", "runtime_dir"):
            path = getattr(self, name)
            if not path.is_absolute():
                setattr(self, name, self.home / path)
        from kaizen.project.locate import locate

        self.project_dir = locate(self.project, self.projects_dir, self.home)
        name = self.project_dir.name if self.project_dir else None
        self.project = name
        folder = self.project_dir or self.home
        if not self.raw_root:
            self.raw_root = f"s3://kaizen/{name}/raw" if stack else str(folder / "data" / "raw")
        if not self.lake_root:
            self.lake_root = f"s3://kaizen/{name}/lake" if stack else str(folder / "data" / "lake")
        if name:
            self.raw_root = self.raw_root.replace("{project}", name)
            self.lake_root = self.lake_root.replace("{project}", name)
            for path_name in ("feast_data_dir", "gx_uncommitted_dir"):
                path = str(getattr(self, path_name)).replace("{project}", name)
                setattr(self, path_name, Path(path))
        if self.engine is None:
            self.engine = "spark" if stack else "pandas"
        if self.feast_registry is None:
            self.feast_registry = "sql" if stack else "file"
        if self.feast_online_store is None:
            self.feast_online_store = "redis" if stack else "sqlite"
        if stack and not self.mlflow_backend_store_uri:  # MLflow on Postgres, artifacts on S3
            base = self.postgres_url.rsplit("/", 1)[0]
            self.mlflow_backend_store_uri = f"{base}/mlflow"
        if stack and not self.mlflow_artifacts_destination:
            self.mlflow_artifacts_destination = "s3://kaizen/mlflow"
        if self.runs_s3_server and not self.s3_endpoint_url:
            self.s3_endpoint_url = f"http://127.0.0.1:{self.s3_port}"
        for name in (
            "params_file",
            "expectations_dir",
            "gx_uncommitted_dir",
            "feast_repo",
            "feast_data_dir",
        ):
            path = getattr(self, name)
            if not path.is_absolute():
                setattr(self, name, folder / path)
        for name in ("raw_root", "lake_root"):
            value = getattr(self, name)
            if "://" not in value and not Path(value).is_absolute():
                setattr(self, name, str(self.home / value))
        return self

    def for_project(self, project: str) -> Settings:
        """These settings for another project of the install: what was set explicitly (by
        the environment or a caller) stays, the per-project defaults are derived again."""
        given = {k: v for k, v in self._given.items() if k not in ("project", "project_dir")}
        return Settings(_env_file=None, **given, project=project)

    def as_environ(self) -> dict[str, str]:
        """The variables a child process (dvc repro, an Airflow task) needs to see these
        settings: the project and every location or choice set explicitly."""
        out = {"KAIZEN_HOME": str(self.home)}
        if self.project_dir:
            out["KAIZEN_PROJECT"] = str(self.project_dir)
        for key in sorted(set(self._given) - {"home", "project", "project_dir"}):
            value = self._given[key]
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            out[f"KAIZEN_{key.upper()}"] = str(value)
        return out

    def require_project(self) -> Path:
        """The selected project's folder, or one line saying how to choose one."""
        if self.project_dir is None:
            from kaizen.project.locate import project_names

            names = project_names(self.projects_dir)
            if not names:
                raise ConfigError(
                    f"no project under {self.projects_dir}: create one with `kaizen init NAME`"
                )
            raise ConfigError(
                f"{len(names)} projects ({', '.join(names)}): choose one with "
                "--project NAME or KAIZEN_PROJECT"
            )
        return self.project_dir

    @property
    def runs_s3_server(self) -> bool:
        """`kaizen up` supervises the S3 store (SeaweedFS) for this profile."""
        return self.profile == "stack" and self.s3_server == "seaweedfs"

    def s3_buckets(self) -> list[str]:
        """The buckets the s3:// locations of these settings name (the store creates them)."""
        urls = (self.raw_root, self.lake_root, self.mlflow_artifacts_destination)
        found = (u.split("://", 1)[1].split("/", 1)[0] for u in urls if u.startswith("s3://"))
        return sorted({b for b in found if b})

    def storage_options(self, url: str) -> dict[str, Any]:
        """fsspec options for `url`: credentials and endpoint for s3://, nothing for files."""
        if not url.startswith(("s3://", "s3a://")):
            return {}
        options: dict[str, Any] = {"client_kwargs": {"region_name": self.s3_region}}
        if self.s3_endpoint_url:
            options["client_kwargs"]["endpoint_url"] = self.s3_endpoint_url
        if self.s3_access_key_id and self.s3_secret_access_key:
            options["key"] = self.s3_access_key_id.get_secret_value()
            options["secret"] = self.s3_secret_access_key.get_secret_value()
        return options


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; `get_settings.cache_clear()` after changing the environment."""
    try:
        return Settings(_env_file=_default_home() / ".env")
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "settings (KAIZEN_* / .env)")) from None
