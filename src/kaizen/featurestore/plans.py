"""What an online response's columns are, and Feast's own read of them.

The pieces both read paths share (`kaizen.featurestore.online` judges freshness,
`kaizen.featurestore.direct_read` reads the store directly), so that each imports from here
and neither from the other:

* `Plan` (`plan_for_service`, `plan_for_refs`): which view each response column belongs to,
  each stored view's TTL and each on-demand view's sources; `evidence` finds one column of
  each stored view in a response;
* `cached_per_registry`: memoize per store until its registry changes;
* `OnlineValues` and `feast_values`: a read's columns (`to_dict()`), found flags and event
  times, through Feast's SDK (direct_read falls back to it).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kaizen.errors import ConfigError, InputError


# -- what a response's columns are -----------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """Which view each feature column of a response belongs to, and what makes it stale.

    Columns not in `columns` (entity keys) are never judged.
    """

    columns: dict[str, str]  # response column -> feature view or on-demand view
    ttls: dict[str, dt.timedelta | None]  # stored feature view -> TTL (None: never expires)
    sources: dict[str, tuple[str, ...]]  # on-demand view -> the stored views it reads
    view_columns: dict[str, list[str]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for column, view in self.columns.items():
            self.view_columns.setdefault(view, []).append(column)


def plan_for_service(store: Any, name: str, *, full_feature_names: bool = False) -> Plan:
    """The plan of a FeatureService's response (cached until the registry changes)."""

    def build() -> Plan:
        projections = _service(store, name).feature_view_projections
        return _build_plan(
            store,
            [(p.name, p.name_to_use(), [f.name for f in p.features]) for p in projections],
            full_feature_names,
        )

    return cached_per_registry(store, ("service", name, full_feature_names), build)


def plan_for_refs(store: Any, refs: Sequence[str], *, full_feature_names: bool = False) -> Plan:
    """The plan of a response to `view:feature` references (cached until the registry changes)."""

    def build() -> Plan:
        wanted: dict[str, tuple[str, list[str]]] = {}  # view as referenced -> (name, features)
        for ref in refs:
            view, sep, feature = str(ref).partition(":")
            if not sep or not view or not feature:
                raise InputError(f"bad feature reference {ref!r}: use <feature_view>:<feature>")
            base = view.partition("@")[0]  # Feast's `view@v2:feature` reads a version
            wanted.setdefault(view, (base, []))[1].append(feature)
        return _build_plan(
            store,
            [
                (base, base if view.partition("@")[2] in ("", "latest") else view, features)
                for view, (base, features) in wanted.items()
            ],
            full_feature_names,
        )

    return cached_per_registry(store, ("refs", tuple(refs), full_feature_names), build)


def _build_plan(
    store: Any, projections: Iterable[tuple[str, str, list[str]]], full_feature_names: bool
) -> Plan:
    """`projections`: (view name, the name its full feature names use, feature names)."""
    registry, project = store.registry, store.project
    stored = {v.name: v for v in registry.list_feature_views(project, allow_cache=True)}
    on_demand = {
        v.name: v for v in registry.list_on_demand_feature_views(project, allow_cache=True)
    }
    columns: dict[str, str] = {}
    ttls: dict[str, dt.timedelta | None] = {}
    sources: dict[str, tuple[str, ...]] = {}
    for name, prefix, features in projections:
        for feature in features:
            columns[f"{prefix}__{feature}" if full_feature_names else feature] = name
        if name in stored:
            ttl = stored[name].ttl
            ttls[name] = ttl if ttl and ttl > dt.timedelta(0) else None
        elif name in on_demand:
            sources[name] = tuple(
                p.name for p in on_demand[name].source_feature_view_projections.values()
            )
        else:
            raise InputError(f"unknown feature view {name!r} in project {project!r}")
    for view, reads in sources.items():
        unread = [source for source in reads if source not in ttls]
        if unread:
            raise InputError(
                f"the freshness of on-demand view {view!r} depends on {', '.join(unread)}: "
                "request features of those views too (or use a feature service that has them)"
            )
    return Plan(columns=columns, ttls=ttls, sources=sources)


