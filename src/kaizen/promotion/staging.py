"""The staging gate: a `candidate` becomes `challenger` only if every check holds.

Evidence is the candidate's frozen point-in-time holdout; the champion (if any) is scored on
the same rows. Every decision is stored as an immutable record with that holdout attached,
logged to the candidate's MLflow run, and `replay()` re-runs it from the record alone.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kaizen.errors import InputError
from kaizen.lake import PUBLISHED, Partition
from kaizen.logs import get_logger
from kaizen.model import metrics
from kaizen.model.data import LABEL
from kaizen.model.versions import Version, by_alias, holdout_of, load, manifest
from kaizen.params import PromoteParams
from kaizen.promotion import checks, ledger
from kaizen.records import RecordStore
from kaizen.runtime import Runtime

log = get_logger(__name__)
KIND = "decisions"


@dataclass
class Decision:
    id: str
    verdict: str  # "promote" | "reject" | "hold" (a challenger is still baking; nothing moves)
    record: dict[str, Any]

    @property
    def reasons(self) -> list[str]:
        return self.record["reasons"]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "verdict": self.verdict, "reasons": self.reasons}


def training_days(rt: Runtime, version: Version) -> dict[str, dict[str, Any]]:
    """Per day the version's training set drew on: published by the feature gate? held back?"""
    m = manifest(version)
    cutoff = dt.date.fromisoformat(str(m["training_set_cutoff"]))
    first_issued = dt.date.fromisoformat(str(m["training_set_first_issued"])[:10])
    first = first_issued - dt.timedelta(days=1)  # the features of the day before feed it
    days = {}
    for i in range((cutoff - first).days + 1):
        ds = (first + dt.timedelta(days=i)).isoformat()
        held = [
            name
            for name in (*rt.catalog.names, *rt.schema.views)
            if rt.lake.exists(Partition("quarantine", name, ds))
        ]
        days[ds] = {
            "published": all(rt.lake.exists(Partition(PUBLISHED, v, ds)) for v in rt.schema.views),
            "quarantined": held,
        }
    return days


def _timing(measured: dict[str, Any]) -> dict[str, float]:
    """The budget's timing; decisions recorded before the CPU-time budget kept a wall-clock p99,
    replayed as it was measured."""
    if "timing" in measured:
        return measured["timing"]
    return {"cpu_p99_ms": measured["latency_p99_ms"]}


def project_rules(rt: Runtime) -> checks.Rules:
    """The project's slices (kaizen.yaml), monotone inputs (train) and invariants: the keys
    are never inputs, so they must never move a score."""
    keys = rt.project.key_columns
    extra = [c for c in rt.params.promote.behaviour.invariant_to if c not in keys]
    return checks.Rules(
        dict(rt.project.declaration.slices),
        list(rt.params.train.monotone_increasing),
        [*keys, *extra],
    )


def evaluate_checks(
    holdout: pd.DataFrame,
    new: np.ndarray,
    old: np.ndarray | None,
    score_new: Any,
    p: PromoteParams,
    rules: checks.Rules,
    measured: dict[str, Any],
    test: str = "non_inferiority",
) -> list[checks.Check]:
    """Every check from the evidence; `measured` holds what depends on the machine or the lake
    at decision time (latency, size, the data check), recorded and reused by a replay. `test`
    is the comparison with the champion (`PromoteParams.comparison` of the trigger)."""
    y = holdout[LABEL].to_numpy()
    broken = int((~np.isfinite(np.asarray(new, dtype=float))).sum())
    if broken:  # a NaN score would crash every metric: reject on that alone, with the count
        return [
            checks.Check(
                "floors",
                False,
                f"{broken} of {len(new)} holdout scores are not finite (NaN or inf): "
                "no metric can be computed",
                {"non_finite_scores": broken},
            )
        ]
    return [
        checks.floors(metrics.score(y, new), p),
        checks.compare(y, new, old, p, test),
        checks.slices(holdout, new, old, p, rules.slices),
        checks.behaviour(score_new, holdout, p, rules),
        checks.budget(_timing(measured), measured["size_bytes"], p),
        checks.data_validated(measured["training_days"]),
    ]


def trigger_of(version: Version) -> str | None:
    """Why the version was trained (`kaizen.trigger`); None for versions from before it was
    recorded."""
    value = manifest(version).get("trigger")
    return str(value) if value else None


