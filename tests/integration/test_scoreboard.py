"""The scoreboard's world and its judgement (the full run is `make kaizen-eval`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kaizen.errors import ConfigError
from kaizen.scoreboard import board
from kaizen.scoreboard.loop import Day
from kaizen.scoreboard.scenario import ROW_ID, Scenario, runtime, scenario

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "projects" / "credit_risk"
PARAMS = PROJECT / "params.yaml"
SMALL = {"days": 60, "shock_day": 30, "history_days": 20, "bad_days": ["10:orders:nulls"]}


def test_scenario_puts_history_before_day_one_and_the_shock_on_its_day(tmp_path: Path) -> None:
    s = scenario(PARAMS, tmp_path, SMALL)
    first = s.world_start + dt.timedelta(days=20)
    assert s.ds(1) == first.isoformat() == s.start.isoformat()
    assert len(s.dates) == 60 and len(s.history) == 20 and s.history[-1] < s.ds(1)
    assert s.history[0] == s.world_start.isoformat()
    assert s.shock_ds == (first + dt.timedelta(days=29)).isoformat()
    [fault] = s.faults()
    assert (fault.ds, fault.source, fault.kind) == (s.ds(10), "orders", "nulls")
    assert (tmp_path / "params.yaml").exists()  # the run records what it ran with
    # Every retrain's SHAP report at the loop's scale, not production's.
    assert s.params.explain.sample_rows == s.board.explain_sample_rows
    assert s.params.explain.background_rows == s.board.explain_background_rows
    # The in-process latency budget at the loop's, not the project's (it measures CPU contention).
    assert s.params.promote.budget.cpu_p99_ms == s.board.cpu_p99_ms == 1000
    assert s.params.promote.budget.sample_rows == s.board.budget_sample_rows < 200
    # The new-labels rule scaled to the world's label rate (the weekly run comes first).
    assert s.params.train.retrain_min_new_labels == s.board.retrain_min_new_labels > 300
    assert s.params.monitor.plots_every_days == s.board.monitor_plots_every_days > 1
    # Neither the importance table nor the ONNX form enters a gate: the loop's are cheap.
    assert s.params.evaluate.permutation_repeats == s.board.permutation_repeats == 1
    assert s.params.register_.onnx.enabled is s.board.onnx is False


def test_a_bad_override_is_one_line_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"scoreboard.*bad_days"):
        scenario(
            PARAMS,
            tmp_path,
            {**SMALL, "bad_days": ["61:orders:nulls"]},
        )
    with pytest.raises(ConfigError, match="shock_day"):
        scenario(PARAMS, tmp_path, {**SMALL, "shock_day": 60})


def _journal(s: Scenario) -> list[Day]:
    """Champion v1 until the shock; drift seen on the 2nd shocked batch; v2 (trained after
    the shock) champion on the 4th; one stable-period request and one on a bad day's window."""
    days = []
    for d in range(1, 61):
        day = Day(s.ds(d), d, champion="1" if d < 33 else "2")
        if d in (11, 20):
            day.monitor = {"breaches": ["data_drift.v1"], "retrain": {"requested": True}}
        if d == 31:
            day.monitor = {"breaches": ["data_drift.v1"], "retrain": {"requested": True}}
            day.trained = [{"reason": "retrain request", "version": "2", "cutoff": s.ds(31)}]
        if d == 10:
            day.quarantined = ["orders"]
        days.append(day)
    return days


def _invoices(s: Scenario) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 60 * 40
    ts = pd.to_datetime([f"{s.ds(1 + i // 40)}T12:00:00Z" for i in range(n)], utc=True)
    label = rng.random(n) < 0.1
    signal = label + rng.normal(0, 1.0, n)  # the oracle sees the signal well ...
    frame = pd.DataFrame(
        {
            ROW_ID: [str(i) for i in range(n)],
            "event_timestamp": ts,
            "label": label,
            "signal": signal,
        }
    )
    served = pd.DataFrame(  # ... the served model less well
        {
            ROW_ID: frame[ROW_ID],
            "model_version": "2",
            "probability": label + rng.normal(0, 2.0, n),
        }
    )
    oracle = pd.DataFrame({ROW_ID: frame[ROW_ID], "oracle": signal})
    return frame, served, oracle


