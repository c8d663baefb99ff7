"""Row 5: the point-in-time join through Feast's `get_historical_features` on the DuckDB
offline store, against a DuckDB ASOF JOIN on the same parquet, in the same run; row 5m: the
peak RSS each side adds while joining, against the size of its input.

Each side runs in its own child process (`python -m bench.bench_feast_pit`), so their peak
RSS does not mix: the child imports what it needs, loads the entity frame, resets its RSS
high-water mark (Linux `clear_refs`), joins once to warm up, then joins `repeat` times; the
peak covers all of them, and the row reports how far it rose above the RSS before them.
"Input size" is the in-memory Arrow size of what the join reads: the feature rows (key, event
time, features) plus the entity frame. Both results are compared value for value.

The baseline applies the view's TTL the way Feast does: the latest feature row at or before
the entity's instant, and nothing when that row is older than the TTL; every entity row is
kept.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from credit_risk.features.schema import ENTITY

from bench.bench_feast_common import (
    apply_repo,
    cleanup,
    day_list,
    load_average,
    median,
    peak_rss_mb,
    reset_peak_rss,
    rss_now_mb,
    run_child,
    workspace,
    write_days,
)
from bench.common import Row
from kaizen.transforms.contract import EVENT_TIMESTAMP, as_of

VIEW = "customer_activity"
FIRST_DAY = "2026-01-01"


def entity_frame(customers: int, days: list[str], rows: int, seed: int = 11) -> pd.DataFrame:
    """Entity rows at random instants from a day before the first features to a few days
    after the last (so some rows find nothing, or only a row past its TTL)."""
    rng = np.random.default_rng(seed)
    start = as_of(days[0]) - pd.Timedelta(days=1)
    span = (as_of(days[-1]) + pd.Timedelta(days=4) - start).total_seconds()
    offsets = pd.to_timedelta(rng.uniform(0, span, rows).astype("int64"), unit="s")
    return pd.DataFrame(
        {
            "row_id": np.arange(rows, dtype=np.int64),
            ENTITY: rng.integers(1, customers + 1, rows, dtype=np.int64),
            EVENT_TIMESTAMP: (start + offsets).as_unit("us"),
        }
    )


# -- the two sides, each run in a child ------------------------------------------------------
def _feast_side(payload: dict[str, Any]) -> tuple[Any, Any]:
    from bench.common import feature_names
    from kaizen.config import Settings
    from kaizen.featurestore.store import open_store

    settings = Settings(_env_file=None, **payload["settings"])
    store = open_store(settings)
    features = [f"{VIEW}:{name}" for name in feature_names(VIEW)]

    def join(entity: pd.DataFrame) -> pd.DataFrame:
        return store.get_historical_features(entity_df=entity, features=features).to_df()

    return join, None


def _duckdb_side(payload: dict[str, Any]) -> tuple[Any, Any]:
    import duckdb

    con = duckdb.connect()
    names = payload["features"]
    ttl = int(payload["ttl_seconds"])
    picked = ", ".join(
        f'CASE WHEN f.feature_ts >= e.{EVENT_TIMESTAMP} - INTERVAL {ttl} SECOND THEN f."{n}" END AS "{n}"'
        for n in names
    )
    sql = f"""
        SELECT e.*, {picked}
        FROM entity e ASOF LEFT JOIN (
            SELECT {ENTITY}, {EVENT_TIMESTAMP} AS feature_ts, {", ".join(f'"{n}"' for n in names)}
            FROM read_parquet('{payload["glob"]}')
        ) f ON e.{ENTITY} = f.{ENTITY} AND e.{EVENT_TIMESTAMP} >= f.feature_ts
    """

    def join(entity: pd.DataFrame) -> pd.DataFrame:
        con.register("entity", entity)
        try:
            return con.execute(sql).df()
        finally:
            con.unregister("entity")

    return join, con


def _child(payload: dict[str, Any]) -> dict[str, Any]:
    import logging
    import warnings

    logging.basicConfig(level=logging.ERROR)
    warnings.simplefilter("ignore")
    join, _keep = (_feast_side if payload["side"] == "feast" else _duckdb_side)(payload)
    entity = pd.read_parquet(payload["entity"])
    gc.collect()
    rss_before = rss_now_mb()
    reset_peak_rss()  # the peak covers the warm-up too: caches the first join builds count
    out = join(entity)  # warm-up: registry, plans, file metadata
    del out
    seconds = []
    for _ in range(payload["repeat"]):
        started = time.perf_counter()
        out = join(entity)
        seconds.append(time.perf_counter() - started)
        last = out
        del out
    peak = peak_rss_mb()
    last.sort_values("row_id").reset_index(drop=True).to_parquet(payload["result"])
    return {"seconds": seconds, "rss_before_mb": rss_before, "peak_mb": peak, "rows": len(last)}


# -- the rows ---------------------------------------------------------------------------------
def _growth(run: dict[str, Any]) -> float:
    """How far a child's RSS rose above what it held before joining (MB)."""
    return float(run["peak_mb"] - run["rss_before_mb"])


