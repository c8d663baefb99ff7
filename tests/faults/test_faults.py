"""Faults that span modules: a NaN-scoring model at the gate, concurrent registrations and
concurrent `feast apply` against the stack's PostgreSQL (the lake, materialization and
bad-batch faults live beside their modules, marked `faults` too)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import REPO

from kaizen.params import load_params
from kaizen.project.declaration import Slice
from kaizen.promotion.checks import Rules
from kaizen.promotion.staging import evaluate_checks

pytestmark = pytest.mark.faults


def test_a_model_scoring_nan_is_rejected_by_the_gate_not_a_crash() -> None:
    p = load_params(REPO / "projects" / "credit_risk" / "params.yaml")
    rng = np.random.default_rng(0)
    n = 400
    holdout = pd.DataFrame(
        {
            "label": (rng.random(n) < 0.1).astype(int),
            "region": rng.choice(["north", "south"], n),
            "tenure_days": rng.integers(0, 1000, n),
        }
    )
    new = rng.random(n)
    new[::7] = np.nan
    found = evaluate_checks(
        holdout,
        new,
        rng.random(n),
        lambda frame: np.full(len(frame), np.nan),
        p.promote,
        Rules(  # the credit_risk example's slices (kaizen.yaml), nothing else
            {
                "region": Slice(column="region"),
                "tenure_band": Slice(column="tenure_days", edges=[180, 730], unit="d"),
            },
            [],
            [],
        ),
        {"timing": {"cpu_p99_ms": 1.0}, "size_bytes": 10, "training_days": {}},
    )
    [floors] = found
    assert floors.name == "floors" and not floors.passed
    assert "58 of 400 holdout scores are not finite" in floors.detail


@pytest.fixture
def fresh_database(postgres: str) -> Iterator[str]:
    """A uniquely named PostgreSQL database, dropped afterwards."""
    import sqlalchemy as sa

    name = f"kaizen_test_faults_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres.rsplit("/", 1)[0] + "/" + name
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


REGISTER = """
import json, sys, mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("faults")
model = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
with mlflow.start_run():
    info = mlflow.sklearn.log_model(model, name="model", registered_model_name="credit_risk",
                                    serialization_format="pickle")
print(json.dumps({"version": str(info.registered_model_version)}))
"""


@pytest.mark.services
@pytest.mark.slow
def test_concurrent_registrations_get_unique_versions(fresh_database: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = fresh_database
    # Create the schema once, as the tracking server does on start: the race under test is
    # between registrations, not between schema migrations.
    MlflowClient(uri).search_experiments()
    writers = 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTER, uri],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(writers)
    ]
    versions = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        versions.append(json.loads(out.strip().splitlines()[-1])["version"])
    assert sorted(versions, key=int) == [str(v) for v in range(1, writers + 1)]
    registered = MlflowClient(uri).search_model_versions("name = 'credit_risk'")
    assert sorted(int(v.version) for v in registered) == list(range(1, writers + 1))


APPLY = """
import sys
from kaizen.config import Settings
from kaizen.featurestore.store import apply
settings = Settings(_env_file=None, home=sys.argv[1], project="credit_risk", feast_registry="sql",
                    postgres_url=sys.argv[2], feast_data_dir=sys.argv[3], runtime_dir=sys.argv[3])
apply(settings)
"""


@pytest.mark.services
@pytest.mark.slow
def test_concurrent_feast_apply_loses_no_object(fresh_database: str, tmp_path: Path) -> None:
    from credit_risk.features.schema import VIEWS

    from kaizen.config import Settings
    from kaizen.featurestore.store import open_store

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPLY, str(REPO), fresh_database, str(tmp_path / f"w{i}")],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    settings = Settings(
        _env_file=None,
        home=REPO,
        feast_registry="sql",
        postgres_url=fresh_database,
        feast_data_dir=tmp_path / "reader",
        runtime_dir=tmp_path / "reader",
    )
    store = open_store(settings)
    p = load_params(REPO / "projects" / "credit_risk" / "params.yaml")
    assert sorted(v.name for v in store.list_feature_views(allow_cache=False)) == sorted(VIEWS)
    assert [e.name for e in store.list_entities(allow_cache=False)] == ["customer"]
    assert [v.name for v in store.list_on_demand_feature_views(allow_cache=False)] == [
        "credit_request_ratios"
    ]
    services = [s.name for s in store.list_feature_services()]
    assert p.training_set.feature_service in services
