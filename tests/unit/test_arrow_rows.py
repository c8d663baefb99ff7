"""The Arrow write path stores, byte for byte, what Feast's `write_to_online_store` stores.

Feast's own conversion is the oracle: each value type's encoder against
`python_values_to_proto_values`, then whole batches (nulls, NaN, repeated and unseen
categories, out-of-order times) written both ways into SQLite and Redis stores.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.repo_config import RepoConfig
from feast.type_map import python_values_to_proto_values
from feast.types import Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp
from support import service_unavailable, tcp_open

from kaizen.featurestore.arrow_rows import encode_column, serialized_rows, write_batch
from kaizen.featurestore.online_stores import (
    MonotonicRedisOnlineStoreConfig,
    MonotonicSqliteOnlineStoreConfig,
)

REDIS_DB = 12
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)

COLUMNS: dict[ValueType, list[Any]] = {
    ValueType.DOUBLE: [0.0, -0.0, 1.5, None, math.nan, math.inf, -math.inf, 1e-300, 2.0**60],
    ValueType.FLOAT: [0.0, 1.25, None, math.nan, -3.5, 1e30],
    ValueType.INT64: [0, 1, -1, 2**62, -(2**62), 7, 7, 0],
    ValueType.INT32: [0, 1, -1, 2**31 - 1, -(2**31), 5, 5],
    ValueType.STRING: ["a", "", "ünï cödé", None, "a", "north", "north"],
    ValueType.BOOL: [True, False, None, True, False],
}
ARROW = {
    ValueType.DOUBLE: pa.float64(),
    ValueType.FLOAT: pa.float32(),
    ValueType.INT64: pa.int64(),
    ValueType.INT32: pa.int32(),
    ValueType.STRING: pa.string(),
    ValueType.BOOL: pa.bool_(),
}


def _feasts(values: np.ndarray, value_type: ValueType) -> list[bytes]:
    return [v.SerializeToString() for v in python_values_to_proto_values(values, value_type)]


@pytest.mark.parametrize("value_type", list(COLUMNS), ids=lambda t: t.name)
@pytest.mark.parametrize("with_nulls", [False, True])
def test_each_encoder_gives_feasts_bytes(value_type: ValueType, with_nulls: bool) -> None:
    values = COLUMNS[value_type] + ([None] if with_nulls else [])
    # What both paths convert: the Arrow column as numpy (ints with nulls arrive as floats).
    array = pa.array(values, type=ARROW[value_type], from_pandas=True).to_numpy(
        zero_copy_only=False
    )
    assert encode_column(array, value_type) == _feasts(array, value_type)


def test_a_type_it_does_not_cover_is_left_to_feast() -> None:
    stamps = np.array(["2026-01-01T00:00:00"], dtype="datetime64[us]")
    assert encode_column(stamps, ValueType.UNIX_TIMESTAMP) is None
    assert encode_column(np.array([1, "2"], dtype=object), ValueType.INT64) is None


# -- whole batches, both ways, into real stores ------------------------------------------------
ENTITY = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
VIEW = FeatureView(
    name="scores",
    entities=[ENTITY],
    schema=[
        Field(name="customer_id", dtype=Int64),
        Field(name="count", dtype=Int64),
        Field(name="score", dtype=Float64),
        Field(name="ratio", dtype=Float32),
        Field(name="small", dtype=Int32),
        Field(name="band", dtype=String),
        Field(name="flag", dtype=Bool),
    ],
    source=FileSource(path="unused.parquet", timestamp_field="event_timestamp"),
    ttl=dt.timedelta(days=1),
)


def batch(seed: int, rows: int = 300) -> pa.RecordBatch:
    rng = np.random.default_rng(seed)
    count = rng.integers(0, 40, rows).astype(float)
    count[rng.random(rows) < 0.1] = np.nan  # an int column with nulls arrives as floats
    score = rng.normal(size=rows)
    score[rng.random(rows) < 0.1] = np.nan
    bands = np.array(["low", "mid", "high", "ünï"], dtype=object)[rng.integers(0, 4, rows)]
    bands[rng.random(rows) < 0.1] = None
    hours = rng.choice([0, 1, 2, 24], rows)  # out of order, repeated instants
    return pa.RecordBatch.from_pydict(
        {
            "customer_id": pa.array(rng.integers(1, rows // 2, rows), pa.int64()),
            "count": pa.array(count, pa.int64(), from_pandas=True),
            "score": pa.array(score, pa.float64()),
            "ratio": pa.array(score / 3, pa.float32()),
            "small": pa.array(rng.integers(-5, 5, rows), pa.int32()),
            "band": pa.array(bands, pa.string()),
            "flag": pa.array(rng.random(rows) < 0.5, pa.bool_()),
            "event_timestamp": pa.array(
                [T0 + dt.timedelta(hours=int(h)) for h in hours], pa.timestamp("us", tz="UTC")
            ),
        }
    )


def _store(tmp_path: Path, name: str, online: Any) -> FeatureStore:
    config = RepoConfig(
        project=name,
        provider="local",
        registry=str(tmp_path / name / "registry.db"),
        online_store=online,
        entity_key_serialization_version=3,
    )
    (tmp_path / name).mkdir(parents=True, exist_ok=True)
    store = FeatureStore(config=config)
    store.apply([ENTITY, VIEW])
    return store


def _write_both(feast: FeatureStore, ours: FeatureStore, batches: list[pa.RecordBatch]) -> None:
    for b in batches:
        feast.write_to_online_store("scores", b.to_pandas())
        write_batch(ours, "scores", b)


@pytest.fixture
def sqlite_stores(tmp_path: Path) -> tuple[FeatureStore, FeatureStore]:
    def make(name: str) -> FeatureStore:
        online = MonotonicSqliteOnlineStoreConfig(path=str(tmp_path / name / "online.db"))
        return _store(tmp_path, name, online)

    return make("feast"), make("ours")


def _dump_sqlite(store: FeatureStore) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(store.config.online_store.path)
    try:
        return conn.execute(
            "SELECT entity_key, feature_name, value, value_text, event_ts, created_ts "
            f'FROM "{store.project}_scores" ORDER BY entity_key, feature_name'
        ).fetchall()
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_sqlite_stores_what_feasts_path_stores(sqlite_stores: Any) -> None:
    feast, ours = sqlite_stores
    _write_both(feast, ours, [batch(seed) for seed in range(4)])
    written = _dump_sqlite(ours)
    assert len(written) > 100 * 6
    assert written == _dump_sqlite(feast)
    # Every row took the fast path: the fallback would hide a broken encoder.
    assert serialized_rows(ours.get_feature_view("scores"), batch(0), 3) is not None


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_an_all_null_batch_is_skipped_as_feast_skips_it(sqlite_stores: Any) -> None:
    feast, ours = sqlite_stores
    b = batch(1, rows=10)
    nulls = pa.RecordBatch.from_pydict(
        {
            name: (
                b.column(name)
                if name in ("customer_id", "event_timestamp")
                else pa.nulls(10, b.schema.field(name).type)
            )
            for name in b.schema.names
        }
    )
    _write_both(feast, ours, [nulls])
    assert _dump_sqlite(ours) == _dump_sqlite(feast) == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_a_view_it_does_not_cover_goes_through_feast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    online = MonotonicSqliteOnlineStoreConfig(path=str(tmp_path / "s" / "online.db"))
    store = _store(tmp_path, "s", online)
    stamped = FeatureView(
        name="stamped",
        entities=[ENTITY],
        schema=[Field(name="customer_id", dtype=Int64), Field(name="seen", dtype=UnixTimestamp)],
        source=FileSource(path="unused.parquet", timestamp_field="event_timestamp"),
    )
    store.apply([stamped])
    calls: list[str] = []
    monkeypatch.setattr(
        FeatureStore, "write_to_online_store", lambda self, name, df: calls.append(name)
    )
    b = pa.RecordBatch.from_pydict(
        {
            "customer_id": pa.array([1], pa.int64()),
            "seen": pa.array([T0], pa.timestamp("us", tz="UTC")),
            "event_timestamp": pa.array([T0], pa.timestamp("us", tz="UTC")),
        }
    )
    write_batch(store, "stamped", b)
    assert calls == ["stamped"]


@pytest.fixture
def redis_stores(tmp_path: Path) -> Iterator[tuple[FeatureStore, FeatureStore]]:
    if not tcp_open("127.0.0.1", 6379):
        service_unavailable("Redis", "nothing answers on 127.0.0.1:6379 (run `make services`)")
    import redis

    projects = [f"t{uuid.uuid4().hex[:12]}" for _ in range(2)]
    online = MonotonicRedisOnlineStoreConfig(connection_string=f"127.0.0.1:6379,db={REDIS_DB}")
    yield tuple(_store(tmp_path, p, online) for p in projects)  # type: ignore[misc]
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    for project in projects:
        for name in client.scan_iter(match=b"*" + project.encode()):
            client.delete(name)


def _dump_redis(store: FeatureStore) -> dict[bytes, dict[bytes, bytes]]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    project = store.project.encode()
    return {
        key[: -len(project)]: client.hgetall(key) for key in client.scan_iter(match=b"*" + project)
    }


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("args_per_call", [5, 4096])  # one entity per script call, and many
def test_redis_stores_what_feasts_path_stores(
    redis_stores: Any, monkeypatch: pytest.MonkeyPatch, args_per_call: int
) -> None:
    from kaizen.featurestore import online_stores

    monkeypatch.setattr(online_stores, "_ARGS_PER_CALL", args_per_call)
    feast, ours = redis_stores
    _write_both(feast, ours, [batch(seed) for seed in range(4)])
    written = _dump_redis(ours)
    assert len(written) > 100
    assert written == _dump_redis(feast)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_a_stock_feast_store_is_written_through_feast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    store = _store(tmp_path, "stock", SqliteOnlineStoreConfig(path=str(tmp_path / "o.db")))
    calls: list[str] = []
    monkeypatch.setattr(
        FeatureStore, "write_to_online_store", lambda self, name, df: calls.append(name)
    )
    write_batch(store, "scores", batch(0, rows=4))
    assert calls == ["scores"]
