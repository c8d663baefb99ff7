"""The guarded retrain request: an actionable breach asks the train DAG for a new model.

Rules, in order:

0. A breach asks only once it has lasted `retrain_persist_days` consecutive runs: a one-day
   blip in a small window is noise, a shift persists (it is alerted on its first day anyway).
1. Bad data is not drift: no request while any source or feature view of the current window
   is quarantined (the numbers behind the breach may be the bad batch itself).
2. At most one request per `retrain_cooldown_days`: a retrain takes days to be judged, and
   asking again meanwhile only queues identical runs. A rerun of the day that asked asks
   again (at least once: the asset event may not have been emitted).
3. Monitoring never moves an alias: a request only starts training; the new version waits
   at `candidate` for the promotion gates like any other.

Requests are an append-only log of records (`records/retrain_requests/`), the audit trail
and the cooldown's memory.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kaizen.lake import Partition
from kaizen.logs import get_logger
from kaizen.monitoring.alerts import Breach
from kaizen.records import RecordStore
from kaizen.runtime import Runtime

log = get_logger(__name__)
KIND = "retrain_requests"


def quarantined(rt: Runtime, days: list[str]) -> list[str]:
    """`name ds` of every quarantined source or feature-view partition in `days`."""
    return [
        f"{name} {ds}"
        for ds in days
        for name in (*rt.catalog.names, *rt.schema.views)
        if rt.lake.exists(Partition("quarantine", name, ds))
    ]


def requests(rt: Runtime) -> list[dict[str, Any]]:
    store = RecordStore.from_settings(rt.settings)
    return [store.get(KIND, i) for i in store.ids(KIND)]


def decide(rt: Runtime, ds: str, breaches: list[Breach], days: list[str]) -> dict[str, Any]:
    """Whether to request a retrain for day `ds`, and why (recorded when requested)."""
    actionable = [b for b in breaches if b.actionable]
    decision: dict[str, Any] = {
        "requested": False,
        "reasons": [b.message for b in actionable],
        "breaches": [b.key for b in actionable],
    }
    if not actionable:
        return decision | {"why": "no actionable breach"}
    persist = rt.params.monitor.retrain_persist_days
    today = dt.date.fromisoformat(ds)
    lasting = [
        b for b in actionable if (today - dt.date.fromisoformat(b.since or ds)).days + 1 >= persist
    ]
    if not lasting:
        why = (
            f"too new: {', '.join(b.key for b in actionable)} must last {persist} days "
            f"(monitor.retrain_persist_days) before it asks for a retrain"
        )
        log.info("retrain not requested yet: %s", why)
        return decision | {"why": why, "blocked_by": "persistence"}
    held = quarantined(rt, days)
    if held:
        why = "bad data is not drift: quarantined in the window: " + ", ".join(held)
        log.warning("retrain not requested: %s", why)
        return decision | {"why": why, "blocked_by": "quarantine"}
    cooldown = rt.params.monitor.retrain_cooldown_days
    past = requests(rt)
    same_day = [r for r in past if r["ds"] == ds]
    if same_day:  # a rerun of the day that asked: ask again (the event may be lost)
        return (
            decision
            | {"requested": True, "why": "requested by this day's earlier run"}
            | {"record": same_day[-1]["seq"]}
        )
    recent = [r for r in past if 0 < (today - dt.date.fromisoformat(r["ds"])).days < cooldown]
    if recent:
        why = (
            f"cooldown: a retrain was requested on {recent[-1]['ds']} "
            f"(monitor.retrain_cooldown_days={cooldown})"
        )
        log.warning("retrain not requested: %s", why)
        return decision | {"why": why, "blocked_by": "cooldown"}
    store = RecordStore.from_settings(rt.settings)
    record = store.append(
        KIND, {"ds": ds, "breaches": decision["breaches"], "reasons": decision["reasons"]}
    )
    log.warning("retrain requested for %s: %s", ds, "; ".join(decision["reasons"]))
    return decision | {"requested": True, "why": "actionable breach", "record": int(record)}
