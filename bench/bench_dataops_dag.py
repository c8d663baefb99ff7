"""Row 8: one day of the DataOps DAG through `airflow dags test` against the sum of its stage
callables, at several sizes and on both engines (where Spark overtakes pandas).

Both sides do the same day's work on the same lake (the previous day is history, prepared
untimed; every stage replaces its partition, so a rerun is the same work):

* measured: `airflow dags test dataops_daily <date>` in a new process, wall time: the
  interpreter and Airflow's start, parsing, task bookkeeping, the sensor and every task;
* baseline: the same stage functions called one after the other in a new process, the sum
  of their own durations (what the work costs with no orchestrator at all).

Sizes are orders per day (customers x 5 orders a day); the other sources scale with them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Row

REPO = Path(__file__).resolve().parents[1]
DAY1, DAY2 = "2026-01-01", "2026-01-02"
ORDERS_PER_CUSTOMER_DAY = 5.0

CALLABLES = """
import json, sys, time
from kaizen.runtime import Runtime
from kaizen.featurestore.store import apply
from kaizen.stages.ingest import ingest
from kaizen.stages.validate import validate
from kaizen.stages.featurize import featurize
from kaizen.stages.validate_features import validate_features
from kaizen.stages.materialize import materialize

ds, end = sys.argv[1], sys.argv[2]
rt = Runtime()
spent = {}
def timed(name, fn, *args):
    started = time.perf_counter()
    fn(*args)
    spent[name] = spent.get(name, 0.0) + time.perf_counter() - started
for source in rt.catalog.names:
    timed("ingest", ingest, source, ds, rt)
    timed("validate", validate, source, ds, rt)
