"""Staging and production gates, the ledger, rollback and replay on a real MLflow registry.

One model trained on the labelled world (labels final by 2026-02-11) is registered three
times; live traffic for the invoices whose labels became final after that is logged as the
prediction API logs it, and the gates judge it at simulated instants.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from support import make_settings
from test_training import small_params

from kaizen.errors import InputError
from kaizen.featurestore.store import apply
from kaizen.model.versions import by_alias, load
from kaizen.promotion import ledger, load_gate
from kaizen.promotion.production import production
from kaizen.promotion.production import replay as replay_production
from kaizen.promotion.rollback import rollback
from kaizen.promotion.staging import replay as replay_staging
from kaizen.promotion.staging import staging
from kaizen.runtime import Runtime
from kaizen.serving.predictions import write_rows
from kaizen.stages.evaluate import evaluate
from kaizen.stages.register import register
from kaizen.stages.train import train
from kaizen.stages.training_set import training_set

T0 = dt.datetime(2026, 2, 15, 6, tzinfo=dt.UTC)  # the simulated "now" of the first gate run
TRAINED_UNTIL = "2026-02-11"


def _gate_params(rt: Runtime) -> Runtime:
    """The small world's evidence is small: lower floors and evidence counts, fewer resamples."""
    p = rt.params
    promote = p.promote.model_copy(
        update={
            "floors": p.promote.floors.model_copy(update={"roc_auc": 0.55, "brier": 0.2}),
            "non_inferiority": p.promote.non_inferiority.model_copy(
                update={"bootstrap_samples": 200}
            ),
            # Latency is the gate's business, not this test's: CI machines are shared.
            "budget": p.promote.budget.model_copy(update={"cpu_p99_ms": 2000}),
            # One look, at the old evidence count: this world's live labels are few.
            "production": p.promote.production.model_copy(
                update={
                    "min_labelled": 100,
                    "min_positives": 5,
                    "sequential": p.promote.production.sequential.model_copy(
                        update={"looks": 1, "horizon_positives": 5}
                    ),
                }
            ),
            # This world has no online store to serve from; tests/test_load_gate.py runs it.
            "load_test": p.promote.load_test.model_copy(update={"enabled": False}),
        }
    )
    rt.__dict__["params"] = p.model_copy(
        update={
            "promote": promote,
            "training_set": p.training_set.model_copy(update={"cutoff": TRAINED_UNTIL}),
        }
    )
    return rt


