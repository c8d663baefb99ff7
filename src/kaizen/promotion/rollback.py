"""`kaizen rollback`: the previous champion serves again, with the feature service it needs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kaizen.errors import InputError
from kaizen.model.versions import by_alias
from kaizen.promotion import ledger
from kaizen.runtime import Runtime


def ensure_feature_service(rt: Runtime, name: str) -> None:
    """The registry must hold the service a version was trained with; re-apply the repo if not."""
    from feast.errors import FeatureServiceNotFoundException

    from kaizen.featurestore.store import apply, open_store

    store = open_store(rt.settings, require_applied=False)
    try:
        store.get_feature_service(name, allow_cache=False)
        return
    except FeatureServiceNotFoundException:
        apply(rt.settings, force=True)  # the registry lacks what the repo may hold
    try:
        open_store(rt.settings, require_applied=False).get_feature_service(name, allow_cache=False)
    except FeatureServiceNotFoundException:
        raise InputError(
            f"feature service {name!r} is not in feature_repo/ any more: restore its definition, then roll back"
        ) from None


def rollback(rt: Runtime, now: dt.datetime | None = None) -> dict[str, Any]:
    from kaizen.model.registry import client

    p = rt.params.promote
    current = by_alias(rt, p.champion_alias)
    previous, _ = ledger.previous_champion(rt)
    if previous == current:
        raise InputError(f"v{previous} is already the champion")
    version = client(rt).get_model_version(rt.model_name, previous)
    service = version.tags.get("kaizen.feature_service")
    if not service:
        raise InputError(
            f"v{previous} has no kaizen.feature_service tag: cannot tell which features it needs"
        )
    ensure_feature_service(rt, service)
    now = now or dt.datetime.now(dt.UTC)
    return ledger.move(
        rt,
        previous,
        to_alias=p.champion_alias,
        from_alias=None,
        decision=f"rollback-{now:%Y%m%dT%H%M%S}",
        reason=f"rollback: v{previous} serves again in place of v{current} (feature service {service})",
        when=now,
    )
