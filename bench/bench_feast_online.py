"""Row 3: online read latency, one entity per call, against a raw read of the same keys from
the same store, in the same run, interleaved call by call so every side sees the same noise.

* the model's FeatureService (credit_risk_v1: three views and the on-demand view, with its
  request data) and a synthetic 50-feature view;
* SQLite: Feast's own tables, raw `sqlite3` SELECT of the entity's rows (one per view),
  fetched but not decoded;
* Redis: Feast's own hash, raw `redis-py` HMGET of exactly the fields Feast reads (one
  command for every view), fetched but not decoded.

Two read paths, each giving the values a caller needs:

* `3-<store>-<case>` (the goal rows): Kaizen's direct read, what the prediction API calls
  (`kaizen.featurestore.direct_read.read_values`: Feast's `to_dict()` plus each view's
  event times);
* `3f-<store>-<case>` (for the record): Feast's SDK, `get_online_features(...).to_dict()`.

Each call reads a random entity; the sides take turns going first. On a shared machine p99
is sensitive to load: the row notes the load average, and p50 alongside.
"""

from __future__ import annotations

import random
import sqlite3
import struct
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

from credit_risk.features.schema import ENTITY, VIEWS

from bench.bench_feast_common import (
    BENCH_REDIS_DB,
    REDIS_HOST,
    REDIS_PORT,
    WIDE_FEATURES,
    WIDE_VIEW,
    Workspace,
    apply_repo,
    cleanup,
    flush_bench_redis,
    load_average,
    percentile,
    pinned_off_redis,
    redis_up,
    workspace,
    write_days,
)
from bench.bench_feast_materialize import DAY, PROJECT, _entity_key_prefix, _materialize
from bench.common import Row, feature_names
from kaizen.featurestore.direct_read import read_values
from kaizen.lake import Partition

SERVICE = "credit_risk_v1"


def _load(ws: Workspace, settings: Any, store: Any) -> None:
    from kaizen.runtime import Runtime

    _materialize(Runtime(settings))
    frame = ws.lake.read_table(Partition("features", WIDE_VIEW, DAY)).to_pandas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for start in range(0, len(frame), 50_000):
            store.write_to_online_store(WIDE_VIEW, frame.iloc[start : start + 50_000])


def _cases(store: Any) -> dict[str, tuple[Any, list[str], bool]]:
    """case -> (Feast `features` argument, views read, needs request data)."""
    service = store.get_feature_service(SERVICE)
    views = [p.name for p in service.feature_view_projections if p.name in VIEWS]
    return {
        SERVICE: (service, views, True),
        WIDE_VIEW: ([f"{WIDE_VIEW}:{f}" for f in WIDE_FEATURES], [WIDE_VIEW], False),
    }


def _raw_sqlite(path: str, views: list[str]) -> Callable[[bytes], Any]:
    conn = sqlite3.connect(path, check_same_thread=False)
    sqls = [
        f'SELECT entity_key, feature_name, value, event_ts FROM "{PROJECT}_{v}" WHERE entity_key = ?'
        for v in views
    ]

    def read(key: bytes) -> Any:
        return [conn.execute(sql, (key,)).fetchall() for sql in sqls]

    return read


def _raw_redis(views: list[str]) -> Callable[[bytes], Any]:
    import redis
    from feast.infra.online_stores.helpers import _mmh3

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BENCH_REDIS_DB)
    fields: list[bytes | str] = []
    for view in views:
        names = WIDE_FEATURES if view == WIDE_VIEW else feature_names(view)
        fields += [_mmh3(f"{view}:{n}") for n in names] + [f"_ts:{view}"]
    project = PROJECT.encode()

    def read(key: bytes) -> Any:
        return client.hmget(key + project, fields)

    return read


