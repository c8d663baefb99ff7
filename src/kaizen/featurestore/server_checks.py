"""What the feature server accepts: each request body checked against the registry before
Feast sees it.

Feast's app answers many bad requests with a 500 (a null join key, a write with the wrong
columns, an empty `entities`), silently coerces others (an int64 key `"5"` or `5.5` reads
entity 5, `true` entity 1, an integer event time is read as nanoseconds) and writes whatever
event time it is given, so one write stamped in 2099 outlives every later materialize (the
online stores keep the newest event time). Each check here returns the body Feast should
get (event times normalized to UTC) or raises `Refused` with the status and one line.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kaizen.errors import InputError
from kaizen.featurestore.plans import cached_per_registry, plan_for_refs, plan_for_service

Body = dict[str, Any]


class Refused(Exception):
    """A request the feature server answers with `status` and `detail`, before Feast."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class Limits:
    """What one request may carry (KAIZEN_FEATURE_SERVER_* settings)."""

    max_entities: int = 1000  # entity rows of a read, rows of a write
    max_body_bytes: int = 1_048_576
    future_tolerance: dt.timedelta = dt.timedelta(minutes=5)


Check = Callable[[Any, Body, Limits, dt.datetime], Body]


# -- values ---------------------------------------------------------------------------------
_INT_RANGE = {"int32": 2**31, "int64": 2**63}
_KINDS = {
    "INT32": "int32",
    "INT64": "int64",
    "FLOAT32": "float",
    "FLOAT64": "float",
    "STRING": "string",
    "BOOL": "bool",
    "UNIX_TIMESTAMP": "timestamp",
}


def kind_of(dtype: Any) -> str | None:
    """`int64`, `float`, `string`, `bool`, `timestamp` (or `list of <kind>`) for a Feast
    type; None for the types this server does not check (bytes, maps, JSON, ...)."""
    base = getattr(dtype, "base_type", None)
    if base is not None:  # feast.types.Array
        inner = kind_of(base)
        return f"list of {inner}" if inner and not inner.startswith("list") else None
    return _KINDS.get(getattr(dtype, "name", ""))


def _fits(kind: str, value: Any) -> bool:
    if kind.startswith("list of "):
        return isinstance(value, list) and all(v is None or _fits(kind[8:], v) for v in value)
    if kind in _INT_RANGE:  # JSON true/false are Python ints: refuse them
        limit = _INT_RANGE[kind]
        return type(value) is int and -limit <= value < limit
    if kind == "float":
        return type(value) in (int, float) and math.isfinite(value)
    if kind == "string":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "timestamp":
        return isinstance(value, str) and _parse_time(value) is not None
    return True


