"""Feast online stores in which a value never goes back in event time.

Stock Feast's SQLite store overwrites unconditionally, so materializing an older window
after a newer one rolls features back; its Redis store reads every timestamp, then writes,
and skips an equal timestamp, so a corrected recompute of the same day is ignored. Both
stores here compare and write in one step, keep the newer-or-equal row, and write a batch
in one transaction (SQLite) or one pipeline (Redis).

A batch is written with as little Python per row as the row format allows (see
`bench/bench_feast_materialize.py`): entity keys are serialized once per row by a fast path
that gives Feast's bytes, event times are converted once per distinct value, SQLite rows go
in key order (B-tree appends instead of random inserts) from a generator (no second copy of
the batch), and Redis gets one compare-and-set script call per group of entities rather
than one per entity. Rows of the same entity keep their order, so the result is the same
as writing them one by one.

Both write `SerializedRow`s (keys and values already bytes): Feast's `online_write_batch`
rows are serialized on the way in, and `kaizen.featurestore.arrow_rows` builds them straight
from Arrow for the materialize stage, skipping Feast's per-value conversion.

SQLite reads return exactly what Feast's `SqliteOnlineStore.online_read` returns, with less
Python per call: Feast converts the event time of every feature row it fetches (50 for a
50-feature view), this converts the one timestamp each result carries. Redis reads are
Feast's own.

Used through `feature_store.yaml` (`type: kaizen.featurestore.online_stores.<Class>`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.infra.online_stores.redis import (
    RedisOnlineStore,
    RedisOnlineStoreConfig,
    RedisType,
    _versioned_fv_name,
)
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    _quote_id,
    _table_id,
    convert_timestamp,
)
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.protos.feast.types.Value_pb2 import ValueType
from feast.repo_config import RepoConfig
from google.protobuf.timestamp_pb2 import Timestamp

Row = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]
# A row with its entity key and values already serialized, the form both stores write:
# (entity key bytes, event time, created time, feature names, one serialized value each).
# `kaizen.featurestore.arrow_rows` builds these straight from Arrow, skipping the protos.
SerializedRow = tuple[bytes, datetime, datetime | None, tuple[str, ...], Sequence[bytes]]


def serialized(data: Iterable[Row], version: int) -> Iterator[SerializedRow]:
    """Feast's rows (`online_write_batch`'s `data`) as `SerializedRow`s."""
    for entity_key, values, event_ts, created_ts in data:
        yield (
            entity_key_bytes(entity_key, version),
            event_ts,
            created_ts,
            tuple(values),
            [value.SerializeToString() for value in values.values()],
        )


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


_U32 = struct.Struct("<I").pack
_I64 = struct.Struct("<q").pack
_KEY_HEADS: dict[tuple[str, int], bytes] = {}


def entity_key_bytes(entity_key: EntityKeyProto, version: int) -> bytes:
    """`serialize_entity_key(entity_key, version)`, byte for byte.

    The common case, one join key holding an int64 or a string (version 3), is built from a
    cached header; anything else goes through Feast's own function.
    """
    if version >= 3 and len(entity_key.join_keys) == 1:
        value = entity_key.entity_values[0]
        kind = value.WhichOneof("val")
        if kind == "int64_val":
            return int64_key_head(entity_key.join_keys[0]) + _I64(value.int64_val)
        if kind == "string_val":
            text = value.string_val.encode("utf8")
            return _key_head(entity_key.join_keys[0], ValueType.STRING) + _U32(len(text)) + text
    return serialize_entity_key(entity_key, entity_key_serialization_version=version)


def int64_key_head(join_key: str) -> bytes:
    """The bytes of a version-3 key of one int64 `join_key` before the value's 8 bytes."""
    return _key_head(join_key, ValueType.INT64) + b"\x08\x00\x00\x00"


def _key_head(join_key: str, value_type: int) -> bytes:
    head = _KEY_HEADS.get((join_key, value_type))
    if head is None:
        name = join_key.encode("utf8")
        head = _U32(1) + _U32(ValueType.STRING) + _U32(len(name)) + name + _U32(value_type)
        _KEY_HEADS[(join_key, value_type)] = head
    return head


class _Seconds(dict[datetime, int]):
    """Unix seconds of each distinct datetime, computed once (a batch shares a few)."""

    def __missing__(self, ts: datetime) -> int:
        seconds = self[ts] = int(_utc(ts).timestamp())
        return seconds


