"""Helpers the test tiers share (fixtures live in conftest.py)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from credit_risk.params import CreditRiskParams, SimulateParams

from kaizen.config import Settings
from kaizen.params import load_params
from kaizen.runtime import Runtime

REPO = Path(__file__).resolve().parents[1]
CREDIT_RISK = REPO / "projects" / "credit_risk"  # the worked example most tests run on


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


KAIZEN = str(Path(sys.executable).with_name("kaizen"))  # the CLI of this venv


def kaizen(
    env: dict[str, str], home: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`kaizen *args` as a user runs it in `home`, with exactly `env`; output captured."""
    return subprocess.run(
        [KAIZEN, *args], env=env, cwd=home, capture_output=True, text=True, timeout=timeout
    )


def service_unavailable(name: str, reason: str) -> None:
    message = f"{name} unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (required in CI)", pytrace=False)
    pytest.skip(message)


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def credit_risk_params() -> CreditRiskParams:
    """credit_risk's own params (params.yaml `project:`)."""
    return CreditRiskParams.model_validate(load_params(CREDIT_RISK / "params.yaml").project)


def feature_names(view: str) -> list[str]:
    """A credit_risk view's feature columns (its Feast repo's schema)."""
    from credit_risk.features.schema import view_features

    return list(view_features(credit_risk_params().featurize)[view])


def small_world(**overrides: object) -> SimulateParams:
    base = dict(load_params(CREDIT_RISK / "params.yaml").project["simulate"])
    base.update({"start": dt.date(2026, 1, 1), "days": 5, "customers": 300, "seed": 11})
    base.update(overrides)
    return SimulateParams.model_validate(base)


LABELLED_DAYS = 45


LABELLED_START = dt.date(2026, 1, 1)


LABELLED_DATES = [(LABELLED_START + dt.timedelta(days=i)).isoformat() for i in range(LABELLED_DAYS)]


def clone_working_tree(dest: Path) -> Path:
    """A git clone of the checkout with its uncommitted changes and new files applied: tests
    that run the project the way a user would (dvc repro, the DAGs) test the working tree,
    not the last commit."""
    import shutil
    import subprocess

    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "diff", "HEAD", "--binary"], capture_output=True, check=True
    ).stdout
    if dirty:
        subprocess.run(
            ["git", "-C", str(dest), "apply", "--whitespace=nowarn"], input=dirty, check=True
        )
    untracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, untracked.split("\0")):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return dest


def make_settings(root: Path, **extra: object) -> Settings:
    """Settings whose lake, Feast stores, MLflow stores and GX output all live under `root`
    (the credit_risk project unless `project=` says otherwise)."""
    extra.setdefault("project", "credit_risk")
    return Settings(
        _env_file=None,
        home=REPO,
        raw_root=str(root / "raw"),
        lake_root=str(root / "lake"),
        gx_uncommitted_dir=root / "gx",
        gx_data_docs="failures",
        feast_data_dir=root / "feast",
        runtime_dir=root / "runtime",
        **extra,
    )


def run_pipeline(rt: Runtime, dates: list[str]) -> None:
    """The DataOps stages for each day, in the order the DAG runs them (without Airflow)."""
    from kaizen.stages.featurize import featurize
    from kaizen.stages.ingest import ingest
    from kaizen.stages.validate import validate
    from kaizen.stages.validate_features import validate_features

    for ds in dates:
        for source in rt.catalog.names:
            ingest(source, ds, rt)
            validate(source, ds, rt)
        featurize(ds, rt)
        validate_features(ds, rt)


STALE_ID = 900_001  # activity 10 days old, profile 2 days, payments today


FEAST_VARIABLES = (
    "KAIZEN_HOME",
    "KAIZEN_LAKE_ROOT",
    "KAIZEN_PARAMS_FILE",
    "FEAST_KAIZEN_REGISTRY",
    "FEAST_KAIZEN_ONLINE_STORE",
    "FEAST_USAGE",
)


@dataclass(frozen=True)
class SmallStore:
    root: Path
    settings: Settings
    midnight: dt.datetime  # today 00:00 UTC: the event time of the latest simulated day

    def store(self) -> object:
        from kaizen.featurestore.store import open_store

        return open_store(self.settings)


PROBE_DAG_ID = "heal_probe"  # the session platform's own DAG (tests/integration/conftest.py)


@dataclass
class Platform:
    """A `kaizen up` running from a temporary project home on free loopback ports."""

    home: Path
    env: dict[str, str]
    layout: Any  # kaizen.ops.layout.Layout of the home
    airflow_home: Path
    airflow: str
    mlflow: str
    airflow_password: str
    mlflow_password: str
    feature_server_token: str
    up_output: str  # of the first start, which generated the secrets
    up_seconds: float
    task_log: Path  # where tests/integration/conftest.py's probe DAG notes its tasks

    def kaizen(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return kaizen(self.env, self.home, *args, timeout=timeout)

    def report(self) -> dict[str, Any]:
        """`kaizen status --platform --json`'s components by name, from the function behind
        it: the heal tests poll this every second, and each CLI start costs seconds here
        (test_platform.py runs `kaizen status` itself)."""
        from unittest import mock

        from kaizen.config import Settings
        from kaizen.ops.supervisor import health_report

        with mock.patch.dict(os.environ, self.env, clear=True):
            settings = Settings(_env_file=self.home / ".env")  # what the CLI would read
        return {c["name"]: c for c in health_report(settings)["components"]}

    def pid(self, name: str) -> int:
        return int(self.layout.component_pid_file(name).read_text())

    def supervisor_alive(self) -> bool:
        import psutil

        try:
            pid = int(self.layout.pid_file.read_text())
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except (OSError, ValueError, psutil.Error):
            return False
