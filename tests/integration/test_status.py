"""`kaizen status` answers at a glance, and each part degrades on its own."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from credit_risk.simulate import Fault, simulate
from support import SmallStore, make_settings, small_world
from typer.testing import CliRunner

from kaizen.cli import app
from kaizen.config import Settings, get_settings
from kaizen.errors import BatchQuarantined
from kaizen.monitoring import history
from kaizen.pipeline_status import airflow_last_good
from kaizen.runtime import Runtime
from kaizen.stages.ingest import ingest
from kaizen.stages.validate import validate

DS = "2026-01-02"


def _settings(root: Path, feast_data_dir: Path) -> Settings:
    return make_settings(root, airflow_home=root / "airflow").model_copy(
        update={"feast_data_dir": feast_data_dir}
    )


def _champion(rt: Runtime, model_dir: Path) -> str:
    from kaizen.model.registry import client

    registry = client(rt)
    name = rt.model_name
    registry.create_registered_model(name)
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    version = registry.create_model_version(name, str(model_dir)).version
    registry.set_registered_model_alias(name, rt.params.promote.champion_alias, version)
    return str(version)


def _monitored(rt: Runtime, ds: str) -> None:
    """A monitoring day with a data-drift breach, written by the monitor's own writer."""
    metrics = {
        "ds": ds,
        "data_drift": {"share": 0.5, "breach": True, "features": []},
        "prediction_drift": {"psi": 0.031, "breach": False},
        "breaches": {"data_drift": {"key": "data_drift"}},
        "retrain": {"requested": True, "why": "data drift"},
    }
    history.write(rt, ds, metrics, "<html></html>")


@pytest.fixture
def prepared(
    tmp_path: Path,
    small_store: SmallStore,
    feast_environ_restored: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Runtime:
    """A quarantined batch, a good ingest, a champion, a drift breach and a fresh online store."""
    rt = Runtime(_settings(tmp_path, small_store.settings.feast_data_dir))
    simulate(
        small_world(days=2, customers=120),
        rt.settings.raw_root,
        faults=[Fault(DS, "payments", "nulls")],
    )
    ingest("orders", DS, rt)
    ingest("payments", DS, rt)
    with pytest.raises(BatchQuarantined):
        validate("payments", DS, rt)
    rt.champion = _champion(rt, tmp_path / "model")  # type: ignore[attr-defined]
    _monitored(rt, DS)
    for name, value in (
        ("KAIZEN_RAW_ROOT", rt.settings.raw_root),
        ("KAIZEN_LAKE_ROOT", rt.settings.lake_root),
        ("KAIZEN_FEAST_DATA_DIR", str(rt.settings.feast_data_dir)),
        ("KAIZEN_RUNTIME_DIR", str(rt.settings.runtime_dir)),
        ("KAIZEN_AIRFLOW_HOME", str(rt.settings.airflow_home)),
    ):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield rt
    get_settings.cache_clear()


def test_status_prints_each_part_of_a_prepared_world(
    prepared: Runtime, small_store: SmallStore
) -> None:
    result = CliRunner().invoke(app, ["status", "--pipeline"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "no Airflow metadata DB" in out and "stage ingest: payments 2026-01-02" in out
    assert (
        "payments 2026-01-02: " in out
        and "kaizen -p credit_risk replay --source SOURCE --ds DS" in out
    )
    assert f"champion: v{prepared.champion}" in out and "challenger: none" in out
    assert "2026-01-02: breach (data_drift)" in out and "retrain requested: yes" in out
    today = small_store.midnight.date()
    assert f"as of {today.isoformat()}" in out
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    assert f"customer_payments: fresh, newest {yesterday}, lag 1d" in out
    assert "Traceback" not in out and "unreachable" not in out.replace("airflow unreachable", "")

    later = CliRunner().invoke(app, ["status", "--pipeline", "--json", "--as-of", "2027-01-01"])
    report = json.loads(later.output)["pipeline"]
    assert {r["state"] for r in report["freshness"]["rows"]} == {"stale"}
    [held] = report["quarantine"]["rows"]
    assert (held["source"], held["ds"]) == ("payments", DS) and held["rows"] > 0
    assert report["models"]["rows"][0] == {"alias": "champion", "version": prepared.champion}


def test_each_part_that_is_down_says_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, feast_environ_restored: None
) -> None:
    (tmp_path / "params.yaml").write_text("not: [valid\n")  # every params reader fails
    for name, value in (
        ("KAIZEN_LAKE_ROOT", str(tmp_path / "lake")),
        ("KAIZEN_FEAST_DATA_DIR", str(tmp_path / "feast")),
        ("KAIZEN_RUNTIME_DIR", str(tmp_path / "runtime")),
        ("KAIZEN_AIRFLOW_HOME", str(tmp_path / "airflow")),
        ("KAIZEN_PARAMS_FILE", str(tmp_path / "params.yaml")),
    ):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["status", "--pipeline"])
        bad_day = CliRunner().invoke(app, ["status", "--pipeline", "--as-of", "yesterday"])
        both = CliRunner().invoke(app, ["status", "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0 and "Traceback" not in result.output
    lines = result.output.splitlines()
    below = lines[lines.index("== models ==") + 1]
    assert below.startswith("  unreachable: ") and "params.yaml" in below, below
    # Drift history is found by the declaration's model name; it needs no params.
    assert lines[lines.index("== drift ==") + 1] == "  no monitoring run yet"
    assert "== quarantined batches waiting for replay ==\n  none" in result.output
    assert bad_day.exit_code != 0 and "invalid date 'yesterday'" in bad_day.output
    assert all(line.strip() for line in lines)  # `make status` readers split every line
    assert both.exit_code == 1  # nothing of the platform runs: make status's meaning holds
    report = json.loads(both.output)
    assert report["platform"]["healthy"] is False and report["platform"]["supervisor_pid"] is None
    assert "unreachable" in report["pipeline"]["models"]


def test_last_good_reads_airflow_metadata(tmp_path: Path) -> None:
    settings = _settings(tmp_path, tmp_path / "feast")
    settings.airflow_home.mkdir()
    with sqlite3.connect(settings.airflow_home / "airflow.db") as db:
        db.execute(
            "CREATE TABLE dag_run (dag_id TEXT, run_id TEXT, state TEXT,"
            " data_interval_start TIMESTAMP, data_interval_end TIMESTAMP, end_date TIMESTAMP)"
        )
        db.executemany(
            "INSERT INTO dag_run VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("dataops_daily", "a", "success", "2026-01-01 00:00", "2026-01-02 00:00", "1"),
                ("dataops_daily", "b", "success", "2026-01-02 00:00", "2026-01-03 00:00", "2"),
                ("dataops_daily", "c", "failed", "2026-01-03 00:00", "2026-01-04 00:00", "3"),
                ("train", "asset__x", "success", None, None, "4"),
            ],
        )
    assert [(r["dag"], r["interval"]) for r in airflow_last_good(settings)] == [
        ("dataops_daily", "[2026-01-02, 2026-01-03)"),
        ("train", "run asset__x"),
    ]
