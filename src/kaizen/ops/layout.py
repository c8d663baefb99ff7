"""Where the running platform keeps its files: one directory, `KAIZEN_RUNTIME_DIR` (`.kaizen`).

platform.pid        the supervisor's pid
components.json     the processes it runs (generated from `components.components()`)
supervisor.json     its view of each: state, pid, restarts, last exit (rewritten on change)
pids/NAME.pid       each component's current pid (the id of the session it runs in)
platform.env        the environment they share (generated)
logs/platform.log   every process's output and the supervisor's restarts, one prefixed line each
secrets/            0700: the Airflow passwords file, MLflow's auth config and (stack) the
                    S3 store's identities, each 0600
mlflow/             MLflow's SQLite stores and artifacts (the `local` defaults)
seaweedfs/          the S3 store's data (`stack` profile, `KAIZEN_S3_SERVER=seaweedfs`)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kaizen.config import Settings

# Every process the supervisor starts inherits this variable, set to the runtime dir. It tells
# two instances on one machine apart and helps find strays; it is not enough on its own, since
# setproctitle (Airflow uses it) overwrites what /proc/<pid>/environ shows.
MARKER = "KAIZEN_PLATFORM_INSTANCE"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        return cls(Path(settings.runtime_dir).resolve())

    @property
    def pid_file(self) -> Path:
        return self.root / "platform.pid"

    @property
    def pids_dir(self) -> Path:
        return self.root / "pids"

    def component_pid_file(self, name: str) -> Path:
        return self.pids_dir / f"{name}.pid"

    @property
    def plan_file(self) -> Path:
        return self.root / "components.json"

    @property
    def state_file(self) -> Path:
        return self.root / "supervisor.json"

    @property
    def env_file(self) -> Path:
        return self.root / "platform.env"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "platform.log"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def airflow_passwords(self) -> Path:
        return self.secrets_dir / "airflow-passwords.json"

    @property
    def mlflow_auth_config(self) -> Path:
        return self.secrets_dir / "mlflow-basic-auth.ini"

    @property
    def s3_identities(self) -> Path:
        return self.secrets_dir / "s3-identities.json"

    @property
    def seaweedfs_dir(self) -> Path:
        return self.root / "seaweedfs"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    def create(self) -> None:
        for directory in (
            self.root,
            self.log_dir,
            self.pids_dir,
            self.mlflow_dir,
            self.seaweedfs_dir,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.secrets_dir.chmod(0o700)


def mlflow_backend_store_uri(settings: Settings) -> str:
    return settings.mlflow_backend_store_uri or (
        f"sqlite:///{Layout.from_settings(settings).mlflow_dir / 'mlflow.db'}"
    )


def mlflow_auth_database_uri(settings: Settings) -> str:
    return settings.mlflow_auth_database_uri or (
        f"sqlite:///{Layout.from_settings(settings).mlflow_dir / 'basic_auth.db'}"
    )


def mlflow_artifacts_destination(settings: Settings) -> str:
    return settings.mlflow_artifacts_destination or str(
        Layout.from_settings(settings).mlflow_dir / "artifacts"
    )
