"""Every stage ends with one summary line, and the same figures land in the stage-metrics table."""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from credit_risk.simulate import Fault, simulate
from support import make_settings, small_world

from kaizen import stage_metrics
from kaizen.errors import BatchQuarantined, KaizenError
from kaizen.runtime import Runtime
from kaizen.stages.ingest import ingest
from kaizen.stages.result import StageResult, timed
from kaizen.stages.validate import validate

DS = "2026-01-02"


@pytest.fixture
def landed(rt: Runtime) -> Runtime:
    simulate(
        small_world(days=2, customers=120),
        rt.settings.raw_root,
        faults=[Fault(DS, "payments", "nulls")],
    )
    return rt


def summaries(caplog: pytest.LogCaptureFixture, stage: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "stage", None) == stage and "rows in=" in r.msg]


def test_a_stage_run_logs_one_summary_line_and_appends_its_row(
    landed: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    result = ingest("orders", DS, landed)
    [line] = summaries(caplog, "ingest")
    assert line.getMessage() == result.summary()
    assert f"ingest orders {DS}: ok, rows in={result.rows_in} out={result.rows_out}" in line.msg
    assert (line.interval, line.rows_out, line.output) == (
        f"orders {DS}",
        result.rows_out,
        result.output,
    )
    [row] = stage_metrics.read_settings(landed.settings).to_dict("records")
    assert row["stage"] == "ingest" and row["status"] == "ok" and row["interval"] == f"orders {DS}"
    assert row["rows_out"] == result.rows_out > 0 and row["output"] == result.output
    assert row["duration_s"] == result.duration_s and row["run_id"].startswith("cli-")
    assert row["started_at"] <= row["ended_at"]


def test_a_rerun_adds_a_row_and_a_quarantine_is_recorded_as_such(landed: Runtime) -> None:
    ingest("payments", DS, landed)
    ingest("payments", DS, landed)
    with pytest.raises(BatchQuarantined):
        validate("payments", DS, landed)
    runs = stage_metrics.read_settings(landed.settings)
    ingests = runs[runs["stage"] == "ingest"]
    assert len(ingests) == 2 and ingests["attempt_id"].nunique() == 2
    [held] = runs[runs["stage"] == "validate"].to_dict("records")
    assert held["status"] == "quarantined" and held["rows_quarantined"] > 0
    assert "quarantine" in held["output"] and "BatchQuarantined" in held["error"]
    assert list(stage_metrics.read_settings(landed.settings, stage="validate")["status"]) == [
        "quarantined"
    ]


def test_a_failing_stage_logs_failed_records_it_and_reraises(
    landed: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(KaizenError):
        ingest("orders", "2026-03-01", landed)  # no raw drop that day
    [line] = summaries(caplog, "ingest")
    assert line.levelno == logging.ERROR and ": failed," in line.msg
    [row] = stage_metrics.read_settings(landed.settings).to_dict("records")
    assert row["status"] == "failed" and row["error"].startswith("RawFileError")


def test_concurrent_appends_each_land_whole(tmp_path: Path) -> None:
    root = str(tmp_path / "lake")

    def one(i: int) -> str:
        return stage_metrics.append(
            root, {"stage": "featurize", "interval": f"2026-01-{i + 1:02d}", "status": "ok"}
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        addresses = list(pool.map(one, range(24)))
    runs = stage_metrics.read(root)
    assert len(set(addresses)) == len(runs) == 24
    assert sorted(runs["interval"]) == [f"2026-01-{i + 1:02d}" for i in range(24)]
    assert not list((tmp_path / "lake").rglob(".*.tmp"))


def test_recording_never_fails_the_stage(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:  # a runtime whose settings cannot be read
        @property
        def settings(self) -> object:
            raise OSError("lake unreachable")

    result = StageResult("train", "x")
    with timed(result, logging.getLogger("t"), Broken()):
        result.rows_out = 3
    assert result.status == "ok"
    assert "could not record train's metrics row: lake unreachable" in caplog.text


def test_last_good_is_per_dag_then_per_stage(tmp_path: Path) -> None:
    root = str(tmp_path / "lake")
    t0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    for i, (dag, stage, interval, status) in enumerate(
        [
            ("dataops_daily", "featurize", "2026-01-03", "ok"),
            ("dataops_daily", "featurize", "2026-01-04", "failed"),
            ("", "train", "model", "ok"),
        ]
    ):
        at = t0 + dt.timedelta(minutes=i)
        stage_metrics.append(
            root,
            {"dag_id": dag, "stage": stage, "interval": interval, "status": status}
            | {"started_at": at, "ended_at": at},
        )
    good = stage_metrics.last_good(stage_metrics.read(root))
    assert good[["source", "interval"]].values.tolist() == [
        ["dag dataops_daily", "2026-01-03"],
        ["stage train", "model"],
    ]


def test_promotion_steps_get_the_same_summary_and_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from kaizen.errors import InputError
    from kaizen.promotion.production import production
    from kaizen.promotion.staging import staging
    from kaizen.stages.result import run_step

    rt = Runtime(make_settings(tmp_path))  # its own MLflow store: an empty registry
    caplog.set_level(logging.INFO)
    decision = run_step("promote_production", "challenger -> champion", rt, production, rt)
    with pytest.raises(InputError, match="no model version at @candidate"):
        run_step("promote_staging", "candidate -> challenger", rt, staging, rt)
    [line] = summaries(caplog, "promote_production")
    assert f"-> {decision.id} ({decision.verdict})" in line.msg
    runs = stage_metrics.read_settings(rt.settings).set_index("stage")
    assert runs.loc["promote_production", "status"] == "ok"
    assert runs.loc["promote_production", "output"] == f"{decision.id} ({decision.verdict})"
    assert runs.loc["promote_staging", "status"] == "failed"
    assert runs.loc["promote_staging", "error"].startswith("InputError: no model version")


def test_the_table_works_on_an_object_store(s3_settings: object) -> None:
    settings = s3_settings
    for interval in ("2026-01-01", "2026-01-01"):  # a rerun: a second row, not a replacement
        stage_metrics.append(
            settings.lake_root,
            {"stage": "featurize", "interval": interval, "status": "ok", "rows_out": 7},
            settings.storage_options(settings.lake_root),
        )
    runs = stage_metrics.read_settings(settings)
    assert len(runs) == 2 and runs["attempt_id"].nunique() == 2
    assert set(runs["rows_out"]) == {7}
