"""Online reads straight from the store Feast configured: what the prediction API calls.

`FeatureStore.get_online_features(...).to_dict()` costs 4-8x a raw read of the same keys
(bench row 3): per call Feast converts the entity rows to protobufs, builds a response
proto value by value, runs the on-demand view through a type-checked wrapper, and converts
the proto back to Python. Here a plan resolved once per feature list and registry version
(by Feast's own resolution, so the views, features, request data and order are Feast's)
reads the same bytes and gives the same dict:

* Redis: one HMGET per entity for every view (they share one hash), with Feast's key
  (serialized entity key + project) and fields (murmur3 of `view:feature`, `_ts:view`);
* SQLite: one SELECT over every view's table (UNION ALL), Feast's tables and rows;
* values decoded from the stored `ValueProto` bytes as `to_dict` decodes them;
* the on-demand views computed by calling their own UDF from the registry on the inputs
  Feast would hand them, outputs typed as Feast types them.

`read_values` gives `to_dict()`'s columns plus, per stored view, whether the entity has a
row and its event time: the freshness judgement (`kaizen.featurestore.online`) needs both.
Anything the plan does not cover (another store, versioned or renamed views, composite or
non-int64 keys, an on-demand view that is not a plain python UDF, values whose conversion
Feast decides case by case) goes through Feast: `None` from `plan_for`, or per call.
`tests/test_direct_read.py` compares both paths on SQLite and Redis.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from feast.infra.online_stores.helpers import _mmh3
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.infra.online_stores.sqlite import SqliteOnlineStore, _quote_id, _table_id
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from kaizen.featurestore.online_stores import (
    _I64,
    _sqlite_timestamp,
    _utc_keep_wall,
    int64_key_head,
)
from kaizen.featurestore.plans import OnlineValues, cached_per_registry, feast_values

Features = str | Sequence[str]  # a feature service's name, or `view:feature` references


# -- decoding ---------------------------------------------------------------------------------
# Oneof fields `feast_value_type_to_python_type` returns as they are (UUID strings aside).
_PLAIN = frozenset({"double_val", "float_val", "int64_val", "int32_val", "bool_val", "string_val"})
_PLAIN_TYPES = frozenset(
    {
        ValueType.DOUBLE,
        ValueType.FLOAT,
        ValueType.INT64,
        ValueType.INT32,
        ValueType.BOOL,
        ValueType.STRING,
    }
)
_CACHE_MAX = 100_000
_MISS = object()


_DOUBLE = struct.Struct("<d").unpack_from
_DOUBLE_TAG = 0x29  # field 5 (double_val), wire type 1 (64 bits)


class _Decoder:
    """Serialized `ValueProto` -> what `OnlineResponse.to_dict` gives for it.

    A double is most values and rarely repeats: a 9-byte message whose tag is double_val's
    is exactly that one field, so its 8 bytes are unpacked without a parse (~10x faster;
    `tests/test_direct_read.py` checks it against protobuf). Other scalars are immutable and
    repeat (counts, categories): each distinct blob is parsed once, in a bounded cache."""

    def __init__(self) -> None:
        self.values: dict[bytes, Any] = {}

    def __call__(self, blob: bytes | None, value_type: ValueType) -> Any:
        if not blob:
            return None
        if len(blob) == 9 and blob[0] == _DOUBLE_TAG:
            return _DOUBLE(blob, 1)[0]
        value = self.values.get(blob, _MISS)
        if value is not _MISS:
            return value
        proto = ValueProto()
        proto.ParseFromString(blob)
        kind = proto.WhichOneof("val")
        if kind not in _PLAIN or value_type not in _PLAIN_TYPES:
            return feast_value_type_to_python_type(proto, value_type)  # fresh, never shared
        value = getattr(proto, kind)
        if len(self.values) >= _CACHE_MAX:
            self.values.clear()
        self.values[blob] = value
        return value


def _plain_column(values: list[Any], value_type: ValueType) -> list[Any] | None:
    """Feast's round trip of Python values through protobuf (`python_values_to_proto_values`,
    then `to_dict`) where it is the identity but for NaN -> None; None where Feast's
    converter has to decide (numpy scalars, mixed types, ints as floats ...)."""
    kinds = {type(v) for v in values} - {type(None)}
    if value_type in (ValueType.DOUBLE, ValueType.UNKNOWN) and kinds <= {float}:
        return [None if v is None or math.isnan(v) else v for v in values]
    if value_type in (ValueType.INT64, ValueType.UNKNOWN) and kinds <= {int}:
        return values
    if value_type in (ValueType.STRING, ValueType.UNKNOWN) and kinds <= {str}:
        return values
    return None


def _as_feast_returns(values: list[Any], value_type: ValueType) -> list[Any]:
    plain = _plain_column(values, value_type)
    if plain is not None:
        return plain
    return [
        feast_value_type_to_python_type(v)
        for v in python_values_to_proto_values(values, value_type)
    ]


# -- the plan ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _StoredView:
    name: str
    features: tuple[str, ...]  # requested, in Feast's response order
    columns: tuple[str, ...]  # their response names
    value_types: tuple[ValueType, ...]
    table: str  # SQLite: the quoted table name
    fields: tuple[bytes | str, ...]  # Redis: one hash field per feature, then `_ts:<view>`
    at: int  # Redis: where the view's fields start in the entity's HMGET reply


@dataclass(frozen=True)
class _OnDemandView:
    name: str
    udf: Callable[[dict[str, Any]], dict[str, Any]]
    inputs: tuple[str, ...]  # the response and request columns Feast hands the UDF
    aliases: tuple[tuple[str, str], ...]  # (present column, also given as) its preprocessing
    outputs: frozenset[str]  # the requested output names
    types: dict[str, ValueType]
    shadowed: bool  # an input has an output's name (Feast selects from inputs + outputs)


@dataclass(frozen=True)
class Plan:
    join_key: str
    key_head: bytes  # a serialized entity key before the value's 8 bytes
    views: tuple[_StoredView, ...]
    on_demand: tuple[_OnDemandView, ...]
    request_data: frozenset[str]
    kept: frozenset[str]  # the columns `to_dict` keeps (join key and requested features)
    everything_kept: bool  # no column is read only for an on-demand view's sake
    project: bytes
    sqlite: bool  # else Redis
    decode: _Decoder

    @functools.cached_property
    def tables(self) -> tuple[str, ...]:
        return tuple(v.table for v in self.views)

    @functools.cached_property
    def fields(self) -> list[bytes | str]:
        """Redis: every view's hash fields, in one HMGET."""
        return [f for v in self.views for f in v.fields]


