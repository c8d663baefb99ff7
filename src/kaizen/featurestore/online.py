"""Online reads that respect each feature view's time-to-live.

Feast applies a view's TTL when it joins point in time offline, but not when it reads the
online store (feast-dev/feast#6821): a customer whose features stopped being materialized
keeps being served old values as if they were current. Kaizen judges every value by the
event time the online store holds for it:

* a stored feature view is stale for an entity when `now - event_timestamp > ttl` (a TTL of
  zero or none never expires; a view with no row for the entity is missing, not stale);
* an on-demand view is as fresh as the stored views it reads: stale when any of them is.

`policy` says what happens to stale values: `mark` keeps them and flags them, `refuse`
replaces them with None and flags them. `now` is always passed in.

`read_features` is the Python read path (the prediction API calls it), reading through
Feast's SDK (`feast_values`) or Kaizen's direct read of the same store
(`kaizen.featurestore.direct_read`). The feature server applies the same judgement
(`judge`) to Feast's `/get-online-features` responses.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kaizen.errors import ConfigError, InputError

Policy = Literal["mark", "refuse"]
POLICIES: tuple[Policy, ...] = ("mark", "refuse")


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


# -- the judgement -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViewFreshness:
    """One view's values for one entity.

    `event_timestamp` is the event time of the stored row (for an on-demand view, the oldest
    of the stored rows it read); None when the entity has no row there (`found` is False).
    """

    event_timestamp: dt.datetime | None
    age: dt.timedelta | None
    ttl: dt.timedelta | None  # None: never expires (and for on-demand views)
    stale: bool
    found: bool


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


def judge(
    plan: Plan,
    found: Mapping[str, Sequence[bool]],
    event_timestamps: Mapping[str, Sequence[dt.datetime | None]],
    rows: int,
    now: dt.datetime,
) -> list[dict[str, ViewFreshness]]:
    """Per entity row, each view's freshness.

    `found[view][i]` says whether the store had a row for entity i in that stored view, and
    `event_timestamps[view][i]` its event time (read only when found). A stored view absent
    from `found` had no column in the response: it counts as not found.
    """
    now = _aware(now)
    out: list[dict[str, ViewFreshness]] = [{} for _ in range(rows)]
    for view, ttl in plan.ttls.items():
        hits, stamps = found.get(view), event_timestamps.get(view)
        for i in range(rows):
            ts = stamps[i] if hits is not None and stamps is not None and hits[i] else None
            if ts is None:
                out[i][view] = ViewFreshness(None, None, ttl, stale=False, found=False)
                continue
            ts = _aware(ts)
            age = now - ts
            stale = ttl is not None and age > ttl
            out[i][view] = ViewFreshness(ts, age, ttl, stale=stale, found=True)
    for view, reads in plan.sources.items():
        for i in range(rows):
            inputs = [out[i][source] for source in reads]
            stamps_in = [v.event_timestamp for v in inputs if v.event_timestamp is not None]
            every = len(stamps_in) == len(inputs)
            oldest = min(stamps_in) if stamps_in and every else None
            out[i][view] = ViewFreshness(
                oldest,
                now - oldest if oldest is not None else None,
                None,
                stale=any(v.stale for v in inputs),
                found=every,
            )
    return out


def _aware(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts


# -- the Python read path -----------------------------------------------------------------------
@dataclass(frozen=True)
class EntityFeatures:
    """One entity row: what was asked, the values, and each view's freshness."""

    request: dict[str, Any]  # the entity row as given (join keys and request data)
    values: dict[str, Any]  # feature column -> value (None when refused, missing or null)
    views: dict[str, ViewFreshness]

    @property
    def stale_views(self) -> list[str]:
        return [name for name, view in self.views.items() if view.stale]

    @property
    def missing_views(self) -> list[str]:
        return [name for name, view in self.views.items() if not view.found]

    @property
    def fresh(self) -> bool:
        return not self.stale_views


@dataclass(frozen=True)
class OnlineFeatures:
    service: str
    policy: Policy
    now: dt.datetime
    features: list[str]  # the feature columns, in Feast's order
    entities: list[EntityFeatures]

    @property
    def stale(self) -> bool:
        return any(e.stale_views for e in self.entities)


OnlineRead = Literal["kaizen", "feast"]
ONLINE_READS: tuple[OnlineRead, ...] = ("kaizen", "feast")


def feast_values(store: Any, features: Any, entity_rows: Sequence[Mapping[str, Any]]) -> Any:
    """`OnlineValues` through Feast's SDK: `get_online_features(...).to_dict()`, with each
    stored view's found flags and event times from the response proto.

    A view counts as found for an entity when its values are not NOT_FOUND and carry an
    event time: Feast's Redis store answers a missing entity with every value PRESENT (and
    null) at the epoch, its SQLite store with NOT_FOUND."""
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    from kaizen.featurestore.direct_read import OnlineValues

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


def read_features(
    store: Any,
    service_name: str,
    entity_rows: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    policy: Policy = "refuse",
    online_read: OnlineRead = "feast",
) -> OnlineFeatures:
    """Read a FeatureService's features for `entity_rows` and judge their freshness at `now`.

    Each row holds the join keys and any request data of on-demand views, e.g.
    `{"customer_id": 5, "requested_amount": 500.0}`. A missing entity comes back with None
    values and its views in `missing_views`; it is not stale. `online_read` says who reads
    the store: Feast's SDK, or Kaizen's direct read of the same store
    (`kaizen.featurestore.direct_read`, the same values, a fraction of the time).
    """
    if policy not in POLICIES:
        raise InputError(f"unknown freshness policy {policy!r}: use mark or refuse")
    if online_read not in ONLINE_READS:
        raise InputError(f"unknown online read {online_read!r}: use kaizen or feast")
    if now.tzinfo is None:
        raise InputError("now must be timezone-aware (UTC)")
    rows = [dict(row) for row in entity_rows]
    plan = plan_for_service(store, service_name)
    if online_read == "kaizen":
        from kaizen.featurestore.direct_read import read_values

        read = read_values(store, service_name, rows)
    else:
        read = feast_values(store, service_name, rows)
    verdicts = judge(plan, read.found, read.event_timestamps, len(rows), now)
    features = [name for name in read.columns if name in plan.columns]
    entities = []
    for i, row in enumerate(rows):
        views = verdicts[i]
        entity_values = {}
        for column in features:
            value = read.columns[column][i]
            if policy == "refuse" and views[plan.columns[column]].stale:
                value = None
            entity_values[column] = value
        entities.append(EntityFeatures(request=row, values=entity_values, views=views))
    return OnlineFeatures(
        service=service_name, policy=policy, now=now, features=features, entities=entities
    )