@pytest.fixture(scope="module")
def world(labelled_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("promotion")
    shutil.copytree(labelled_world / "lake", root / "lake")
    rt = _gate_params(small_params(Runtime(make_settings(root))))
    apply(rt.settings)
    ts, model, ev = root / "ts.parquet", root / "model", root / "eval"
    training_set(ts, rt)
    train(ts, model, rt)
    evaluate(ts, model, ev, rt)
    versions = [
        register(ts, model, ev, root / f"registered-{i}.json", rt).details["version"]
        for i in range(3)
    ]
    # The live requests: every invoice of the world, with the features it would be served with.
    live = root / "live.parquet"
    latest = rt.params.training_set.model_copy(update={"cutoff": "latest"})
    rt.__dict__["params"] = rt.params.model_copy(update={"training_set": latest})
    training_set(live, rt)
    rt.__dict__["params"] = rt.params.model_copy(
        update={"training_set": latest.model_copy(update={"cutoff": TRAINED_UNTIL})}
    )
    return {"rt": rt, "versions": versions, "live": pd.read_parquet(live)}


def _log_traffic(rt: Runtime, live: pd.DataFrame, served: str, shadow: str, fail: float = 0.0):
    """Log each live invoice as one request served by `served` and shadow-scored by `shadow`;
    the first `fail` share of the shadow predictions failed."""
    champion, challenger = load(rt, served), load(rt, shadow)
    inputs = champion.inputs
    probabilities = {served: champion.score(live), shadow: challenger.score(live)}
    features = live[inputs].to_json(orient="records", lines=True).splitlines()
    rows = []
    failed = int(len(live) * fail)
    for i, row in enumerate(live.itertuples(index=False)):
        for version, role, alias in (
            (served, "served", "champion"),
            (shadow, "shadow", "challenger"),
        ):
            error = "timeout" if role == "shadow" and i < failed else None
            rows.append(
                {
                    "request_id": f"req-{shadow}-{i}",
                    "ts": T0 + dt.timedelta(hours=1, seconds=i),
                    "customer_id": int(row.customer_id),
                    "invoice_id": str(row.invoice_id),
                    "requested_amount": 100.0,
                    "model_version": version,
                    "alias": alias,
                    "role": role,
                    "probability": None if error else float(probabilities[version][i]),
                    "decision": "approve",
                    "features": features[i],
                    "fresh": True,
                    "latency_ms": 4.0,
                    "error": error,
                }
            )
    write_rows(rt.lake, rows)


def test_the_gates_promote_demote_and_roll_back_through_the_ledger(
    world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, (v1, v2, v3), live = world["rt"], world["versions"], world["live"]
    champion, challenger = rt.params.promote.champion_alias, rt.params.promote.challenger_alias

    # v1: no champion yet, so it is compared with nothing; it becomes the first champion
    # only on the floors, the load test and the error rate of the load test's predictions
    # (this world has no online store: tests/integration/test_load_gate.py runs a real one).
    first = staging(rt, candidate=v1, now=T0)
    assert first.verdict == "promote", first.reasons
    skipped = production(rt, now=T0)  # the load test is off here: no predictions to judge
    assert skipped.verdict == "demote" and any("error_rate" in r for r in skipped.reasons)
    assert by_alias(rt, champion) is None and by_alias(rt, challenger) is None
    again = T0 + dt.timedelta(hours=1)  # decisions are immutable records: a new instant
    assert staging(rt, candidate=v1, now=again).verdict == "promote"
    figures = {
        "requests": 300, "failures": 0, "p50_ms": 9.0, "p99_ms": 40.0, "rps": 30.0,
        "users": 4, "duration_s": 10, "cores": "1+1", "first_failure": None,
    }  # fmt: skip
    monkeypatch.setattr(load_gate, "run", lambda rt, version: {**figures, "p99_budget_ms": 1e3})
    crowned = production(rt, now=again)
    monkeypatch.undo()
    assert crowned.verdict == "promote", crowned.reasons
    assert [c["name"] for c in crowned.record["checks"]] == ["floors", "load_test", "error_rate"]
    assert by_alias(rt, champion) == v1 and by_alias(rt, challenger) is None

    # v2 (the same model) passes staging against v1 and bakes in shadow.
    second = staging(rt, candidate=v2, now=T0)
    assert second.verdict == "promote", second.reasons
    assert by_alias(rt, challenger) == v2
    # While v2 bakes, a newer candidate waits: replacing v2 would restart its live evidence.
    held = staging(rt, candidate=v3, now=T0)
    assert held.verdict == "hold" and "still being judged live" in held.reasons[0]
    assert by_alias(rt, challenger) == v2
    _log_traffic(rt, live, served=v1, shadow=v2)
    waiting = production(rt, now=T0 + dt.timedelta(days=1))
    assert waiting.verdict == "wait"
    assert any(r.startswith("bake:") for r in waiting.reasons)
    assert by_alias(rt, champion) == v1

    judged = production(rt, now=T0 + dt.timedelta(days=4))
    assert judged.verdict == "promote", judged.reasons
    evidence = judged.record["evidence"]
    assert evidence["paired"] >= 100 and evidence["challenger_rescored"] == 0
    # Only invoices labelled after v2's training cutoff count: none it learned from.
    trained_on = set(pd.read_parquet(Path(rt.settings.lake_root).parent / "ts.parquet").invoice_id)
    assert evidence["labelled_requests"] == len(set(live.invoice_id) - trained_on)
    assert by_alias(rt, champion) == v2 and by_alias(rt, challenger) is None
    assert judged.record["load_test"] == {
        "skipped": "promote.load_test.enabled is false in params.yaml"
    }

    # v3 fails 5% of its live predictions in shadow: demoted, the champion stays.
    assert staging(rt, candidate=v3, now=T0 + dt.timedelta(days=4)).verdict == "promote"
    _log_traffic(rt, live, served=v2, shadow=v3, fail=0.05)
    demoted = production(rt, now=T0 + dt.timedelta(days=8))
    assert demoted.verdict == "demote"
    assert any("error_rate" in r for r in demoted.reasons)
    assert by_alias(rt, champion) == v2 and by_alias(rt, challenger) is None

    # Every recorded decision replays to the same verdict from its record alone.
    for decision in (first, second):
        assert replay_staging(rt, decision.id)["same"]
    for decision in (skipped, crowned, judged, demoted):
        again = replay_production(rt, decision.id)
        assert again["same"] and again["replayed"] == decision.verdict

    # Rollback: v1 serves again, in one move, and the ledger tells the whole story.
    event = rollback(rt, now=T0 + dt.timedelta(days=9))
    assert by_alias(rt, champion) == v1 and event["replaced_version"] == v2
    moves = [(e["version"], e["from_alias"], e["to_alias"]) for e in ledger.events(rt)]
    assert moves == [
        (v1, "candidate", challenger),
        (v1, challenger, None),
        (v1, "candidate", challenger),
        (v1, challenger, champion),
        (v2, "candidate", challenger),
        (v2, challenger, champion),
        (v3, "candidate", challenger),
        (v3, challenger, None),
        (v1, None, champion),
    ]
    assert all(json.dumps(e) for e in ledger.events(rt))
    lines = ledger.format_events(ledger.events(rt))
    assert "rollback" in lines[-1] and f"replacing v{v2}" in lines[-1]


def test_nothing_to_judge_is_not_an_error(world: dict, tmp_path: Path) -> None:
    rt = world["rt"]
    fresh = Runtime(make_settings(tmp_path))
    assert production(fresh, now=T0).verdict == "wait"
    with pytest.raises(InputError, match="no model version at @candidate"):
        staging(fresh, now=T0)
    with pytest.raises(InputError, match="no champion yet"):
        ledger.previous_champion(fresh)
    assert rt  # the module's registry is untouched by the fresh one


def test_a_replayed_day_is_scored_by_the_champion_and_logged_as_live(world: dict) -> None:
    from kaizen.serving.predictions import read_predictions
    from kaizen.serving.traffic import replay_day, requests_of_day
    from kaizen.stages.materialize import materialize

    rt, (v1, _, _) = world["rt"], world["versions"]
    if by_alias(rt, rt.params.promote.champion_alias) is None:
        ledger.move(rt, v1, to_alias="champion", from_alias=None, decision="test", reason="test")
    champion = by_alias(rt, rt.params.promote.champion_alias)
    materialize("2026-02-07", "2026-02-09", rt)  # what the store held while 02-10 was live
    report = replay_day(rt, "2026-02-10")
    issued = requests_of_day(rt, "2026-02-10")
    # Customers landed after the materialized interval have no features in the store: 404s.
    from kaizen.lake import Partition

    before = {
        key
        for ds in rt.lake.partitions("silver", "customers")
        if ds < "2026-02-09"  # materialize's interval [02-07, 02-09) ends before 02-09
        for key in rt.lake.read_table(Partition("silver", "customers", ds), ["customer_id"])
        .column("customer_id")
        .to_pylist()
    }
    new = issued[~issued["customer_id"].isin(before)]
    assert report.requests == len(issued) > 0 and report.failed == 0
    assert report.unknown == len(new)
    assert report.served == {champion: len(issued) - len(new)}
    logged = read_predictions(rt, "2026-02-10", "2026-02-10")
    served = logged[logged["role"] == "served"]
    known = issued[~issued.index.isin(new.index)]
    assert sorted(served["invoice_id"]) == sorted(known["invoice_id"].astype(str))
    assert (served["ts"].dt.date.astype(str) == "2026-02-10").all()
    assert served["fresh"].mean() > 0.9  # the day before's features, within their TTL
    with pytest.raises(InputError, match="no requests on 2030-01-01 from the traffic sampler"):
        replay_day(rt, "2030-01-01")