def _parse_time(text: str) -> dt.datetime | None:
    """An ISO 8601 time (naive means UTC, as in Feast) as an aware datetime, else None."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _utc_text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _columns(name: str, data: Any, limits: Limits, what: str) -> int:
    """Check `data` is {column: [values]} of one length in 1..max_entities; return it."""
    if not isinstance(data, dict) or not data:
        raise Refused(400, f"{name} must be a non-empty object of {what} -> list of values")
    lengths = set()
    for column, values in data.items():
        if not isinstance(values, list):
            raise Refused(400, f"{name}.{column} must be a list (one value per row)")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise Refused(400, f"{name}: every column must have the same number of values")
    (rows,) = lengths
    if rows == 0:
        raise Refused(400, f"{name}: no rows")
    if rows > limits.max_entities:
        raise Refused(
            413,
            f"{rows} rows in one request: at most {limits.max_entities} "
            "(KAIZEN_FEATURE_SERVER_MAX_ENTITIES)",
        )
    return rows


def _typed(
    name: str,
    data: Mapping[str, list[Any]],
    kinds: Mapping[str, str | None],
    nullable: frozenset[str] = frozenset(),
) -> None:
    for column, kind in kinds.items():
        if kind is None or column not in data:
            continue
        for i, value in enumerate(data[column]):
            if value is None:
                if column in nullable:
                    continue
                raise Refused(400, f"{name}.{column}[{i}] is null")
            if not _fits(kind, value):
                expected = {
                    "timestamp": "an ISO 8601 time string",
                    "int32": "an int32",
                    "int64": "an int64",
                }.get(kind, f"a {kind}")
                raise Refused(400, f"{name}.{column}[{i}] must be {expected}, not {_short(value)}")


def _exact_columns(
    name: str, data: Mapping[str, Any], required: list[str], optional: frozenset[str] = frozenset()
) -> None:
    missing = [c for c in required if c not in data]
    if missing:
        raise Refused(400, f"{name} lacks {', '.join(missing)} (it needs {', '.join(required)})")
    unknown = sorted(set(data) - set(required) - optional)
    if unknown:
        raise Refused(400, f"{name} has unknown columns {', '.join(unknown)}")


def _fields(body: Body, allowed: set[str], required: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Refused(
            400, f"unknown field {unknown[0]!r}: this route takes {', '.join(sorted(allowed))}"
        )
    missing = sorted(required - set(body))
    if missing:
        raise Refused(400, f"missing field {missing[0]!r}")
    for flag in (
        "full_feature_names",
        "include_feature_view_version_metadata",
        "allow_registry_cache",
        "transform_on_write",
        "disable_event_timestamp",
    ):
        if flag in body and not isinstance(body[flag], bool):
            raise Refused(400, f"{flag} must be true or false")


def _not_future(
    name: str, column: str, values: list[Any], limits: Limits, now: dt.datetime
) -> list[Any]:
    """The column's times in UTC; refused if one is past `now` + the tolerance."""
    latest = now + limits.future_tolerance
    out = []
    for i, text in enumerate(values):
        if text is None:
            out.append(None)
            continue
        when = _parse_time(text)
        assert when is not None  # _typed checked it
        if when > latest:
            raise Refused(
                400,
                f"{name}.{column}[{i}] = {text} is in the future (more than "
                f"{limits.future_tolerance.total_seconds():g} s past the server's clock, "
                "KAIZEN_FEATURE_SERVER_FUTURE_TOLERANCE_SECONDS): nothing was written",
            )
        out.append(_utc_text(when))
    return out


# -- the registry ---------------------------------------------------------------------------
def _stored_views(store: Any) -> dict[str, Any]:
    def build() -> dict[str, Any]:
        registry, project = store.registry, store.project
        views = registry.list_feature_views(project, allow_cache=True)
        views += registry.list_stream_feature_views(project, allow_cache=True)
        return {v.name: v for v in views}

    return cached_per_registry(store, ("stored-views",), build)


def _on_demand_views(store: Any) -> dict[str, Any]:
    def build() -> dict[str, Any]:
        views = store.registry.list_on_demand_feature_views(store.project, allow_cache=True)
        return {v.name: v for v in views}

    return cached_per_registry(store, ("on-demand-views",), build)


def _service(store: Any, name: str) -> Any:
    def build() -> Any:
        services = store.registry.list_feature_services(store.project, allow_cache=True)
        return next((s for s in services if s.name == name), None)

    return cached_per_registry(store, ("service-or-none", name), build)


def _versioning(store: Any) -> bool:
    return bool(getattr(store.config.registry, "enable_online_feature_view_versioning", False))


def _key_kinds(view: Any, join_key_map: Mapping[str, str] | None = None) -> dict[str, str | None]:
    renamed = join_key_map or {}
    return {renamed.get(f.name, f.name): kind_of(f.dtype) for f in view.entity_columns}


def _read_keys(store: Any, views: Mapping[str, Mapping[str, str]]) -> dict[str, str | None]:
    """The entity keys (join keys and request data) a read of `views` needs, with kinds.
    `views`: view name -> its projection's join key map."""
    stored, on_demand = _stored_views(store), _on_demand_views(store)
    keys: dict[str, str | None] = {}
    for name, join_key_map in views.items():
        if name in stored:
            keys.update(_key_kinds(stored[name], join_key_map))
            continue
        view = on_demand.get(name)
        if view is None:
            raise Refused(404, f"unknown feature view {name!r}")
        for source in view.source_request_sources.values():
            keys.update({f.name: kind_of(f.dtype) for f in source.schema})
        for projection in view.source_feature_view_projections.values():
            if projection.name in stored:
                keys.update(_key_kinds(stored[projection.name], projection.join_key_map))
    return keys