def plan_for(store: Any, features: Features) -> Plan | None:
    """The read plan of `features` on `store` (cached until the registry changes), or None
    when Feast must read them."""
    key = ("direct", features if isinstance(features, str) else tuple(features))
    return cached_per_registry(store, key, lambda: _build(store, features))


def _build(store: Any, features: Features) -> Plan | None:
    from feast import utils
    from feast.feature_view import DUMMY_ENTITY_ID

    online = store._get_provider().online_store  # Feast has no public handle on it
    config = store.config
    sqlite = isinstance(online, SqliteOnlineStore)
    if not (sqlite or isinstance(online, RedisOnlineStore)):
        return None
    if config.entity_key_serialization_version < 3 or getattr(
        config.registry, "enable_online_feature_view_versioning", False
    ):
        return None
    registry, project = store.registry, store.project
    wanted = (
        store.get_feature_service(features, allow_cache=True)
        if isinstance(features, str)
        else list(features)
    )
    (
        refs,
        on_demand,
        _entity_names,
        entity_types,
        join_keys,
        grouped,
        kept,
        request_data,
        entityless,
    ) = utils._get_online_request_context(registry, project, wanted, False)
    join_keys = set(join_keys) - {DUMMY_ENTITY_ID}
    if entityless or len(join_keys) != 1:
        return None
    [join_key] = join_keys
    if entity_types.get(join_key) != ValueType.INT64:
        return None
    views: list[_StoredView] = []
    at = 0
    for view, requested in grouped:
        projection = view.projection
        if (
            projection.name_alias
            or projection.join_key_map
            or getattr(projection, "version_tag", None) is not None
            or [c.name for c in view.entity_columns] != [join_key]
        ):
            return None
        types = {f.name: f.dtype.to_value_type() for f in view.features}
        views.append(
            _StoredView(
                name=view.name,
                features=tuple(requested),
                columns=tuple(requested),
                value_types=tuple(types[f] for f in requested),
                table=_quote_id(_table_id(config.project, view, False)),
                fields=(*(_mmh3(f"{view.name}:{f}") for f in requested), f"_ts:{view.name}"),
                at=at,
            )
        )
        at += len(requested) + 1
    stored_columns = [c for v in views for c in v.columns]
    ondemand = []
    odfv_names = {(v.projection.name_alias if v.projection else None) or v.name for v in on_demand}
    for odfv in on_demand:
        transformation = odfv.feature_transformation
        if (
            odfv.mode != "python"
            or odfv.singleton
            or odfv.aggregations
            or odfv.write_to_online_store
            or (odfv.projection and odfv.projection.name_alias)
            or not callable(getattr(transformation, "udf", None))
        ):
            return None
        hidden = _undeclared(odfv, on_demand, refs, odfv_names)
        inputs = tuple(
            c for c in [join_key, *sorted(request_data), *stored_columns] if c not in hidden
        )
        present = set(inputs)
        aliases = []
        for source in odfv.source_feature_view_projections.values():
            for feature in source.features:
                full = f"{source.name}__{feature.name}"
                if full in present:
                    aliases.append((full, feature.name))
                elif feature.name in present:
                    aliases.append((feature.name, full))
        outputs = frozenset(
            utils._parse_feature_ref(r)[2]
            for r in refs
            if utils._parse_feature_ref(r)[0] == odfv.name
        )
        ondemand.append(
            _OnDemandView(
                name=odfv.name,
                udf=transformation.udf,
                inputs=inputs,
                aliases=tuple(aliases),
                outputs=outputs,
                types={f.name: f.dtype.to_value_type() for f in odfv.schema},
                shadowed=not outputs.isdisjoint({*inputs, *(alias for _, alias in aliases)}),
            )
        )
    produced = {join_key, *stored_columns, *(n for o in ondemand for n in o.outputs)}
    return Plan(
        join_key=join_key,
        key_head=int64_key_head(join_key),
        views=tuple(views),
        on_demand=tuple(ondemand),
        request_data=frozenset(request_data),
        kept=frozenset(kept) | {join_key},
        everything_kept=produced <= (set(kept) | {join_key}),
        project=config.project.encode("utf8"),
        sqlite=sqlite,
        decode=_Decoder(),
    )


