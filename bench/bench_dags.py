"""Row 7: parse time of each of our DAG files against a DAG file with no tasks.

Each sample is a fresh interpreter that parses one file the way the dag-processor does: it
pre-imports the `airflow.*` modules the file names (`parsing_pre_import_modules`, on by
default), then builds a DagBag of the file. Nothing our DAGs import is cached from a previous
parse; files are interleaved so load on the shared cores hits both sides alike.

The goal row is the interpreter's wall time (what a parse costs the machine); the notes
also give the DagBag step alone, after the pre-import, where a file with tasks pays
Airflow's operator construction that a task-less file does not.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.common import PROJECT, PROJECT_NAME, Row, child_env
from kaizen.config import Settings
from kaizen.dags.runner import airflow_environ

REPO = Path(__file__).resolve().parents[1]

EMPTY_DAG = textwrap.dedent("""
    from airflow.sdk import dag

    @dag(dag_id="bench_empty", schedule=None)
    def bench_empty() -> None:
        pass

    bench_empty()
""")

# As `airflow.dag_processing.processor._pre_import_airflow_modules`, then the parse alone.
PARSE = textwrap.dedent("""
    import importlib, json, sys, time
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.file import iter_airflow_imports
    for module in iter_airflow_imports(sys.argv[1]):
        importlib.import_module(module)
    started = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    elapsed = time.perf_counter() - started
    print(json.dumps({"s": elapsed, "dags": len(bag.dags), "errors": list(bag.import_errors)}))
""")


def parse_once(path: Path, env: dict[str, str]) -> tuple[float, float]:
    """(interpreter wall time, DagBag time after the pre-import) of one parse."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PARSE, str(path)], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"parsing {path.name} failed: {last}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["errors"] or not out["dags"]:
        raise RuntimeError(f"{path.name} parsed with errors {out['errors']} or no DAG")
    return time.perf_counter() - started, float(out["s"])


def run(scale: dict | int = 5) -> list[Row]:
    samples = scale["samples"] if isinstance(scale, dict) else int(scale)
    work = Path(tempfile.mkdtemp(prefix="kaizen-bench-dags-"))
    empty = work / "bench_empty.py"
    empty.write_text(EMPTY_DAG)
    settings = Settings(
        _env_file=None, home=REPO, project=PROJECT_NAME, airflow_home=work / "airflow"
    )
    env = child_env(airflow_environ(settings), {"AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"})
    files = sorted((PROJECT / "dags").glob("*.py"))
    wall: dict[Path, list[float]] = {p: [] for p in [empty, *files]}
    bag: dict[Path, list[float]] = {p: [] for p in wall}
    parse_once(empty, env)  # the first interpreter warms the OS page cache for everyone
    for _ in range(samples):
        for path in wall:
            w, b = parse_once(path, env)
            wall[path].append(w)
            bag[path].append(b)
    base, base_bag = statistics.median(wall[empty]), statistics.median(bag[empty])
    return [
        Row(
            row=f"7{chr(ord('a') + i)}",
            hot_path=f"parse dags/{path.name} as the dag-processor does, fresh interpreter",
            baseline="the same parse of a DAG file with no tasks",
            measured_s=statistics.median(wall[path]),
            baseline_s=base,
            goal="<= 1.2x",
            notes=f"median of {samples}; DagBag step alone {statistics.median(bag[path]) * 1e3:.0f} ms "
            f"vs {base_bag * 1e3:.0f} ms (operator construction, no heavy import)",
            extra={"dagbag_s": statistics.median(bag[path]), "empty_dagbag_s": base_bag},
        )
        for i, path in enumerate(files)
    ]