def _same(a: pd.DataFrame, b: pd.DataFrame, names: list[str]) -> None:
    assert len(a) == len(b), f"row counts differ: {len(a)} vs {len(b)}"
    assert (a["row_id"].to_numpy() == b["row_id"].to_numpy()).all()
    for n in names:
        x = pd.to_numeric(a[n], errors="coerce").to_numpy(dtype="float64")
        y = pd.to_numeric(b[n], errors="coerce").to_numpy(dtype="float64")
        ok = np.isclose(x, y, equal_nan=True, rtol=0, atol=0)
        assert ok.all(), f"{n}: {int((~ok).sum())} values differ"


def run(size: dict[str, int]) -> list[Row]:
    import pyarrow as pa

    from kaizen.params import load_params

    ws = workspace("pit")
    try:
        customers, ndays, nentity = size["customers"], size["days"], size["entity_rows"]
        days = day_list(FIRST_DAY, ndays)
        feature_rows = write_days(ws, [VIEW], customers, days)
        settings = ws.settings("sqlite")
        apply_repo(settings)
        entity = entity_frame(customers, days, nentity)
        entity_path = ws.root / "entity.parquet"
        entity.to_parquet(entity_path)

        from bench.common import feature_names

        names = feature_names(VIEW)
        table = ws.lake.read_many("features", VIEW, days)
        input_mb = (
            table.nbytes + pa.Table.from_pandas(entity, preserve_index=False).nbytes
        ) / 2**20
        parquet_mb = (
            sum(p.stat().st_size for p in Path(ws.lake_root, "features", VIEW).rglob("*.parquet"))
            + entity_path.stat().st_size
        ) / 2**20
        del table
        ttl_days = load_params(settings.params_file).feature_store.ttl_days[VIEW]
        common = {
            "entity": str(entity_path),
            "repeat": size["repeat"],
            "features": names,
            "ttl_seconds": ttl_days * 86400,
            "glob": f"{ws.lake_root}/features/{VIEW}/ds=*/*.parquet",
            "settings": {
                "home": str(settings.home),
                "feast_repo": str(settings.feast_repo),
                "lake_root": settings.lake_root,
                "feast_data_dir": str(settings.feast_data_dir),
                "feast_online_store": "sqlite",
                "feast_registry": "file",
            },
        }
        load_before = load_average()
        # Rounds alternate which side goes first, so a change in the machine's load
        # (two shared cores) does not land on one side only.
        runs: dict[str, list[dict[str, Any]]] = {"duckdb": [], "feast": []}
        for round_ in range(size["rounds"]):
            for side in ("duckdb", "feast") if round_ % 2 == 0 else ("feast", "duckdb"):
                runs[side].append(
                    run_child(
                        "bench.bench_feast_pit",
                        {**common, "side": side, "result": str(ws.root / f"{side}.parquet")},
                    )
                )
        # Times: every join of every round; memory: the round whose peak rose most.
        results = {
            side: {
                **max(rs, key=_growth),
                "seconds": [x for r in rs for x in r["seconds"]],
                "rounds": rs,
            }
            for side, rs in runs.items()
        }
        load_after = load_average()
        feast_frame = pd.read_parquet(ws.root / "feast.parquet")
        duck_frame = pd.read_parquet(ws.root / "duckdb.parquet")
        _same(feast_frame, duck_frame, names)
        filled = int(feast_frame[names[0]].notna().sum())
        feast, duck = results["feast"], results["duckdb"]
        f_s, d_s = median(feast["seconds"]), median(duck["seconds"])
        shape = f"{nentity:,} entity rows x {feature_rows:,} feature rows ({VIEW}, {len(names)} features)"
        return [
            Row(
                row="5",
                hot_path=f"point-in-time join, {shape}, Feast DuckDB offline store",
                baseline="DuckDB ASOF JOIN on the same parquet (TTL applied)",
                measured_s=f_s,
                baseline_s=d_s,
                goal="<= 2x",
                notes=(
                    f"identical values, all {feast['rows']:,} entity rows kept ({filled:,} within TTL); "
                    f"median of {len(feast['seconds'])} joins ({size['rounds']} rounds of a process per "
                    f"side, alternating which goes first, {size['repeat']} joins after a warm-up each); "
                    f"load {load_before} -> {load_after}"
                ),
                extra={"feast_s": feast["seconds"], "duckdb_s": duck["seconds"]},
            ),
            Row(
                row="5m",
                hot_path=f"point-in-time join peak RSS growth in MB (not s), {shape}, Feast",
                baseline="input size: in-memory Arrow bytes of the feature rows + entity frame",
                measured_s=_growth(feast),
                baseline_s=input_mb,
                goal="<= 3x",
                notes=(
                    f"input {input_mb:.0f} MB in Arrow ({parquet_mb:.0f} MB parquet); worst round: Feast adds "
                    f"{_growth(feast):.0f} MB (peak {feast['peak_mb']:.0f} MB, {feast['rss_before_mb']:.0f} MB "
                    f"before), DuckDB ASOF adds {_growth(duck):.0f} MB (peak {duck['peak_mb']:.0f} MB, "
                    f"{duck['rss_before_mb']:.0f} MB before)"
                ),
                extra={
                    "feast": feast,
                    "duckdb": duck,
                    "input_mb": input_mb,
                    "parquet_mb": parquet_mb,
                },
            ),
        ]
    finally:
        cleanup(ws)


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.stdin.read()))))
