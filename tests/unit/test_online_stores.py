"""Kaizen's monotonic online stores: a value never goes back in event time, and the batched
write path stores exactly what the one-row-at-a-time path stored before it.

`Before*` below are the previous implementations, kept here as the oracle: the same random
sequence of batches (out-of-order event times, equal times with new values, duplicates
within a batch, nulls) goes through both, and the stores must end up identical.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.infra.online_stores.redis import _versioned_fv_name
from feast.infra.online_stores.sqlite import SqliteOnlineStore, _quote_id, _table_id
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.types import Float64, Int64, String
from google.protobuf.timestamp_pb2 import Timestamp
from support import service_unavailable, tcp_open

from kaizen.featurestore import online_stores
from kaizen.featurestore.online_stores import (
    MonotonicRedisOnlineStore,
    MonotonicRedisOnlineStoreConfig,
    MonotonicSqliteOnlineStore,
    MonotonicSqliteOnlineStoreConfig,
    entity_key_bytes,
)

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
REDIS_DB = 12  # a database of its own; keys are per test project and removed afterwards


# -- the previous implementations (the oracle) -------------------------------------------
class BeforeSqlite(MonotonicSqliteOnlineStore):
    def online_write_batch(self, config, table, data, progress):  # type: ignore[no-untyped-def]
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
        version = config.entity_key_serialization_version
        rows = []
        for entity_key, values, event_ts, created_ts in data:
            key = serialize_entity_key(entity_key, entity_key_serialization_version=version)
            event = int(online_stores._utc(event_ts).timestamp())
            created = int(online_stores._utc(created_ts).timestamp()) if created_ts else None
            rows.extend(
                (key, feature, value.SerializeToString(), event, created)
                for feature, value in values.items()
            )
        with conn:
            conn.executemany(sql, rows)


_BEFORE_CAS = """
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev and tonumber(prev) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], unpack(ARGV, 3))
return 1
"""


class BeforeRedis(MonotonicRedisOnlineStore):
    def online_write_batch(self, config, table, data, progress):  # type: ignore[no-untyped-def]
        client = self._get_client(config.online_store)
        script = client.register_script(_BEFORE_CAS)
        view = _versioned_fv_name(table, config)
        ts_field, micros_field = f"_ts:{view}", f"_tsu:{view}"
        keys = {name: _mmh3(f"{view}:{name}") for name in (f.name for f in table.features)}
        version = config.entity_key_serialization_version
        with client.pipeline(transaction=False) as pipe:
            for entity_key, values, event_ts, _created in data:
                aware = online_stores._utc(event_ts)
                stamp = Timestamp()
                stamp.FromDatetime(aware)
                micros = int(aware.timestamp()) * 1_000_000 + aware.microsecond
                args: list[Any] = [micros_field, micros, ts_field, stamp.SerializeToString()]
                for feature, value in values.items():
                    args += [
                        keys.get(feature) or _mmh3(f"{view}:{feature}"),
                        value.SerializeToString(),
                    ]
                redis_key = _redis_key(
                    config.project, entity_key, entity_key_serialization_version=version
                )
                script(keys=[redis_key], args=args, client=pipe)
                if config.online_store.key_ttl_seconds:
                    pipe.expire(name=redis_key, time=config.online_store.key_ttl_seconds)
            pipe.execute()


# -- fixtures and data ----------------------------------------------------------------------
VIEW = FeatureView(
    name="scores",
    entities=[Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)],
    schema=[
        Field(name="count", dtype=Int64),
        Field(name="score", dtype=Float64),
        Field(name="band", dtype=String),
    ],
    source=FileSource(path="unused.parquet", timestamp_field="event_timestamp"),
    ttl=dt.timedelta(days=1),
)


def config(tmp_path: Path, project: str, online: Any) -> RepoConfig:
    return RepoConfig(
        project=project,
        provider="local",
        registry=str(tmp_path / "registry.db"),
        online_store=online,
        entity_key_serialization_version=3,
    )


def key(customer: int) -> EntityKeyProto:
    return EntityKeyProto(join_keys=["customer_id"], entity_values=[ValueProto(int64_val=customer)])


def row(customer: int, hours: float, count: int | None, created: bool = False) -> Any:
    values = {
        "count": ValueProto(int64_val=count) if count is not None else ValueProto(),
        "score": ValueProto(double_val=count / 7) if count is not None else ValueProto(),
        "band": ValueProto(string_val=f"b{count}") if count is not None else ValueProto(),
    }
    ts = T0 + dt.timedelta(hours=hours)
    return (key(customer), values, ts, ts + dt.timedelta(minutes=5) if created else None)


def random_batches(seed: int, customers: int = 40, batches: int = 12) -> list[list[Any]]:
    """Out-of-order times, equal times with new values, duplicates in a batch, nulls,
    naive and aware datetimes for the same instants."""
    rng = random.Random(seed)
    out = []
    for _ in range(batches):
        batch = []
        for _ in range(rng.randint(1, 3 * customers)):
            r = list(
                row(
                    rng.randint(1, customers),
                    rng.choice([0, 1, 1.5, 2, 3, 24]),
                    rng.choice([None, *range(50)]),
                    rng.random() < 0.5,
                )
            )
            if rng.random() < 0.2:  # the same instant, naive (Feast treats naive as UTC)
                r[2] = r[2].replace(tzinfo=None)
            batch.append(tuple(r))
        out.append(batch)
    return out


def read(store: Any, cfg: RepoConfig, customers: list[int]) -> list[Any]:
    return store.online_read(cfg, VIEW, [key(c) for c in customers])


def value_of(result: Any) -> int | None:
    _ts, values = result
    return None if values is None else values["count"].int64_val


# -- the fast entity key is Feast's key -------------------------------------------------------
@pytest.mark.parametrize(
    "entity_key",
    [
        key(0),
        key(1),
        key(-5),
        key(2**62 + 3),
        EntityKeyProto(join_keys=["customer_id"], entity_values=[ValueProto(string_val="")]),
        EntityKeyProto(join_keys=["user"], entity_values=[ValueProto(string_val="ünï cödé")]),
        EntityKeyProto(join_keys=["n"], entity_values=[ValueProto(int32_val=7)]),
        EntityKeyProto(join_keys=["b"], entity_values=[ValueProto(bytes_val=b"\x00\x01")]),
        EntityKeyProto(
            join_keys=["store", "customer_id"],
            entity_values=[ValueProto(string_val="s1"), ValueProto(int64_val=9)],
        ),
    ],
)
def test_entity_key_bytes_is_feasts_serialization(entity_key: EntityKeyProto) -> None:
    assert entity_key_bytes(entity_key, 3) == serialize_entity_key(entity_key, 3)


# -- SQLite ----------------------------------------------------------------------------------
@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[Any, Any, Any, Any]]:
    """(new store, its config, previous store, its config), each on its own file."""
    made = []
    for cls, name in ((MonotonicSqliteOnlineStore, "new"), (BeforeSqlite, "before")):
        store = cls()
        cfg = config(
            tmp_path / name,
            "kz",
            MonotonicSqliteOnlineStoreConfig(path=str(tmp_path / name / "online.db")),
        )
        store.update(cfg, [], [VIEW], [], [], False)
        made += [store, cfg]
    yield tuple(made)  # type: ignore[misc]
    for store in made[::2]:
        if store._conn is not None:
            store._conn.close()


def dump_sqlite(path: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT entity_key, feature_name, value, value_text, event_ts, created_ts "
            'FROM "kz_scores" ORDER BY entity_key, feature_name'
        ).fetchall()
    finally:
        conn.close()


def test_sqlite_newer_or_equal_wins_older_never_overwrites(sqlite_pair: Any) -> None:
    store, cfg, _before, _ = sqlite_pair
    store.online_write_batch(cfg, VIEW, [row(1, 2, 20), row(2, 2, 20)], None)
    store.online_write_batch(cfg, VIEW, [row(1, 1, 10)], None)  # older: ignored
    assert [value_of(r) for r in read(store, cfg, [1, 2])] == [20, 20]
    store.online_write_batch(cfg, VIEW, [row(1, 2, 21)], None)  # equal: a recompute lands
    store.online_write_batch(cfg, VIEW, [row(2, 3, 30)], None)  # newer: lands
    assert [value_of(r) for r in read(store, cfg, [1, 2])] == [21, 30]
    # Within one batch, an entity's rows apply in order: the last newer-or-equal one wins.
    store.online_write_batch(
        cfg, VIEW, [row(3, 2, 1), row(3, 1, 2), row(3, 2, 3), row(3, 0, 4)], None
    )
    assert value_of(read(store, cfg, [3])[0]) == 3


def test_sqlite_writes_what_the_previous_implementation_wrote(sqlite_pair: Any) -> None:
    store, cfg, before, before_cfg = sqlite_pair
    for batch in random_batches(seed=3):
        store.online_write_batch(cfg, VIEW, batch, None)
        before.online_write_batch(before_cfg, VIEW, batch, None)
    new_rows = dump_sqlite(cfg.online_store.path)
    assert len(new_rows) == 40 * 3
    assert new_rows == dump_sqlite(before_cfg.online_store.path)


def test_sqlite_reads_what_feasts_reader_returns(sqlite_pair: Any) -> None:
    store, cfg, _before, _ = sqlite_pair
    for batch in random_batches(seed=9):
        store.online_write_batch(cfg, VIEW, batch, None)
    # An entity whose features carry three different event times, so its first and last
    # rows differ in any row order: the result's time is the last row's, as in Feast.
    for feature, days in (("count", 3), ("band", 4)):
        later = (key(7), {feature: ValueProto()}, T0 + dt.timedelta(days=days), None)
        store.online_write_batch(cfg, VIEW, [later], None)
    for customers in ([1], [3, 1, 999, 3, 40, 7], list(range(1, 45))):
        keys = [key(c) for c in customers]
        ours = store.online_read(cfg, VIEW, keys)
        assert ours == SqliteOnlineStore.online_read(store, cfg, VIEW, keys)
        assert ours[0][0] is not None and ours[0][0].tzinfo is dt.UTC
    assert store.online_read(cfg, VIEW, [key(999)]) == [(None, None)]


def test_sqlite_reports_progress_per_batch(sqlite_pair: Any) -> None:
    store, cfg, _before, _ = sqlite_pair
    seen: list[int] = []
    store.online_write_batch(cfg, VIEW, [row(1, 1, 1), row(2, 1, 1)], seen.append)
    assert seen == [2]


# -- Redis -----------------------------------------------------------------------------------
@pytest.fixture
def redis_pair(tmp_path: Path) -> Iterator[Callable[..., tuple[Any, Any, Any, Any]]]:
    if not tcp_open("127.0.0.1", 6379):
        service_unavailable("Redis", "nothing answers on 127.0.0.1:6379 (run `make services`)")
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    projects: list[str] = []

    def make(**options: Any) -> tuple[Any, Any, Any, Any]:
        made = []
        for cls in (MonotonicRedisOnlineStore, BeforeRedis):
            project = f"t{uuid.uuid4().hex[:12]}"
            projects.append(project)
            online = MonotonicRedisOnlineStoreConfig(
                connection_string=f"127.0.0.1:6379,db={REDIS_DB}", **options
            )
            made += [cls(), config(tmp_path, project, online)]
        return tuple(made)  # type: ignore[return-value]

    yield make
    for project in projects:
        for name in client.scan_iter(match=b"*" + project.encode()):
            client.delete(name)


def dump_redis(cfg: RepoConfig, customers: range) -> dict[int, dict[bytes, bytes]]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    return {c: client.hgetall(_redis_key(cfg.project, key(c), 3)) for c in customers}


def test_redis_newer_or_equal_wins_older_never_overwrites(redis_pair: Any) -> None:
    store, cfg, _before, _ = redis_pair()
    store.online_write_batch(cfg, VIEW, [row(1, 2, 20), row(2, 2, 20)], None)
    store.online_write_batch(cfg, VIEW, [row(1, 1, 10)], None)
    assert [value_of(r) for r in read(store, cfg, [1, 2])] == [20, 20]
    store.online_write_batch(cfg, VIEW, [row(1, 2, 21)], None)
    store.online_write_batch(cfg, VIEW, [row(2, 3, 30)], None)
    assert [value_of(r) for r in read(store, cfg, [1, 2])] == [21, 30]
    store.online_write_batch(
        cfg, VIEW, [row(3, 2, 1), row(3, 1, 2), row(3, 2, 3), row(3, 0, 4)], None
    )
    assert value_of(read(store, cfg, [3])[0]) == 3
    # A microsecond older still never overwrites.
    entity, values, ts, _ = row(4, 2, 40)
    store.online_write_batch(cfg, VIEW, [(entity, values, ts, None)], None)
    _, older, _, _ = row(4, 2, 41)
    store.online_write_batch(
        cfg, VIEW, [(entity, older, ts - dt.timedelta(microseconds=1), None)], None
    )
    assert value_of(read(store, cfg, [4])[0]) == 40


@pytest.mark.parametrize("args_per_call", [5, 4096])  # 1 entity per call, and many
def test_redis_writes_what_the_previous_implementation_wrote(
    redis_pair: Any, monkeypatch: pytest.MonkeyPatch, args_per_call: int
) -> None:
    monkeypatch.setattr(online_stores, "_ARGS_PER_CALL", args_per_call)
    store, cfg, before, before_cfg = redis_pair()
    for batch in random_batches(seed=5):
        store.online_write_batch(cfg, VIEW, batch, None)
        before.online_write_batch(before_cfg, VIEW, batch, None)
    new = dump_redis(cfg, range(1, 41))
    assert all(new.values())
    assert new == dump_redis(before_cfg, range(1, 41))


def test_redis_groups_rows_with_different_features_and_sets_the_key_ttl(redis_pair: Any) -> None:
    import redis

    store, cfg, before, before_cfg = redis_pair(key_ttl_seconds=3600)
    partial = (key(2), {"score": ValueProto(double_val=0.5)}, T0, None)
    batch = [row(1, 1, 1), partial, row(3, 1, 3), partial, row(2, 2, 7)]
    store.online_write_batch(cfg, VIEW, batch, None)
    before.online_write_batch(before_cfg, VIEW, batch, None)
    assert dump_redis(cfg, range(1, 4)) == dump_redis(before_cfg, range(1, 4))
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    assert 0 < client.ttl(_redis_key(cfg.project, key(2), 3)) <= 3600