def _undeclared(odfv: Any, on_demand: list[Any], refs: list[str], odfv_names: set[str]) -> set:
    """Columns Feast hides from an on-demand UDF: features of views it does not declare
    (`feast.utils._augment_response_with_on_demand_transforms`, feast-dev/feast#6158)."""
    from feast import utils

    declared = {p.name for p in odfv.source_feature_view_projections.values()}
    hidden: set[str] = set()
    for ref in refs:
        view, _, feature = utils._parse_feature_ref(ref)
        if view not in odfv_names and view not in declared:
            hidden |= {feature, f"{view}__{feature}"}
    for other in on_demand:
        for projection in other.source_feature_view_projections.values():
            if projection.name not in declared:
                for feature in projection.features:
                    hidden |= {feature.name, f"{projection.name}__{feature.name}"}
    return hidden


# -- the read ---------------------------------------------------------------------------------
def read_values(
    store: Any, features: Features, entity_rows: Sequence[Mapping[str, Any]]
) -> OnlineValues:
    """`get_online_features(features, entity_rows).to_dict()`, with each stored view's
    found flags and event times, read straight from the store."""
    _refresh_registry_if_expired(store)
    plan = plan_for(store, features) if entity_rows else None
    if plan is not None:
        values = _read(store, plan, entity_rows)
        if values is not None:
            return values
    return feast_values(store, features, entity_rows)


def _refresh_registry_if_expired(store: Any) -> None:
    """Feast re-reads an expired registry cache on its read path; so does this one."""
    registry = store.registry
    valid = getattr(registry, "is_cache_valid", None)
    if callable(valid) and not valid():
        registry.list_entities(store.project, allow_cache=True)