timed("featurize", featurize, ds, rt)
timed("validate_features", validate_features, ds, rt)
timed("apply", apply, rt.settings)
timed("materialize", materialize, ds, end, rt)
print(json.dumps(spent))
"""


def _env(work: Path, engine: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAIZEN_", "AIRFLOW"))}
    return env | {
        "KAIZEN_HOME": str(REPO),
        "KAIZEN_RAW_ROOT": str(work / "raw"),
        "KAIZEN_LAKE_ROOT": str(work / "lake"),
        "KAIZEN_AIRFLOW_HOME": str(work / "airflow"),
        "KAIZEN_FEAST_DATA_DIR": str(work / "feast"),
        "KAIZEN_GX_UNCOMMITTED_DIR": str(work / "gx"),
        "KAIZEN_RUNTIME_DIR": str(work / "runtime"),
        "KAIZEN_GX_DATA_DOCS": "failures",
        "KAIZEN_ENGINE": engine,
        "GX_ANALYTICS_ENABLED": "false",
    }


def _callables(env: dict[str, str], ds: str, prepare: bool = False) -> dict[str, float]:
    end = (dt.date.fromisoformat(ds) + dt.timedelta(days=1)).isoformat()
    proc = subprocess.run(
        [sys.executable, "-c", CALLABLES, ds, end, "prepare" if prepare else "measure"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"stage callables failed for {ds}: {proc.stderr[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _dags_test(env: dict[str, str], ds: str) -> float:
    from kaizen.config import Settings
    from kaizen.orchestrate import airflow_environ

    settings = Settings(_env_file=None, **_settings_kwargs(env))
    full = {**env, **airflow_environ(settings)}
    # The run whose data interval is [ds, ds+1) is the one scheduled at its end.
    logical = (dt.date.fromisoformat(ds) + dt.timedelta(days=1)).isoformat()
    airflow = Path(sys.executable).with_name("airflow")
    started = time.perf_counter()
    proc = subprocess.run(
        [str(airflow), "dags", "test", "dataops_daily", logical],
        env=full,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0 or "state=failed" in proc.stdout + proc.stderr:
        tail = (proc.stderr or proc.stdout)[-800:]
        raise RuntimeError(f"airflow dags test dataops_daily {logical} failed: {tail}")
    return seconds


def _settings_kwargs(env: dict[str, str]) -> dict[str, Any]:
    return {
        "home": Path(env["KAIZEN_HOME"]),
        "raw_root": env["KAIZEN_RAW_ROOT"],
        "lake_root": env["KAIZEN_LAKE_ROOT"],
        "airflow_home": Path(env["KAIZEN_AIRFLOW_HOME"]),
        "feast_data_dir": Path(env["KAIZEN_FEAST_DATA_DIR"]),
        "gx_uncommitted_dir": Path(env["KAIZEN_GX_UNCOMMITTED_DIR"]),
        "runtime_dir": Path(env["KAIZEN_RUNTIME_DIR"]),
    }


def _one(rows: int, engine: str) -> tuple[float, float, dict[str, float]]:
    from kaizen.config import Settings
    from kaizen.orchestrate import prepare_airflow
    from kaizen.params import load_params
    from kaizen.simulate import simulate

    work = Path(tempfile.mkdtemp(prefix=f"kaizen-bench-dag-{engine}-{rows}-"))
    env = _env(work, engine)
    world = load_params(REPO / "params.yaml").simulate.model_copy(
        update={
            "start": dt.date.fromisoformat(DAY1),
            "days": 2,
            "customers": max(int(rows / ORDERS_PER_CUSTOMER_DAY), 10),
            "orders_per_customer_day": ORDERS_PER_CUSTOMER_DAY,
        }
    )
    simulate(world, env["KAIZEN_RAW_ROOT"])
    _callables(env, DAY1, prepare=True)  # history: the day before, untimed
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # `airflow db migrate` for this home, untimed
    try:
        prepare_airflow(Settings(_env_file=None, **_settings_kwargs(env)))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    first = _callables(env, DAY2)  # warm the lake and caches for both sides alike
    dag = _dags_test(env, DAY2)
    second = _callables(env, DAY2)
    stages = min((first, second), key=lambda s: sum(s.values()))
    return dag, sum(stages.values()), stages


def run(scale: dict[str, Any]) -> list[Row]:
    rows_out: list[Row] = []
    seconds: dict[tuple[str, int], float] = {}
    for rows in scale["rows_per_day"]:
        for engine in scale["engines"]:
            print(f"  row 8: {rows:,} orders/day on {engine} ...", flush=True)
            try:
                dag, stages_s, stages = _one(rows, engine)
            except Exception as exc:  # one size failing must not hide the others
                print(f"  row 8 {engine} {rows:,}: {exc}", flush=True)
                continue
            seconds[(engine, rows)] = dag
            top = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(stages.items(), key=lambda i: -i[1]))
            headline = rows == scale["headline"] and engine == "pandas"
            rows_out.append(
                Row(
                    row="8" if headline else f"8-{engine}-{_short(rows)}",
                    hot_path=f"dataops_daily, {rows:,} orders/day, {engine}, `airflow dags test`",
                    baseline="the sum of its stage callables, same day, same lake",
                    measured_s=dag,
                    baseline_s=stages_s,
                    goal="<= 1.5x" if headline else "report",
                    notes=f"stages: {top}",
                )
            )
    crossover = [
        rows
        for rows in scale["rows_per_day"]
        if ("spark", rows) in seconds
        and ("pandas", rows) in seconds
        and seconds[("spark", rows)] < seconds[("pandas", rows)]
    ]
    pairs = "; ".join(
        f"{_short(r)}/day pandas {seconds[('pandas', r)]:.1f}s vs spark {seconds[('spark', r)]:.1f}s"
        for r in scale["rows_per_day"]
        if ("pandas", r) in seconds and ("spark", r) in seconds
    )
    if pairs:
        largest = max(r for r in scale["rows_per_day"] if ("pandas", r) in seconds)
        rows_out.append(
            Row(
                row="8s",
                hot_path="scaling: the DataOps DAG on Spark",
                baseline="the same DAG on pandas",
                measured_s=seconds.get(("spark", largest), float("nan")),
                baseline_s=seconds[("pandas", largest)],
                goal="report",
                notes=(
                    f"Spark overtakes pandas from {_short(crossover[0])} orders/day"
                    if crossover
                    else "Spark does not overtake pandas at these sizes on this machine"
                )
                + f": {pairs}",
            )
        )
    return rows_out


def _short(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 else f"{rows // 1_000}k"