class _Stamps(dict[datetime, tuple[int, bytes]]):
    """(whole microseconds, serialized protobuf Timestamp) of each distinct datetime."""

    def __missing__(self, ts: datetime) -> tuple[int, bytes]:
        aware = _utc(ts)
        stamp = Timestamp()
        stamp.FromDatetime(aware)
        value = (int(aware.timestamp()) * 1_000_000 + aware.microsecond, stamp.SerializeToString())
        self[ts] = value
        return value


def _sqlite_timestamp(stored: Any) -> datetime:
    """What Feast's sqlite3 converter for `timestamp` columns makes of a stored value."""
    return convert_timestamp(stored if isinstance(stored, bytes) else str(stored).encode())


def _utc_keep_wall(ts: datetime) -> datetime:
    """Feast's reader: an aware time to UTC, a naive one labelled UTC as it is."""
    return ts.astimezone(UTC) if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


class _SerializedWrites:
    """Feast's `online_write_batch` through the store's `write_serialized`."""

    def online_write_batch(
        self,
        config: RepoConfig,
        table: Any,
        data: list[Row],
        progress: Callable[[int], Any] | None,
    ) -> None:
        self.write_serialized(  # type: ignore[attr-defined]
            config, table, serialized(data, config.entity_key_serialization_version)
        )
        if progress:
            progress(len(data))


class MonotonicSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    type: Literal["kaizen.featurestore.online_stores.MonotonicSqliteOnlineStore"] = (  # type: ignore[assignment]
        "kaizen.featurestore.online_stores.MonotonicSqliteOnlineStore"
    )