def _read(store: Any, plan: Plan, entity_rows: Sequence[Mapping[str, Any]]) -> OnlineValues | None:
    """None when these rows need Feast (a key that is not a plain int, request data
    missing or of a type Feast converts case by case)."""
    join_key = plan.join_key
    try:
        ids = [row[join_key] for row in entity_rows]
        request = {name: [row[name] for row in entity_rows] for name in plan.request_data}
    except KeyError:
        return None  # Feast raises its own error
    if any(type(i) is not int for i in ids):
        return None
    for name, values in request.items():
        plain = _plain_column(values, ValueType.UNKNOWN)
        if plain is None:
            return None
        request[name] = plain
    try:
        keys = [plan.key_head + _I64(i) for i in ids]
    except struct.error:
        return None  # out of int64's range: Feast's error
    if plan.sqlite:
        found, stamps, columns = _read_sqlite(store, plan, keys)
    else:
        found, stamps, columns = _read_redis(store, plan, keys)
    out: dict[str, list[Any]] = {join_key: ids}
    out.update(columns)
    for odfv in plan.on_demand:
        given = {join_key: ids, **request, **columns}
        inputs = {c: list(given[c]) for c in odfv.inputs}  # a UDF may change its inputs
        for present, alias in odfv.aliases:
            inputs[alias] = inputs[present]
        produced = odfv.udf(inputs)
        for name, vector in ({**inputs, **produced} if odfv.shadowed else produced).items():
            if name in odfv.outputs:
                vector = vector if isinstance(vector, list) else [vector]
                out[name] = _as_feast_returns(vector, odfv.types.get(name, ValueType.UNKNOWN))
    return OnlineValues(
        columns=out if plan.everything_kept else {c: v for c, v in out.items() if c in plan.kept},
        found=found,
        event_timestamps=stamps,
    )


_Found = tuple[dict[str, list[bool]], dict[str, list[dt.datetime | None]], dict[str, list[Any]]]
_SQL: dict[tuple[tuple[str, ...], int], str] = {}
_SECONDS: dict[Any, dt.datetime] = {}


def _sqlite_sql(plan: Plan, n: int) -> str:
    key = (plan.tables, n)
    sql = _SQL.get(key)
    if sql is None:
        marks = ",".join("?" * n)
        key_column = "" if n == 1 else "entity_key, "  # one entity: every row is its
        # `+event_ts` is an expression: sqlite3 hands back the stored seconds rather than
        # running Feast's timestamp converter on every feature row.
        sql = _SQL[key] = " UNION ALL ".join(
            f"SELECT {i}, {key_column}feature_name, value, +event_ts FROM {v.table} "
            f"WHERE entity_key IN ({marks})"
            for i, v in enumerate(plan.views)
        )
    return sql


def _sqlite_time(seconds: Any) -> dt.datetime:
    """Feast's reading of a stored SQLite event time (its converter, labelled UTC)."""
    stamp = _SECONDS.get(seconds)
    if stamp is None:
        if len(_SECONDS) >= _CACHE_MAX:
            _SECONDS.clear()
        stamp = _SECONDS[seconds] = _utc_keep_wall(_sqlite_timestamp(seconds))
    return stamp


