"""Row 4: `materialize` into Kaizen's SQLite and Redis online stores, against a raw bulk write
of the same rows with the same schema, in the same run. Row 4m: its peak RSS over a long
range against a short one (bounded memory).

Both sides start from the same committed lake partitions and an empty store each time:

* Kaizen: `kaizen.stages.materialize.materialize` (each chunk encoded straight from Arrow by
  `kaizen.featurestore.arrow_rows` into the monotonic stores; before 2026-11-22 it went
  through Feast's `write_to_online_store`, 0.15-0.26x of raw Redis);
* raw SQLite: read the same parquet, `executemany` plain INSERTs of (entity key, feature,
  value, event time) in one transaction into a table created with Feast's own DDL, values
  as native SQLite types (no protobuf), rows in the partition's order, sqlite3's default
  settings (the obvious hand-written bulk load: no sorting, no pragmas);
* raw Redis: read the same parquet, one pipelined HSET per entity into the same hash layout
  (Feast's key, murmur3 field names, a timestamp field), values as native redis-py values.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import struct
import sys
import time
import warnings
from typing import Any

from credit_risk.features.schema import ENTITY, VIEWS

from bench.bench_feast_common import (
    BENCH_REDIS_DB,
    REDIS_HOST,
    REDIS_PORT,
    ThroughputRow,
    Workspace,
    apply_repo,
    cleanup,
    day_list,
    flush_bench_redis,
    load_average,
    median,
    peak_rss_mb,
    pinned_off_redis,
    redis_up,
    reset_peak_rss,
    rss_now_mb,
    run_child,
    workspace,
    write_days,
)
from bench.common import PROJECT_NAME, Row
from kaizen.lake import Partition
from kaizen.transforms.contract import EVENT_TIMESTAMP

DAY = "2026-03-01"
NEXT_DAY = "2026-03-02"
PROJECT = PROJECT_NAME  # the Feast project (feature_store.yaml `project:`): its table prefix


def _entity_key_prefix() -> bytes:
    """Feast's serialized entity key (version 3) for one int64 join key, minus the value."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    full = serialize_entity_key(
        EntityKey(join_keys=[ENTITY], entity_values=[Value(int64_val=0)]), 3
    )
    return full[:-8]


def _feature_columns(table: Any) -> list[str]:
    return [c for c in table.column_names if c not in (ENTITY, EVENT_TIMESTAMP)]


def _seconds(table: Any) -> list[int]:
    import pyarrow.compute as pc

    micros = table.column(EVENT_TIMESTAMP).cast("int64")
    return pc.divide(micros, 1_000_000).to_pylist()


def _keys(table: Any, prefix: bytes) -> list[bytes]:
    pack = struct.Struct("<q").pack
    return [prefix + pack(i) for i in table.column(ENTITY).to_pylist()]


# -- raw baselines -------------------------------------------------------------------------
def raw_sqlite_tables(path: str, ddl: dict[str, list[str]]) -> None:
    """Fresh, empty tables made with Feast's own DDL."""
    conn = sqlite3.connect(path)
    try:
        for view, statements in ddl.items():
            conn.execute(f'DROP TABLE IF EXISTS "{PROJECT}_{view}"')
            for sql in statements:
                conn.execute(sql)
        conn.commit()
        conn.execute("VACUUM")
    finally:
        conn.close()


def raw_sqlite_write(ws: Workspace, path: str, days: list[str]) -> int:
    """Same rows into the same tables, one transaction, executemany of plain INSERTs."""
    prefix = _entity_key_prefix()
    conn = sqlite3.connect(path)
    try:
        rows = 0
        with conn:
            for ds in days:
                for view in VIEWS:
                    table = ws.lake.read_table(Partition("features", view, ds))
                    keys, stamps = _keys(table, prefix), _seconds(table)
                    sql = (
                        f'INSERT INTO "{PROJECT}_{view}" (entity_key, feature_name, value, '
                        "value_text, event_ts, created_ts) VALUES (?, ?, ?, NULL, ?, NULL)"
                    )
                    conn.executemany(
                        sql,
                        itertools.chain.from_iterable(
                            zip(
                                keys, itertools.repeat(name), table.column(name).to_pylist(), stamps
                            )
                            for name in _feature_columns(table)
                        ),
                    )
                    rows += table.num_rows
        return rows
    finally:
        conn.close()