# -- the routes -----------------------------------------------------------------------------
def check_read(store: Any, body: Body, limits: Limits, now: dt.datetime) -> Body:
    """`POST /get-online-features`."""
    _fields(
        body,
        {
            "entities",
            "feature_service",
            "features",
            "full_feature_names",
            "include_feature_view_version_metadata",
        },
        {"entities"},
    )
    service, refs = body.get("feature_service"), body.get("features")
    if (service is None) == (refs is None):
        raise Refused(400, "give either feature_service or features (a list of view:feature)")
    full = body.get("full_feature_names", False)
    views: dict[str, Mapping[str, str]] = {}
    if service is not None:
        if not isinstance(service, str) or not service:
            raise Refused(400, "feature_service must be a name")
        found = _service(store, service)
        if found is None:
            raise Refused(404, f"unknown feature service {service!r}")
        views = {p.name: p.join_key_map for p in found.feature_view_projections}
    else:
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise Refused(400, "features must be a non-empty list of view:feature strings")
        views = {name: {} for name in _checked_refs(store, refs)}
    try:  # the freshness layer's plan: an on-demand view needs its sources in the request
        if service is not None:
            plan_for_service(store, service, full_feature_names=full)
        else:
            plan_for_refs(store, refs, full_feature_names=full)
    except InputError as exc:
        raise Refused(400, str(exc)) from None
    entities = body["entities"]
    _columns("entities", entities, limits, "entity key")
    keys = _read_keys(store, views)
    _exact_columns("entities", entities, list(keys))
    _typed("entities", entities, keys)
    return body


def _checked_refs(store: Any, refs: list[str]) -> list[str]:
    stored, on_demand = _stored_views(store), _on_demand_views(store)
    names = []
    for ref in refs:
        view, sep, feature = ref.partition(":")
        base, at, _version = view.partition("@")
        if not sep or not base or not feature:
            raise Refused(400, f"bad feature reference {ref!r}: use <feature_view>:<feature>")
        if at and not _versioning(store):
            raise Refused(400, f"{ref!r}: versioned reads are off in this feature store")
        found = stored.get(base) or on_demand.get(base)
        if found is None:
            raise Refused(404, f"unknown feature view {base!r} in {ref!r}")
        if not at and feature not in {f.name for f in found.features}:
            raise Refused(404, f"unknown feature {feature!r} of view {base!r}")
        names.append(base)
    return list(dict.fromkeys(names))


def check_write(store: Any, body: Body, limits: Limits, now: dt.datetime) -> Body:
    """`POST /write-to-online-store`: rows for one stored feature view."""
    _fields(
        body,
        {"feature_view_name", "df", "allow_registry_cache", "transform_on_write"},
        {"feature_view_name", "df"},
    )
    name = body["feature_view_name"]
    if not isinstance(name, str):
        raise Refused(400, "feature_view_name must be a name")
    view = _stored_views(store).get(name)
    if view is None:
        if name in _on_demand_views(store):
            raise Refused(400, f"{name!r} is an on-demand view: write its sources instead")
        raise Refused(404, f"unknown feature view {name!r}")
    df = body["df"]
    _columns("df", df, limits, "column")
    return {**body, "df": _checked_rows("df", df, [view], view.batch_source, limits, now)}