class MonotonicSqliteOnlineStore(_SerializedWrites, SqliteOnlineStore):
    """SQLite online store: an upsert only lands when its event time is not older."""

    def _get_conn(self, config: RepoConfig) -> Any:
        fresh = self._conn is None
        conn = super()._get_conn(config)
        if fresh:  # readers keep reading while a materialization writes
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def write_serialized(
        self, config: RepoConfig, table: Any, data: Iterable[SerializedRow]
    ) -> None:
        """Write rows whose keys and values are already serialized, in one transaction."""
        conn = self._get_conn(config)
        name = _quote_id(
            _table_id(config.project, table, config.registry.enable_online_feature_view_versioning)
        )
        sql = (
            f"INSERT INTO {name} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
            "VALUES (?, ?, ?, NULL, ?, ?) "
            "ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, "
            "event_ts = excluded.event_ts, created_ts = excluded.created_ts "
            f"WHERE excluded.event_ts >= {name}.event_ts"
        )
        rows = data if isinstance(data, list) else list(data)
        # Key order turns random B-tree inserts into appends; the sort is stable, so the
        # rows of one entity keep their order and the last newer-or-equal one still wins.
        order = sorted(range(len(rows)), key=lambda i: rows[i][0])
        # Feast stores SQLite timestamps as Unix seconds (its registered adapter and reader).
        seconds = _Seconds()

        def values() -> Iterator[tuple[bytes, str, bytes, int, int | None]]:
            for i in order:
                key, event_ts, created_ts, names, blobs = rows[i]
                event = seconds[event_ts]
                created = seconds[created_ts] if created_ts else None
                for feature, blob in zip(names, blobs, strict=True):
                    yield key, feature, blob, event, created

        with conn:  # one transaction for the batch
            conn.executemany(sql, values())

    def online_read(
        self,
        config: RepoConfig,
        table: Any,
        entity_keys: list[EntityKeyProto],
        requested_features: Sequence[str] | None = None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        """Feast's read (every feature of the view; the timestamp of the entity's last row),
        but `+event_ts` is an expression, so sqlite3 hands back the stored seconds instead of
        converting every row, and only the kept one is converted, the way Feast's registered
        converter does it."""
        conn = self._get_conn(config)
        version = config.entity_key_serialization_version
        keys = [entity_key_bytes(k, version) for k in entity_keys]
        name = _quote_id(
            _table_id(config.project, table, config.registry.enable_online_feature_view_versioning)
        )
        fetched = conn.execute(
            f"SELECT entity_key, feature_name, value, +event_ts FROM {name} "
            f"WHERE entity_key IN ({','.join('?' * len(keys))}) ORDER BY entity_key",
            keys,
        ).fetchall()
        found: dict[bytes, tuple[list[Any], dict[str, ValueProto]]] = {}
        for key, feature, blob, seconds in fetched:
            entry = found.get(key)
            if entry is None:
                entry = found[key] = ([None], {})
            value = ValueProto()
            value.ParseFromString(blob)
            entry[1][feature] = value
            entry[0][0] = seconds
        result: list[tuple[datetime | None, dict[str, ValueProto] | None]] = []
        for key in keys:
            entry = found.get(key)
            if entry is None:
                result.append((None, None))
            else:
                stamp = _sqlite_timestamp(entry[0][0])
                result.append((_utc_keep_wall(stamp), entry[1]))
        return result


class MonotonicRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    type: Literal["kaizen.featurestore.online_stores.MonotonicRedisOnlineStore"] = (  # type: ignore[assignment]
        "kaizen.featurestore.online_stores.MonotonicRedisOnlineStore"
    )


# Compare-and-set in one step, for each of a group of entities: write an entity's hash
# fields only if its stored event time (whole microseconds, exact in Lua's doubles) is not
# newer than the row's. KEYS: the entities' hashes. ARGV: the microseconds field, the
# timestamp field, a key TTL in seconds (0: none), the feature count F and F field names,
# then per entity its microseconds, its serialized timestamp and F values.
_CAS = """
local micros_field, ts_field = ARGV[1], ARGV[2]
local ttl, f = tonumber(ARGV[3]), tonumber(ARGV[4])
local written = 0
for i = 1, #KEYS do
  local base = 4 + f + (i - 1) * (f + 2)
  local micros = ARGV[base + 1]
  local prev = redis.call('HGET', KEYS[i], micros_field)
  if not (prev and tonumber(prev) > tonumber(micros)) then
    local args = {micros_field, micros, ts_field, ARGV[base + 2]}
    for j = 1, f do
      args[2 * j + 3] = ARGV[4 + j]
      args[2 * j + 4] = ARGV[base + 2 + j]
    end
    redis.call('HSET', KEYS[i], unpack(args))
    written = written + 1
  end
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return written
"""
# Arguments per script call: big enough to amortise a call, small enough that one call
# holds the server for well under a millisecond.
_ARGS_PER_CALL = 4096


class MonotonicRedisOnlineStore(_SerializedWrites, RedisOnlineStore):
    """Redis online store: pipelined compare-and-set script calls, each for a group of
    entities (one entity per call on a cluster, whose keys live in different slots)."""

    def _get_client(self, online_store_config: RedisOnlineStoreConfig) -> Any:
        """With a socket timeout in the connection string (a serving process), one quick
        retry instead of redis-py's default three with exponential backoff: a refused
        connection otherwise takes ~14 s to surface, and the API must answer 503 at once."""
        if not self._client and online_store_config.redis_type == RedisType.redis:
            nodes, kwargs = self._parse_connection_string(online_store_config.connection_string)
            if "socket_timeout" in kwargs:
                from redis import Redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                kwargs["retry"] = Retry(NoBackoff(), 1)
                self._client = Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **kwargs)
        return super()._get_client(online_store_config)

    def write_serialized(
        self, config: RepoConfig, table: Any, data: Iterable[SerializedRow]
    ) -> None:
        """Write rows whose keys and values are already serialized, in one pipeline."""
        store_config = config.online_store
        client = self._get_client(store_config)
        script = client.register_script(_CAS)
        view = _versioned_fv_name(table, config)  # the name Feast's reads look for
        head = [f"_tsu:{view}", f"_ts:{view}", store_config.key_ttl_seconds or 0]
        fields: dict[str, bytes] = {}  # feature -> its hash field
        project = config.project.encode("utf8")
        stamps = _Stamps()
        cluster = store_config.redis_type == RedisType.redis_cluster
        with client.pipeline(transaction=False) as pipe:
            names: tuple[str, ...] = ()
            keys: list[bytes] = []
            args: list[Any] = []
            limit = 1

            def flush() -> None:
                if keys:
                    spec = [len(names), *(fields[n] for n in names)]
                    script(keys=keys, args=[*head, *spec, *args], client=pipe)
                    keys.clear()
                    args.clear()

            for key, event_ts, _created, row_names, blobs in data:
                if row_names is not names and row_names != names:
                    flush()  # rows of a group share their feature names
                    names = row_names
                    for name in names:
                        if name not in fields:
                            fields[name] = _mmh3(f"{view}:{name}")
                    limit = 1 if cluster else max(1, _ARGS_PER_CALL // (len(names) + 2))
                keys.append(key + project)
                args += stamps[event_ts]
                args += blobs
                if len(keys) >= limit:
                    flush()
            flush()
            pipe.execute()