def _check(feast_values: dict[str, list[Any]], raw: Any, online: str, views: list[str]) -> None:
    """The raw read found the same values Feast returned."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    def decode(blob: bytes | None) -> Any:
        if not blob:
            return None
        value = Value()
        value.ParseFromString(blob)
        return feast_value_type_to_python_type(value)

    found: dict[str, Any] = {}
    if online == "sqlite":
        for rows in raw:
            found |= {name: decode(blob) for _key, name, blob, _ts in rows}
    else:
        names = [
            n
            for v in views
            for n in [*(WIDE_FEATURES if v == WIDE_VIEW else feature_names(v)), None]
        ]
        found = {n: decode(b) for n, b in zip(names, raw, strict=True) if n is not None}
    for name, value in found.items():
        got = feast_values[name][0]
        same = got == value or (got != got and value != value)  # NaN == NaN here
        assert same, f"{online}: Feast returned {name}={got!r}, the raw read {value!r}"


def _feast_dict(store: Any, features: Any, entity_rows: list[dict[str, Any]]) -> Any:
    return store.get_online_features(features=features, entity_rows=entity_rows).to_dict()


def _row(
    row: str,
    online: str,
    case: str,
    views: list[str],
    path: str,
    ms: list[float],
    raw_ms: list[float],
    note: str,
) -> Row:
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    r50, r99 = percentile(raw_ms, 50), percentile(raw_ms, 99)
    what = (
        f"{SERVICE} ({sum(len(feature_names(v)) for v in views)} stored features of "
        f"{len(views)} views + 2 on-demand, with request data)"
        if case == SERVICE
        else f"{WIDE_VIEW} (50 features)"
    )
    return Row(
        row=row,
        hot_path=f"online read p99, {path}, 1 entity x {what}, {online}",
        baseline=(
            f"raw sqlite3 SELECT by entity key ({len(views)} tables)"
            if online == "sqlite"
            else "raw redis-py HMGET of the same fields"
        ),
        measured_s=p99 / 1e3,
        baseline_s=r99 / 1e3,
        goal="<= 2x" if row.startswith("3-") else "report",
        notes=(
            f"p99 {p99:.3f} ms vs {r99:.3f} ms; p50 {p50:.3f} ms vs {r50:.3f} ms "
            f"({p50 / r50:.1f}x); {note}"
        ),
        extra={"p50_ms": p50, "p99_ms": p99, "raw_p50_ms": r50, "raw_p99_ms": r99},
    )


def read_rows(ws: Workspace, customers: int, reads: int, warmup: int) -> list[Row]:
    rows: list[Row] = []
    prefix = _entity_key_prefix()
    pack = struct.Struct("<q").pack
    for online in ("sqlite", "redis"):
        if online == "redis" and not redis_up():
            print("  redis unavailable: row 3 redis skipped", flush=True)
            continue
        settings = ws.settings(online)
        if online == "redis":
            flush_bench_redis()
        store = apply_repo(settings)
        _load(ws, settings, store)
        for case, (features, views, with_request) in _cases(store).items():
            raw = (
                _raw_sqlite(str(settings.feast_data_dir / "online.db"), views)
                if online == "sqlite"
                else _raw_redis(views)
            )
            direct = SERVICE if case == SERVICE else features  # a service by its name
            rng = random.Random(7)

            def entity_row(
                cid: int, rng: random.Random = rng, with_request: bool = with_request
            ) -> dict[str, Any]:
                row: dict[str, Any] = {ENTITY: cid}
                if with_request:
                    row["requested_amount"] = round(rng.uniform(50, 5000), 2)
                return row

            # Same answer every way, on a few entities.
            for cid in rng.sample(range(1, customers + 1), 5):
                request = [entity_row(cid)]
                values = store.get_online_features(features=features, entity_rows=request).to_dict()
                _check(values, raw(prefix + pack(cid)), online, views)
                ours = read_values(store, direct, request).columns
                assert ours == values, f"{online}: Kaizen's read {ours} != Feast's {values}"

            # (call, input) per side: raw, Kaizen's read, Feast's SDK
            def inputs(
                rng: random.Random = rng, entity_row: Callable[..., Any] = entity_row
            ) -> list[Any]:
                return [
                    prefix + pack(rng.randint(1, customers)),
                    [entity_row(rng.randint(1, customers))],
                    [entity_row(rng.randint(1, customers))],
                ]

            sides: list[Callable[[Any], Any]] = [
                raw,
                partial(read_values, store, direct),
                partial(_feast_dict, store, features),
            ]
            times: list[list[int]] = [[], [], []]
            clock = time.perf_counter_ns
            with pinned_off_redis() as cpu:
                load_before = load_average()
                for i in range(warmup + reads):
                    # Each side its own random entity (one side never reads what another
                    # just pulled into the caches), and the sides take turns going first.
                    given = inputs()
                    for k in range(3):
                        side = (i + k) % 3
                        t0 = clock()
                        sides[side](given[side])
                        t1 = clock()
                        if i >= warmup:
                            times[side].append(t1 - t0)
                load_after = load_average()
            raw_ms, kaizen_ms, feast_ms = ([x / 1e6 for x in t] for t in times)
            note = (
                f"{reads:,} random entities of {customers:,}, warm, interleaved with the "
                f"other path and the raw read; benchmark thread pinned to cpu {cpu}; "
                f"load {load_before} -> {load_after}"
            )
            tag = "service" if case == SERVICE else "wide50"
            rows.append(
                _row(
                    f"3-{online}-{tag}",
                    online,
                    case,
                    views,
                    "Kaizen's direct read",
                    kaizen_ms,
                    raw_ms,
                    note,
                )
            )
            rows.append(
                _row(
                    f"3f-{online}-{tag}",
                    online,
                    case,
                    views,
                    "Feast SDK to_dict",
                    feast_ms,
                    raw_ms,
                    note,
                )
            )
        if online == "redis":
            flush_bench_redis()
    return rows


def run(size: dict[str, int]) -> list[Row]:
    ws = workspace("online")
    try:
        write_days(ws, [*VIEWS, WIDE_VIEW], size["customers"], [DAY])
        return read_rows(ws, size["customers"], size["reads"], size["warmup"])
    finally:
        cleanup(ws)
