"""`make bench`: run every benchmark, print the table, write bench/results/<date>.{json,md}.

Benchmarks measure and report; they never fail the build. `--quick` runs smaller sizes.
"""

from __future__ import annotations

import argparse
import logging
import traceback
from typing import Any

from bench import (
    bench_dag_parse,
    bench_dataops_dag,
    bench_feast_materialize,
    bench_feast_online,
    bench_feast_pit,
    bench_ingest,
    bench_mlflow,
    bench_serving,
    bench_validate,
)
from bench.common import Row, markdown, write_report

SUITES = {
    "ingest": bench_ingest.run,
    "validate": bench_validate.run,
    "feast_online": bench_feast_online.run,
    "feast_materialize": bench_feast_materialize.run,
    "feast_pit": bench_feast_pit.run,
    "mlflow": bench_mlflow.run,
    "serving": bench_serving.run,
    "dag_parse": bench_dag_parse.run,
    "dataops_dag": bench_dataops_dag.run,
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
    # row 7: interleaved fresh-process parses per DAG file
    "dag_parse": (3, 7),
    # row 8: orders per day through `airflow dags test` vs the stage callables, per engine
    "dataops_dag": (
        {"rows_per_day": [2_000], "engines": ["pandas"], "headline": 2_000},
        {
            "rows_per_day": [10_000, 100_000, 1_000_000],
            "engines": ["pandas", "spark"],
            "headline": 100_000,
        },
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", nargs="*", choices=sorted(SUITES), help="run only these suites")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    scale = {name: SIZES[name][0 if args.quick else 1] for name in SUITES}
    results: list[Row] = []
    for name, suite in SUITES.items():
        if args.only and name not in args.only:
            continue
        print(f"running {name} ...", flush=True)
        try:
            results.extend(suite(scale[name]))
        except Exception:  # a broken benchmark is reported, never fatal
            traceback.print_exc()
    json_path, md_path = write_report(results, scale)
    print()
    print(markdown(results, {"date": json_path.stem, "cpus": "", "python": ""}).split("\n", 2)[2])
    print(
        f"written: {json_path.relative_to(json_path.parents[2])}, {md_path.relative_to(md_path.parents[2])}"
    )


if __name__ == "__main__":
    main()
