"""`make bench`: run every benchmark, print the table, write bench/results/<date>.{json,md}.

Benchmarks measure and report; they never fail the build: a crashed benchmark becomes an
ERROR row and the run exits 0. `--quick` runs smaller sizes; `--rows 7,8` (or
`make bench BENCH=7,8`) re-runs some rows and keeps the day's other rows in the report.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import RESULTS, Row, error_row, markdown, write_report


def _lazy(module: str) -> Callable[[Any], list[Row]]:
    """A suite's `run`, imported when it runs: `--rows 7` should not pay for Feast or MLflow."""

    def run(scale: Any) -> list[Row]:
        return importlib.import_module(f"bench.{module}").run(scale)

    return run


SUITES = {
    "ingest": _lazy("bench_ingest"),
    "validate": _lazy("bench_validate"),
    "feast_online": _lazy("bench_feast_online"),
    "feast_materialize": _lazy("bench_feast_materialize"),
    "feast_pit": _lazy("bench_feast_pit"),
    "mlflow": _lazy("bench_mlflow"),
    "serving": _lazy("bench_serving"),
    "dags": _lazy("bench_dags"),
    "dataops": _lazy("bench_dataops"),
}
# suite -> (the row number, its hot path, its goal): how a crash is reported
ROWS: dict[str, tuple[str, str, str]] = {
    "ingest": ("1", "ingest", "<= 1.5x"),
    "validate": ("2", "GX validation", "<= 3x"),
    "feast_online": ("3", "online read p99", "<= 2x"),
    "feast_materialize": ("4", "materialization rows/s", ">= 0.5x"),
    "feast_pit": ("5", "point-in-time join", "<= 2x"),
    "serving": ("6", "/predict p99", "<= 1.3x"),
    "dags": ("7", "DAG parse time", "<= 1.2x"),
    "dataops": ("8", "dataops_daily through airflow dags test", "<= 1.5x"),
    "mlflow": ("9", "MLflow log + register", "report"),
}
# suite -> (--quick size, full size)
SIZES: dict[str, tuple[Any, Any]] = {
    "ingest": (100_000, 1_000_000),
    "validate": (100_000, 1_000_000),
    # row 3: reads per case, random entities of `customers`, after `warmup` reads
    "feast_online": (
        {"customers": 2_000, "reads": 1_000, "warmup": 100},
        {"customers": 20_000, "reads": 5_000, "warmup": 500},
    ),
    # row 4: one day of every view for `customers`; row 4m: short vs long range
    "feast_materialize": (
        {
            "customers": 2_000,
            "repeat": 2,
            "memory_customers": 2_000,
            "short_days": 2,
            "long_days": 8,
        },
        {
            "customers": 20_000,
            "repeat": 3,
            "memory_customers": 20_000,
            "short_days": 5,
            "long_days": 60,
        },
    ),
    # row 5: `entity_rows` x (`customers` x `days`) feature rows; `rounds` x `repeat` joins a side
    "feast_pit": (
        {"customers": 2_000, "days": 10, "entity_rows": 10_000, "rounds": 2, "repeat": 2},
        {"customers": 20_000, "days": 50, "entity_rows": 100_000, "rounds": 4, "repeat": 2},
    ),
    # row 9: rows the logged model was trained on
    "mlflow": (5_000, 20_000),
    # row 10: sequential /predict calls (after `warmup`), then `seconds` of throughput per worker count
    "serving": (
        {"customers": 2_000, "requests": 500, "warmup": 100, "seconds": 3},
        {"customers": 20_000, "requests": 3_000, "warmup": 300, "seconds": 10},
    ),
    # row 7: fresh interpreters per DAG file (and per empty-DAG baseline)
    "dags": ({"samples": 3}, {"samples": 9}),
    # row 8: orders per day x engines; `headline` (pandas) is the goal row, the rest the scaling
    "dataops": (
        {"rows": [2_000], "engines": ["pandas"], "headline": 2_000, "timeout": 900},
        {
            "rows": [10_000, 100_000, 1_000_000],
            "engines": ["pandas", "spark"],
            "headline": 100_000,
            "timeout": 2_400,
        },
    ),
}


def selected(rows: str | None, only: list[str] | None) -> list[str]:
    """The suites to run: all, or those named by --only or by row number in --rows."""
    names = list(SUITES)
    if rows:
        wanted = {r.strip() for r in rows.split(",") if r.strip()}
        known = {ROWS[n][0] for n in names}
        if unknown := wanted - known:
            raise SystemExit(f"unknown bench rows {sorted(unknown)}; known: {sorted(known)}")
        names = [n for n in names if ROWS[n][0] in wanted]
    if only:
        names = [n for n in names if n in only]
    return names


def dataops_scale(base: dict[str, Any], day_rows: str | None, engines: str | None) -> dict:
    """Row 8's sizes and engines from the command line; the goal row stays the `headline`
    size on pandas when it is run, else the smallest size run is the headline."""
    scale = dict(base)
    if day_rows:
        try:
            scale["rows"] = sorted({int(r) for r in day_rows.split(",") if r.strip()})
        except ValueError:
            raise SystemExit(f"--day-rows takes whole numbers, got {day_rows!r}") from None
        if not scale["rows"] or min(scale["rows"]) < 10:
            raise SystemExit(f"--day-rows needs sizes of at least 10, got {day_rows!r}")
    if engines:
        scale["engines"] = [e.strip() for e in engines.split(",") if e.strip()]
        if unknown := set(scale["engines"]) - {"pandas", "spark"}:
            raise SystemExit(f"unknown engines {sorted(unknown)}; known: pandas, spark")
    if scale["headline"] not in scale["rows"]:
        scale["headline"] = scale["rows"][0]
    return scale


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", nargs="*", choices=sorted(SUITES), help="run only these suites")
    parser.add_argument("--rows", help="comma-separated row numbers to run, e.g. 7,8")
    parser.add_argument(
        "--day-rows", help="row 8: orders per day to run, comma-separated (e.g. 10000,100000)"
    )
    parser.add_argument("--engines", help="row 8: engines to run, comma-separated (pandas,spark)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    names = selected(args.rows, args.only)
    scale = {name: SIZES[name][0 if args.quick else 1] for name in names}
    if "dataops" in scale:
        scale["dataops"] = dataops_scale(scale["dataops"], args.day_rows, args.engines)
    results: list[Row] = []
    for name in names:
        print(f"running {name} ...", flush=True)
        try:
            results.extend(SUITES[name](scale[name]))
        except Exception as exc:  # a broken benchmark is reported as a row, never fatal
            traceback.print_exc()
            results.append(error_row(*ROWS[name], exc))
    partial = len(names) < len(SUITES)
    json_path, md_path = write_report(results, scale, args.results_dir, partial=partial)
    print()
    print(markdown(results, {"date": json_path.stem, "cpus": "", "python": ""}).split("\n", 2)[2])
    print(f"written: {json_path}, {md_path}")


if __name__ == "__main__":
    main()
