"""Row 7: parsing each of our DAG files against parsing an empty DAG, as the dag-processor does.

The dag-processor has Airflow imported and parses each file in a fresh child process, so
whatever a DAG file imports at module level is paid on every parse (every 30 s by default,
per file). Each sample here is one fresh interpreter that imports Airflow's DagBag first
(untimed, the processor's state) and then times `DagBag.process_file` on one file. Our DAGs
import their stages inside the tasks, so their parse should cost what an empty DAG costs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import Row

REPO = Path(__file__).resolve().parents[1]
EMPTY_DAG = """
from airflow.sdk import dag, task


@dag(dag_id="empty", schedule=None, catchup=False)
def empty():
    @task
    def nothing():
        return None

    nothing()


empty()
"""
PROBE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="/nonexistent", load_op_links=False, collect_dags=False)
started = time.perf_counter()
found = bag.process_file(sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "dags": len(found), "errors": len(bag.import_errors)}))
"""


def _parse_seconds(path: Path, env: dict[str, str]) -> tuple[float, int]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["errors"] or not result["dags"]:
        raise RuntimeError(f"{path.name} did not parse: {proc.stderr[-500:]}")
    return result["seconds"], result["dags"]


def run(samples: int = 7) -> list[Row]:
    work = Path(tempfile.mkdtemp(prefix="kaizen-bench-parse-"))
    empty = work / "empty_dag.py"
    empty.write_text(EMPTY_DAG)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "KAIZEN_HOME": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "",  # the processor runs with bytecode caches, as deployed
    }
    files = sorted((REPO / "dags").glob("*.py"))
    for path in [empty, *files]:  # warm the bytecode caches once
        _parse_seconds(path, env)
    timings: dict[Path, list[float]] = {p: [] for p in [empty, *files]}
    for _ in range(samples):  # interleaved: drift in machine load hits both sides alike
        for path in timings:
            timings[path].append(_parse_seconds(path, env)[0])
    baseline = statistics.median(timings[empty])
    rows = []
    for path in files:
        measured = statistics.median(timings[path])
        rows.append(
            Row(
                row=f"7-{path.stem}",
                hot_path=f"parse dags/{path.name} (DagBag.process_file, fresh process)",
                baseline="the same parse of an empty one-task DAG",
                measured_s=measured,
                baseline_s=baseline,
                goal="<= 1.2x",
                notes=f"median of {samples} interleaved fresh-process parses; "
                f"{measured * 1000:.0f} ms vs {baseline * 1000:.0f} ms",
            )
        )
    return rows