def raw_redis_write(ws: Workspace, views: list[str], days: list[str]) -> int:
    """Same rows, same hash layout, one pipelined HSET per entity and view."""
    import redis
    from feast.infra.online_stores.helpers import _mmh3

    prefix = _entity_key_prefix()
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BENCH_REDIS_DB)
    project = PROJECT.encode()
    rows = 0
    for ds in days:
        for view in views:
            table = ws.lake.read_table(Partition("features", view, ds))
            names = _feature_columns(table)
            fields = [_mmh3(f"{view}:{name}") for name in names] + [f"_ts:{view}"]
            columns = [table.column(n).to_pylist() for n in names] + [_seconds(table)]
            with client.pipeline(transaction=False) as pipe:
                for key, values in zip(
                    _keys(table, prefix), zip(*columns, strict=True), strict=True
                ):
                    mapping = {f: v for f, v in zip(fields, values, strict=True) if v is not None}
                    pipe.hset(key + project, mapping=mapping)
                pipe.execute()
            rows += table.num_rows
    return rows


# -- helpers -------------------------------------------------------------------------------
def _online_db(settings: Any) -> str:
    return str(settings.feast_data_dir / "online.db")


def _feast_ddl(path: str) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        found: dict[str, list[str]] = {}
        for view in VIEWS:
            name = f"{PROJECT}_{view}"
            found[view] = [
                sql
                for (sql,) in conn.execute(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
                    "ORDER BY type DESC",  # the table before its index
                    (name,),
                )
            ]
        return found
    finally:
        conn.close()


def _empty_sqlite_store(path: str) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            for view in VIEWS:
                conn.execute(f'DELETE FROM "{PROJECT}_{view}"')
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
    finally:
        conn.close()


def _materialize(rt: Any, start: str = DAY, end: str = NEXT_DAY) -> int:
    import logging

    from kaizen.stages.materialize import materialize

    logging.getLogger("kaizen.stages.materialize").setLevel(logging.ERROR)  # missing overlap days
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return materialize(start, end, rt).rows_in