def staging(rt: Runtime, candidate: str | None = None, now: dt.datetime | None = None) -> Decision:
    """Judge the candidate; promote it to challenger or reject it, and record why."""
    import mlflow

    p = rt.params.promote
    candidate_alias = rt.params.register_.candidate_alias
    number = candidate or by_alias(rt, candidate_alias)
    if number is None:
        raise InputError(
            f"no model version at @{candidate_alias}: train one first (`make repro` or the train DAG)"
        )
    now = now or dt.datetime.now(dt.UTC)
    baking = by_alias(rt, p.challenger_alias)
    if baking is not None and baking != number and not p.production.replace_baking_challenger:
        # Its live evidence accrues one labelled day at a time; replacing it would start over
        # (and with retrains every few days, no challenger would ever be judged).
        reason = f"challenger v{baking} is still being judged live: v{number} waits at @{candidate_alias}"
        log.info("staging gate: %s", reason)
        return Decision(
            f"staging-v{number}-hold-{now:%Y%m%dT%H%M%S}", "hold", {"reasons": [reason]}
        )
    new_version = load(rt, number)
    champion_number = by_alias(rt, p.champion_alias)
    old_version = (
        load(rt, champion_number) if champion_number and champion_number != number else None
    )
    holdout = holdout_of(rt, new_version)
    new = new_version.score(holdout)
    old = old_version.score(holdout) if old_version else None
    measured = {
        "timing": new_version.cpu_p99_ms(holdout, p.budget.sample_rows),
        "size_bytes": new_version.size_bytes,
        "training_days": training_days(rt, new_version),
    }
    rules = project_rules(rt)
    trigger = trigger_of(new_version)
    test = p.comparison(trigger)
    results = evaluate_checks(holdout, new, old, new_version.score, p, rules, measured, test)
    verdict = "promote" if all(c.passed for c in results) else "reject"
    decision_id = f"staging-v{number}-{now:%Y%m%dT%H%M%S}"
    record = {
        "id": decision_id,
        "gate": "staging",
        "time": now.isoformat(),
        "model": rt.model_name,
        "candidate": number,
        "champion": old_version.number if old_version else None,
        "params": p.model_dump(),
        # Which test compared it with the champion, and why that one (its trigger).
        "comparison": {"test": test, "trigger": trigger},
        "rules": rules.to_record(),
        "holdout": {
            "rows": len(holdout),
            "positives": int(holdout[LABEL].sum()),
            "window": [str(holdout.event_timestamp.min()), str(holdout.event_timestamp.max())],
        },
        "metrics": {
            "candidate": metrics.score(holdout[LABEL].to_numpy(), new),
            "champion": metrics.score(holdout[LABEL].to_numpy(), old) if old is not None else None,
        },
        "measured": measured,
        "checks": [c.to_dict() for c in results],
        "verdict": verdict,
        "reasons": [f"{c.name}: {c.detail}" for c in results if not c.passed]
        or ["every check passed"],
    }
    buf = io.BytesIO()
    holdout.to_parquet(buf, index=False)
    RecordStore.from_settings(rt.settings).put(
        KIND, decision_id, record, {"holdout.parquet": buf.getvalue()}
    )
    with mlflow.start_run(run_id=new_version.run_id):
        mlflow.log_dict(record, f"decisions/{decision_id}.json")
        mlflow.set_tag("kaizen.staging", verdict)
    summary = "; ".join(record["reasons"])
    if verdict == "promote":
        ledger.move(
            rt,
            number,
            to_alias=p.challenger_alias,
            from_alias=candidate_alias,
            decision=decision_id,
            reason=f"staging gate passed: {summary}",
            when=now,
        )
    else:
        ledger.move(
            rt,
            number,
            to_alias=None,
            from_alias=candidate_alias,
            decision=decision_id,
            reason=f"staging gate rejected: {summary}",
            when=now,
        )
    log.info("staging gate %s v%s: %s (%s)", decision_id, number, verdict, summary)
    return Decision(decision_id, verdict, record)


def replay(rt: Runtime, decision_id: str) -> dict[str, Any]:
    """Re-run a recorded decision from its record and reach its verdict again."""
    store = RecordStore.from_settings(rt.settings)
    record = store.get(KIND, decision_id)
    holdout = pd.read_parquet(io.BytesIO(store.attachment(KIND, decision_id, "holdout.parquet")))
    p = PromoteParams.from_record(record["params"])
    new_version = load(rt, record["candidate"])
    old_version = load(rt, record["champion"]) if record.get("champion") else None
    new = new_version.score(holdout)
    old = old_version.score(holdout) if old_version else None
    # Records from before the project declaration have no rules: today's are the project's.
    rules = checks.Rules.from_record(record["rules"]) if "rules" in record else project_rules(rt)
    test = (record.get("comparison") or {}).get("test", "non_inferiority")
    results = evaluate_checks(
        holdout, new, old, new_version.score, p, rules, record["measured"], test
    )
    verdict = "promote" if all(c.passed for c in results) else "reject"
    recorded = {c["name"]: c["passed"] for c in record["checks"]}
    again = {c.name: c.passed for c in results}
    return {
        "decision": decision_id,
        "recorded": record["verdict"],
        "replayed": verdict,
        "same": verdict == record["verdict"] and recorded == again,
        "checks": again,
    }
