"""The promotion ledger: every alias move, appended, never edited.

An event records when, which version, which alias it left and which it took, the decision
that justified it, the run that made it and why. Aliases are only moved through `move()`,
so the ledger and the registry cannot disagree about how a version got where it is.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from kaizen.errors import InputError
from kaizen.logs import get_logger
from kaizen.records import RecordStore
from kaizen.runtime import Runtime

log = get_logger(__name__)
KIND = "ledger"


def events(rt: Runtime) -> list[dict[str, Any]]:
    store = RecordStore.from_settings(rt.settings)
    return [store.get(KIND, record_id) for record_id in store.ids(KIND)]


def move(
    rt: Runtime,
    version: str | None,
    *,
    to_alias: str | None,
    from_alias: str | None,
    decision: str,
    reason: str,
    when: dt.datetime | None = None,
) -> dict[str, Any]:
    """Point `to_alias` at `version` (or remove `from_alias` when `to_alias` is None), and append
    the move to the ledger. The version's previous holder of `to_alias` is recorded."""
    from kaizen.model.registry import client

    registry = client(rt)
    name = rt.model_name
    replaced = None
    if to_alias:
        from kaizen.model.versions import by_alias

        replaced = by_alias(rt, to_alias)
        registry.set_registered_model_alias(name, to_alias, version)
    if from_alias and from_alias != to_alias:
        from kaizen.model.versions import by_alias

        if by_alias(rt, from_alias) == version:
            registry.delete_registered_model_alias(name, from_alias)
    event = {
        "time": (when or dt.datetime.now(dt.UTC)).isoformat(),
        "model": name,
        "version": version,
        "from_alias": from_alias,
        "to_alias": to_alias,
        "replaced_version": replaced,
        "decision": decision,
        "reason": reason,
        "run": os.environ.get("KAIZEN_AIRFLOW_RUN", "") or os.environ.get("USER", ""),
    }
    seq = RecordStore.from_settings(rt.settings).append(KIND, event)
    log.info(
        "ledger #%s: %s v%s %s -> %s (%s)",
        int(seq),
        name,
        version,
        from_alias or "-",
        to_alias or "-",
        reason,
    )
    return {**event, "seq": int(seq)}


def previous_champion(rt: Runtime) -> tuple[str, dict[str, Any]]:
    """The version the current champion replaced, from the newest champion event."""
    champion = rt.params.promote.champion_alias
    for event in reversed(events(rt)):
        if event["to_alias"] == champion:
            if not event.get("replaced_version"):
                raise InputError(
                    f"version {event['version']} was the first champion: nothing to roll back to"
                )
            return event["replaced_version"], event
    raise InputError("the ledger has no champion yet: nothing to roll back")


def format_events(items: list[dict[str, Any]]) -> list[str]:
    lines = []
    for e in items:
        moved = f"{e.get('from_alias') or '-'} -> {e.get('to_alias') or '(removed)'}"
        replaced = f", replacing v{e['replaced_version']}" if e.get("replaced_version") else ""
        lines.append(
            f"#{e['seq']:>4} {e['time'][:19]}  v{e['version']:<4} {moved:<26} {e['reason']}{replaced}"
            f"  [{e['decision']}]{'  by ' + e['run'] if e.get('run') else ''}"
        )
    return lines