def test_the_board_counts_what_the_journal_says(tmp_path: Path) -> None:
    s = scenario(PARAMS, tmp_path, SMALL)
    rt = runtime(s, REPO, PROJECT)
    frame, served, oracle = _invoices(s)
    models = {  # v2 is worse than v1 in hindsight: a worse promotion
        "1": SimpleNamespace(score=lambda f: f["signal"].to_numpy()),
        "2": SimpleNamespace(score=lambda f: -f["signal"].to_numpy()),
    }
    rows, details = board.score(
        rt, s, _journal(s), frame, served, oracle, load=lambda _rt, v: models[v]
    )
    by_name = {r.name.split(" (")[0]: r for r in rows}
    assert by_name["days from the shock to detection"].value == 2
    assert by_name["days from the shock to detection"].passed
    assert by_name["days from the shock to a new champion"].value == 4
    assert not by_name["days from the shock to a new champion"].passed  # target 3
    assert by_name["worse models promoted"].value == 1
    stable = next(r for r in rows if r.name.startswith("drift retrains"))
    assert stable.value == 2 and not stable.passed
    bad = next(r for r in rows if r.name.startswith("retrains caused by bad-data days"))
    assert bad.value == 1 and not bad.passed
    assert details["served_auc"] < details["oracle_auc"]
    quality = next(r for r in rows if r.name.startswith("post-shock ROC AUC"))
    assert not quality.passed  # the gap is far wider than 0.02
    text = board.render(rows, "header")
    assert "MISS" in text and "PASS" in text


def test_the_oracle_scores_the_same_fitted_in_one_process_or_two(tmp_path: Path) -> None:
    from kaizen.scoreboard import oracle

    s = scenario(PARAMS, tmp_path, SMALL)
    rt = runtime(s, REPO, PROJECT)
    rng = np.random.default_rng(7)
    n = 30 * 60
    risk = rng.normal(0, 1, n)
    frame = pd.DataFrame(
        {
            ROW_ID: [str(i) for i in range(n)],
            "customer_id": [str(i % 300) for i in range(n)],
            "event_timestamp": pd.to_datetime(
                [f"{s.ds(1 + i // 60)}T12:00:00Z" for i in range(n)], utc=True
            ),
            "late_ratio_180d": risk,
            "noise": rng.normal(0, 1, n),
            "region": rng.choice(["north", "south"], n).astype(object),
            "label": (risk + rng.normal(0, 1, n)) > 1.3,
        }
    )
    days = [s.ds(d) for d in (26, 27, 28)]

    one, two = (oracle.oracle_scores(rt, frame, days, 1, jobs, progress=id) for jobs in (1, 2))
    assert len(one) == 3 * 60 and set(one[ROW_ID]) == set(frame[ROW_ID][25 * 60 : 28 * 60])
    pd.testing.assert_frame_equal(one, two)


def _lake_bytes(root: Path) -> dict[str, bytes]:
    """Every data file of the lake by path; the stage-metrics rows carry their own run times."""
    return {
        str(f.relative_to(root)): f.read_bytes()
        for f in sorted(root.rglob("*.parquet"))
        if "metrics" not in f.relative_to(root).parts
    }


def test_the_pipelined_history_backfill_leaves_the_lake_a_single_process_leaves(
    tmp_path: Path,
) -> None:
    from kaizen.featurestore.store import apply
    from kaizen.scoreboard import loop

    lakes = {}
    for jobs in (1, 2):
        world = {**SMALL, "history_days": 5, "world": {"customers": 150}, "history_jobs": jobs}
        s = scenario(PARAMS, tmp_path / f"jobs{jobs}", world)
        rt = runtime(s, REPO, PROJECT)
        rt.project.hook("generator")(
            rt.project_params,
            rt.settings.raw_root,
            start=s.world_start,
            days=len(s.history),
            **s.board.world,
        )
        apply(rt.settings)
        seen: list[str] = []
        loop.backfill_dataops(rt, s, progress=seen.append)
        assert seen and seen[-1].endswith(f"history backfilled to {s.history[-1]} (5/5)")
        lakes[jobs] = _lake_bytes(Path(rt.settings.lake_root))
    features = [p for p in lakes[1] if p.startswith("features")]
    assert len(features) >= 5 * 3  # every day of every view was published
    assert lakes[2].keys() == lakes[1].keys()
    assert [p for p in lakes[1] if lakes[1][p] != lakes[2][p]] == []