def _checked_rows(
    name: str,
    df: Body,
    views: list[Any],
    source: Any,
    limits: Limits,
    now: dt.datetime,
) -> Body:
    """`df`'s columns are the views' keys, features and the source's event time (and
    optionally its created time): typed, keys not null, no time in the future."""
    event, created = source.timestamp_field, source.created_timestamp_column or ""
    kinds: dict[str, str | None] = {}
    for view in views:
        kinds.update(_key_kinds(view))
    keys = list(kinds)
    for view in views:
        kinds.update({f.name: kind_of(f.dtype) for f in view.features})
    kinds[event] = "timestamp"
    optional = {created} if created else set()
    _exact_columns(name, df, list(kinds), frozenset(optional))
    if created and created in df:
        kinds[created] = "timestamp"
    _typed(name, df, kinds, nullable=frozenset(set(kinds) - {*keys, event}))
    out = dict(df)
    for column in (event, created):
        if column and column in df:
            out[column] = _not_future(name, column, df[column], limits, now)
    return out


def check_push(store: Any, body: Body, limits: Limits, now: dt.datetime) -> Body:
    """`POST /push`: rows for every feature view fed by one push source."""
    from feast.data_source import PushSource

    _fields(
        body,
        {"push_source_name", "df", "allow_registry_cache", "to", "transform_on_write"},
        {"push_source_name", "df"},
    )
    name, to = body["push_source_name"], body.get("to", "online")
    if to not in ("online", "offline", "online_and_offline"):
        raise Refused(400, "to must be online, offline or online_and_offline")
    sources = store.registry.list_data_sources(store.project, allow_cache=True)
    source = next((s for s in sources if s.name == name and isinstance(s, PushSource)), None)
    if source is None:
        raise Refused(404, f"unknown push source {name!r}")
    views = [
        v for v in _stored_views(store).values() if getattr(v.stream_source, "name", None) == name
    ]
    df = body["df"]
    _columns("df", df, limits, "column")
    return {**body, "df": _checked_rows("df", df, views, source.batch_source, limits, now)}


def check_materialize(store: Any, body: Body, limits: Limits, now: dt.datetime) -> Body:
    """`POST /materialize`: [start_ts, end_ts) may not end past the clock and tolerance,
    or rows stamped in the future would reach the online store."""
    _fields(
        body,
        {
            "start_ts",
            "end_ts",
            "feature_views",
            "disable_event_timestamp",
            "full_feature_names",
            "version",
        },
        set(),
    )
    _checked_views(store, body)
    if body.get("disable_event_timestamp"):
        return body  # Feast then materializes [epoch, now)
    start = _time_field(body, "start_ts")
    end = _end(body, limits, now)
    if start >= end:
        raise Refused(400, "start_ts must be before end_ts")
    return {**body, "start_ts": _utc_text(start), "end_ts": _utc_text(end)}


def check_materialize_incremental(store: Any, body: Body, limits: Limits, now: dt.datetime) -> Body:
    """`POST /materialize-incremental`: up to end_ts, never past the clock and tolerance."""
    _fields(body, {"end_ts", "feature_views", "full_feature_names", "version"}, {"end_ts"})
    _checked_views(store, body)
    return {**body, "end_ts": _utc_text(_end(body, limits, now))}


def _checked_views(store: Any, body: Body) -> None:
    if body.get("version") is not None and not _versioning(store):
        raise Refused(400, "version: versioned feature views are off in this feature store")
    names = body.get("feature_views")
    if names is None:
        return
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Refused(400, "feature_views must be a list of feature view names")
    stored = _stored_views(store)
    unknown = [n for n in names if n not in stored]
    if unknown:
        raise Refused(404, f"unknown feature view {unknown[0]!r}")


def _time_field(body: Body, field: str) -> dt.datetime:
    text = body.get(field)
    when = _parse_time(text) if isinstance(text, str) else None
    if when is None:
        raise Refused(400, f"{field} must be an ISO 8601 time, not {_short(text)}")
    return when


def _end(body: Body, limits: Limits, now: dt.datetime) -> dt.datetime:
    end = _time_field(body, "end_ts")
    if end > now + limits.future_tolerance:
        raise Refused(
            400,
            f"end_ts = {body['end_ts']} is in the future (more than "
            f"{limits.future_tolerance.total_seconds():g} s past the server's clock): "
            "rows stamped after now would reach the online store",
        )
    return end
