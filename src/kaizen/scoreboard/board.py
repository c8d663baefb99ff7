"""The scoreboard: what the journal, the prediction log and the truth say about the loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sklearn.metrics import roc_auc_score

from kaizen.labels import EVENT_TIMESTAMP, LABEL
from kaizen.runtime import Runtime
from kaizen.scoreboard.loop import Day
from kaizen.scoreboard.scenario import ROW_ID, Scenario

Loader = Callable[[Runtime, str], Any]
DRIFT_KINDS = ("data_drift", "prediction_drift", "positive_rate")


@dataclass
class Row:
    name: str
    value: Any
    target: str
    passed: bool | None  # None: reported, no target

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _auc(labels: pd.Series, scores: pd.Series) -> float | None:
    if labels.nunique() < 2:
        return None
    return round(float(roc_auc_score(labels, scores)), 4)


def served_scores(rt: Runtime) -> pd.DataFrame:
    """row_id -> the score the API answered with (the champion, or the canary)."""
    from kaizen.serving.predictions import read_predictions

    row_id = rt.project.row_id
    log = read_predictions(rt)
    served = log[(log["role"] == "served") & log["error"].isna() & log[row_id].notna()]
    served = served.drop_duplicates(row_id, keep="last").rename(columns={row_id: ROW_ID})
    return served[[ROW_ID, "model_version", "probability"]].astype({ROW_ID: str})


def _champion_changes(days: list[Day]) -> list[tuple[Day, str | None, str]]:
    changes, before = [], None
    for day in days:
        if day.champion and day.champion != before:
            changes.append((day, before, day.champion))
        before = day.champion or before
    return changes


def _worse(
    rt: Runtime, s: Scenario, frame: pd.DataFrame, days: list[Day], load: Loader
) -> tuple[int, list[dict[str, Any]]]:
    """Each champion change judged in hindsight: both models on the next 30 days' rows."""
    judged, worse = [], 0
    for day, old, new in _champion_changes(days):
        if old is None:
            continue
        start = pd.Timestamp(day.ds, tz="UTC") + pd.Timedelta(days=1)
        span = frame[
            (frame[EVENT_TIMESTAMP] >= start)
            & (frame[EVENT_TIMESTAMP] < start + pd.Timedelta(days=30))
        ]
        a, b = load(rt, old), load(rt, new)
        old_auc = _auc(span[LABEL], pd.Series(a.score(span)))
        new_auc = _auc(span[LABEL], pd.Series(b.score(span)))
        delta = None if old_auc is None or new_auc is None else round(new_auc - old_auc, 4)
        is_worse = delta is not None and delta < -s.board.worse_margin
        worse += is_worse
        judged.append(
            {
                "day": day.day,
                "from": old,
                "to": new,
                "old_auc": old_auc,
                "new_auc": new_auc,
                "delta": delta,
                "rows": len(span),
                "worse": is_worse,
            }
        )
    return worse, judged


def score(
    rt: Runtime,
    s: Scenario,
    days: list[Day],
    frame: pd.DataFrame,
    served: pd.DataFrame,
    oracle: pd.DataFrame,
    load: Loader | None = None,
) -> tuple[list[Row], dict[str, Any]]:
    """`load(rt, version)` gives a model with `.score(frame)` (default: from the registry)."""
    if load is None:
        from kaizen.model.versions import load
    b = s.board
    shock = b.shock_day
    by_day = {d.day: d for d in days}

    detected = next(
        (
            d.day
            for d in days
            if d.day >= shock
            and any(k.split(".")[0] in DRIFT_KINDS for k in d.monitor.get("breaches", []))
        ),
        None,
    )
    trained_after = {
        t["version"]
        for d in days
        for t in d.trained
        if t.get("version") and t.get("cutoff", "") >= s.shock_ds
    }
    new_champion = next(
        (d.day for d in days if d.day >= shock and d.champion in trained_after), None
    )
    detect_batches = detected - shock + 1 if detected else None
    champion_days = new_champion - shock + 1 if new_champion else None

    from_day = new_champion + 1 if new_champion else shock + b.champion_within_days
    since = pd.Timestamp(s.ds(min(from_day, b.days)), tz="UTC")
    issued = frame[frame[EVENT_TIMESTAMP] >= since][[ROW_ID, LABEL]]
    both = issued.merge(served, on=ROW_ID).merge(oracle, on=ROW_ID)
    served_auc = _auc(both[LABEL], both["probability"])
    oracle_auc = _auc(both[LABEL], both["oracle"])
    gap = None if served_auc is None or oracle_auc is None else round(oracle_auc - served_auc, 4)

    worse, judged = _worse(rt, s, frame, days, load)
    stable = [d for d in days if d.day < shock]
    stable_retrains = sum(bool(d.monitor.get("retrain", {}).get("requested")) for d in stable)
    window = rt.params.monitor.current_window_days
    bad = {int(t.split(":")[0]) for t in b.bad_days}
    quarantined_days = sorted(d.day for d in days if d.quarantined)
    bad_retrains = sum(
        bool(d.monitor.get("retrain", {}).get("requested"))
        and any(d.day - window < q <= d.day for q in bad)
        for d in days
    )
    blocked = sum("quarantine" in (d.monitor.get("retrain", {}).get("why") or "") for d in days)

    rows = [
        Row(
            "days from the shock to detection (daily batches)",
            detect_batches,
            f"<= {b.detect_within_days}",
            detect_batches is not None and detect_batches <= b.detect_within_days,
        ),
        Row(
            "days from the shock to a new champion",
            champion_days,
            f"<= {b.champion_within_days}",
            champion_days is not None and champion_days <= b.champion_within_days,
        ),
        Row(
            f"post-shock ROC AUC served vs oracle (from day {from_day}, {len(both)} rows)",
            f"{served_auc} vs {oracle_auc} (gap {gap})",
            f"gap <= {b.oracle_tolerance}",
            gap is not None and gap <= b.oracle_tolerance,
        ),
        Row("worse models promoted", worse, "0", worse == 0),
        Row(
            f"drift retrains in the stable {shock - 1} days",
            stable_retrains,
            "0",
            stable_retrains == 0,
        ),
        Row(
            f"retrains caused by bad-data days ({len(bad)} injected, quarantined on days "
            f"{quarantined_days}; {blocked} requests held back)",
            bad_retrains,
            "0",
            bad_retrains == 0,
        ),
    ]
    champions = _champion_changes(days)
    details = {
        "detected_day": detected,
        "new_champion_day": new_champion,
        "served_auc": served_auc,
        "oracle_auc": oracle_auc,
        "champion_changes": [
            {"day": d.day, "ds": d.ds, "from": old, "to": new} for d, old, new in champions
        ],
        "judged_promotions": judged,
        "trainings": [{"day": d.day, **t} for d in days for t in d.trained],
        "retrain_requests": [
            {"day": d.day, **d.monitor["retrain"]}
            for d in days
            if d.monitor.get("retrain", {}).get("requested")
        ],
        "quarantined": {d.day: d.quarantined for d in days if d.quarantined},
        "positive_rate_on_detection": (
            by_day[detected].monitor.get("positive_rate") if detected else None
        ),
    }
    return rows, details


def render(rows: list[Row], header: str) -> str:
    width = max(len(r.name) for r in rows)
    lines = [header, ""]
    for r in rows:
        mark = "PASS" if r.passed else ("----" if r.passed is None else "MISS")
        lines.append(f"  {r.name:<{width}}  {r.value!s:>28}  target {r.target:<9} {mark}")
    return "\n".join(lines)