_LOCK = threading.Lock()
_CACHE: dict[tuple[int, tuple[Any, ...]], tuple[Any, tuple[int, int], Any]] = {}


def cached_per_registry(store: Any, key: tuple[Any, ...], build: Any) -> Any:
    """Memoize per store while its registry's cached proto is the same object and version:
    building a plan reads the registry (milliseconds), the read itself takes about one."""
    proto = getattr(store.registry, "cached_registry_proto", None)
    stamp = proto.last_updated if proto is not None else None
    version = (stamp.seconds, stamp.nanos) if stamp is not None else (0, 0)
    full_key = (id(store), key)
    with _LOCK:
        hit = _CACHE.get(full_key)
    if proto is not None and hit is not None and hit[0] is proto and hit[1] == version:
        return hit[2]
    value = build()
    with _LOCK:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[full_key] = (proto, version, value)
    return value


def _service(store: Any, name: str) -> Any:
    return cached_per_registry(
        store, ("service-object", name), lambda: store.get_feature_service(name, allow_cache=True)
    )


def evidence(plan: Plan, names: Sequence[str]) -> dict[str, int]:
    """For each stored view of `plan`, the position of one of its columns in a response's
    `names` (Feast's feature names). Every on-demand column in the response must have its
    source views there too, or its freshness could not be judged."""
    index = {name: i for i, name in enumerate(names)}
    chosen = {}
    for view in plan.ttls:
        at = next((index[c] for c in plan.view_columns[view] if c in index), None)
        if at is not None:
            chosen[view] = at
    for view, reads in plan.sources.items():
        lost = [source for source in reads if source not in chosen]
        if lost and any(c in index for c in plan.view_columns[view]):
            raise ConfigError(
                f"cannot judge on-demand view {view!r}: the response has no feature of "
                + ", ".join(lost)
            )
    return chosen


# -- a read's values ---------------------------------------------------------------------------
@dataclass(frozen=True)
class OnlineValues:
    """What a read found for a list of entity rows."""

    columns: dict[str, list[Any]]  # exactly `get_online_features(...).to_dict()`
    found: dict[str, list[bool]]  # stored view -> the store holds a row for entity i
    event_timestamps: dict[str, list[dt.datetime | None]]  # ... and its event time


def feast_values(
    store: Any, features: Any, entity_rows: Sequence[Mapping[str, Any]]
) -> OnlineValues:
    """`OnlineValues` through Feast's SDK: `get_online_features(...).to_dict()`, with each
    stored view's found flags and event times from the response proto.

    A view counts as found for an entity when its values are not NOT_FOUND and carry an
    event time: Feast's Redis store answers a missing entity with every value PRESENT (and
    null) at the epoch, its SQLite store with NOT_FOUND."""
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    rows = [dict(row) for row in entity_rows]
    if isinstance(features, str):
        plan = plan_for_service(store, features)
        features = _service(store, features)
    else:
        plan = plan_for_refs(store, features)
    response = store.get_online_features(features=features, entity_rows=rows)
    proto = response.proto
    names = list(proto.metadata.feature_names.val)
    found: dict[str, list[bool]] = {}
    stamps: dict[str, list[dt.datetime | None]] = {}
    for view, at in evidence(plan, names).items():
        vector = proto.results[at]
        found[view] = [
            s != FieldStatus.NOT_FOUND and (t.seconds != 0 or t.nanos != 0)
            for s, t in zip(vector.statuses, vector.event_timestamps, strict=True)
        ]
        stamps[view] = [
            dt.datetime.fromtimestamp(t.seconds + t.nanos / 1e9, dt.UTC) if hit else None
            for t, hit in zip(vector.event_timestamps, found[view], strict=True)
        ]
    return OnlineValues(columns=response.to_dict(), found=found, event_timestamps=stamps)