def _read_sqlite(store: Any, plan: Plan, keys: list[bytes]) -> _Found:
    online = store._get_provider().online_store
    conn = online._get_conn(store.config)
    params = keys * len(plan.views)
    rows = conn.execute(_sqlite_sql(plan, len(keys)), params).fetchall()
    found: dict[str, list[bool]] = {}
    stamps: dict[str, list[dt.datetime | None]] = {}
    columns: dict[str, list[Any]] = {}
    decode = plan.decode
    if len(keys) == 1:  # the prediction API's case: every row is the one entity's
        blobs: list[dict[str, bytes]] = [{} for _ in plan.views]
        last: list[Any] = [None] * len(plan.views)
        for view, feature, blob, seconds in rows:
            blobs[view][feature] = blob
            last[view] = seconds  # the event time of the entity's last row, as Feast keeps it
        for view, got, seconds in zip(plan.views, blobs, last, strict=True):
            hit = bool(got)
            found[view.name] = [hit]
            stamps[view.name] = [_sqlite_time(seconds) if hit else None]
            _one_entity(view, view.features, got.get if hit else None, decode, columns)
        return found, stamps, columns
    # view -> entity key -> (feature -> blob, seconds of its last row)
    hits: list[dict[bytes, tuple[dict[str, bytes], list[Any]]]] = [{} for _ in plan.views]
    for view, key, feature, blob, seconds in rows:
        entry = hits[view].get(key)
        if entry is None:
            entry = hits[view][key] = ({}, [None])
        entry[0][feature] = blob
        entry[1][0] = seconds
    for view, by_key in zip(plan.views, hits, strict=True):
        entries = [by_key.get(k) for k in keys]
        found[view.name] = [e is not None for e in entries]
        stamps[view.name] = [None if e is None else _sqlite_time(e[1][0]) for e in entries]
        for feature, column, value_type in zip(
            view.features, view.columns, view.value_types, strict=True
        ):
            columns[column] = [
                None if e is None else decode(e[0].get(feature), value_type) for e in entries
            ]
    return found, stamps, columns


def _one_entity(
    view: _StoredView,
    lookups: Sequence[Any],
    get: Callable[[Any], bytes | None] | None,
    decode: _Decoder,
    columns: dict[str, list[Any]],
) -> None:
    """One entity's columns of `view`: `get(lookup)` gives a feature's stored blob (SQLite:
    by name, Redis: by position in the reply), no `get` means no row. Doubles are unpacked inline: a call per value is half the cost."""
    if get is None:
        for column in view.columns:
            columns[column] = [None]
        return
    for lookup, column, value_type in zip(lookups, view.columns, view.value_types, strict=True):
        blob = get(lookup)
        if blob and len(blob) == 9 and blob[0] == _DOUBLE_TAG:
            columns[column] = [_DOUBLE(blob, 1)[0]]
        else:
            columns[column] = [decode(blob, value_type)]


_TIMESTAMPS: dict[bytes, dt.datetime] = {}


def _redis_time(blob: bytes) -> dt.datetime:
    """Feast's reading of a `_ts:<view>` field (`RedisOnlineStore._get_features_for_entity`)."""
    stamp = _TIMESTAMPS.get(blob)
    if stamp is None:
        ts = Timestamp()
        ts.ParseFromString(blob)
        if len(_TIMESTAMPS) >= _CACHE_MAX:
            _TIMESTAMPS.clear()
        stamp = _TIMESTAMPS[blob] = dt.datetime.fromtimestamp(
            ts.seconds + ts.nanos / 1_000_000_000.0, tz=dt.UTC
        )
    return stamp


def _read_redis(store: Any, plan: Plan, keys: list[bytes]) -> _Found:
    online = store._get_provider().online_store
    client = online._get_client(store.config.online_store)
    fields = plan.fields
    hashes = [k + plan.project for k in keys]
    if len(hashes) == 1:
        replies = [client.hmget(hashes[0], fields)]
    else:
        with client.pipeline(transaction=False) as pipe:
            for name in hashes:
                pipe.hmget(name, fields)
            replies = pipe.execute()
    found: dict[str, list[bool]] = {}
    stamps: dict[str, list[dt.datetime | None]] = {}
    columns: dict[str, list[Any]] = {}
    decode = plan.decode
    if len(replies) == 1:
        [reply] = replies
        for view in plan.views:
            ts = reply[view.at + len(view.features)]
            found[view.name] = [bool(ts)]
            stamps[view.name] = [_redis_time(ts) if ts else None]
            positions = range(view.at, view.at + len(view.features))
            _one_entity(view, positions, reply.__getitem__, decode, columns)
        return found, stamps, columns
    for view in plan.views:
        n, at = len(view.features), view.at
        ts = [reply[at + n] for reply in replies]
        found[view.name] = [bool(t) for t in ts]
        stamps[view.name] = [_redis_time(t) if t else None for t in ts]
        for j, (column, value_type) in enumerate(zip(view.columns, view.value_types, strict=True)):
            columns[column] = [decode(reply[at + j], value_type) for reply in replies]
    return found, stamps, columns