def _time(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


# -- row 4 -------------------------------------------------------------------------------
def throughput_rows(ws: Workspace, customers: int, repeat: int) -> list[Row]:
    from kaizen.runtime import Runtime

    rows: list[Row] = []
    raw_db = str(ws.root / "raw-materialize.db")
    for online in ("sqlite", "redis"):
        if online == "redis" and not redis_up():
            print("  redis unavailable: row 4 redis skipped", flush=True)
            continue
        settings = ws.settings(online)
        if online == "redis":
            flush_bench_redis()
        apply_repo(settings)
        rt = Runtime(settings)
        kaizen_s: list[float] = []
        raw_s: list[float] = []
        n = n_raw = 0

        def reset(settings: Any = settings, online: str = online) -> None:
            """Empty both stores, outside the timings."""
            if online == "sqlite":
                _empty_sqlite_store(_online_db(settings))
                raw_sqlite_tables(raw_db, _feast_ddl(_online_db(settings)))
            else:
                flush_bench_redis()

        def raw(online: str = online) -> int:
            if online == "sqlite":
                return raw_sqlite_write(ws, raw_db, [DAY])
            return raw_redis_write(ws, list(VIEWS), [DAY])

        with pinned_off_redis() as cpu:
            loads = [load_average()]
            for i in range(repeat + 1):  # the first round warms up both
                reset()
                took, n = _time(lambda rt=rt: _materialize(rt))
                if i:
                    kaizen_s.append(took)
                reset()
                took, n_raw = _time(raw)
                if i:
                    raw_s.append(took)
            loads.append(load_average())
        if online == "redis":
            flush_bench_redis()
        assert n == n_raw, f"Kaizen wrote {n} rows, the baseline {n_raw}"
        features = sum(
            len(_feature_columns(ws.lake.read_table(Partition("features", v, DAY)))) for v in VIEWS
        )
        k, r = median(kaizen_s), median(raw_s)
        rows.append(
            ThroughputRow(
                row=f"4-{online}",  # one id per store: the report keys rows by id
                hot_path=(
                    f"materialize {customers:,} customers x {len(VIEWS)} views "
                    f"({n:,} entity rows, {features} features), {online}"
                ),
                baseline=(
                    "raw executemany, one transaction, Feast's DDL"
                    if online == "sqlite"
                    else "raw pipelined HSET, same hash layout"
                ),
                measured_s=k,
                baseline_s=r,
                goal=">= 0.5x",
                notes=(
                    f"ratio = Kaizen rows/s / raw rows/s: {n / k:,.0f} vs {n / r:,.0f} rows/s; "
                    f"median of {repeat}, empty store each time; benchmark thread pinned to cpu {cpu}; "
                    f"load {loads[0]} -> {loads[1]}"
                ),
                extra={
                    "kaizen_s": kaizen_s,
                    "raw_s": raw_s,
                    "rows": n,
                    "cpu": cpu,
                    "load": loads,
                },
            )
        )
    return rows


# -- row 4m: peak RSS over a long range ----------------------------------------------------
def _child(payload: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: materialize [start, end) and report its peak RSS."""
    import logging

    from kaizen.config import Settings
    from kaizen.featurestore.store import open_store
    from kaizen.runtime import Runtime

    logging.basicConfig(level=logging.ERROR)
    settings = Settings(_env_file=None, **payload["settings"])
    rt = Runtime(settings)
    open_store(settings)
    rss_before = rss_now_mb()
    reset_peak_rss()
    took, rows = _time(lambda: _materialize(rt, payload["start"], payload["end"]))
    return {"rows": rows, "seconds": took, "rss_before_mb": rss_before, "peak_mb": peak_rss_mb()}


def memory_row(ws: Workspace, customers: int, short_days: int, long_days: int) -> Row:
    settings = ws.settings("sqlite")
    apply_repo(settings)
    # Overlap days before the interval are loaded too, so the lake starts that much earlier.
    from kaizen.params import load_params

    overlap = load_params(settings.params_file).feature_store.materialize_overlap_days
    days = day_list("2026-01-01", long_days + overlap)
    write_days(ws, list(VIEWS), customers, days)
    payload_settings = {
        "home": str(settings.home),
        "project": PROJECT_NAME,
        "feast_repo": str(settings.feast_repo),
        "lake_root": settings.lake_root,
        "feast_data_dir": str(settings.feast_data_dir),
        "feast_online_store": "sqlite",
        "feast_registry": "file",
    }
    results = {}
    for label, count in (("short", short_days), ("long", long_days)):
        _empty_sqlite_store(_online_db(settings))
        first = days[overlap]
        end = day_list(first, count + 1)[-1]
        results[label] = run_child(
            "bench.bench_feast_materialize",
            {"settings": payload_settings, "start": first, "end": end},
        )
    short, long = results["short"], results["long"]
    grow = lambda r: r["peak_mb"] - r["rss_before_mb"]  # noqa: E731
    return Row(
        row="4m",
        hot_path=(
            f"materialize peak RSS growth in MB (not s), {long_days}+{overlap} days x "
            f"{customers:,} customers x {len(VIEWS)} views ({long['rows']:,} rows), sqlite"
        ),
        baseline=f"the same over {short_days}+{overlap} days ({short['rows']:,} rows)",
        measured_s=grow(long),
        baseline_s=grow(short),
        goal="report",
        notes=(
            f"peak RSS {long['peak_mb']:.0f} MB vs {short['peak_mb']:.0f} MB "
            f"(process before the stage {long['rss_before_mb']:.0f} / {short['rss_before_mb']:.0f} MB); "
            f"{long['rows'] / long['seconds']:,.0f} rows/s over the long range; each range in its own process"
        ),
        extra={"short": short, "long": long},
    )


def run(size: dict[str, int]) -> list[Row]:
    ws = workspace("materialize")
    try:
        write_days(ws, list(VIEWS), size["customers"], [DAY])
        rows = throughput_rows(ws, size["customers"], size["repeat"])
    finally:
        cleanup(ws)
    ws = workspace("materialize-memory")
    try:
        rows.append(memory_row(ws, size["memory_customers"], size["short_days"], size["long_days"]))
    finally:
        cleanup(ws)
    return rows


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.stdin.read()))))
    with contextlib.suppress(Exception):
        sys.stdout.flush()
