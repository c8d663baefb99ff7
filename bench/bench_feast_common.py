"""What the Feast benchmarks (rows 3, 4 and 5) share: a throw-away workspace with a copy of
the declarative repo plus a synthetic 50-feature view, synthetic feature partitions that
follow the transforms' contract, stores on SQLite and Redis, CPU pinning and peak-RSS
measurement in a child process.

Nothing here touches the checkout's data: every file lives under a temporary directory and
Redis use is confined to one dedicated database (`BENCH_REDIS_DB`), flushed before use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from credit_risk.features.schema import ENTITY, view_features

from bench.common import PROJECT, PROJECT_NAME, Row, child_env, project_params
from kaizen.config import Settings
from kaizen.lake import Lake, Partition
from kaizen.transforms.contract import EVENT_TIMESTAMP, TIMESTAMP, as_of

REPO = Path(__file__).resolve().parents[1]
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
BENCH_REDIS_DB = int(os.environ.get("KAIZEN_BENCH_REDIS_DB", "13"))
WIDE_VIEW = "wide_50"
WIDE_FEATURES = [f"f{i:02d}" for i in range(50)]

# A synthetic 50-feature view, added only to the benchmark's copy of the repo.
_WIDE_MODULE = f'''"""Benchmark only: a 50-feature view (not part of Kaizen's repo)."""

import datetime as dt

from entities import customer
from feast import FeatureView, Field, FileSource
from feast.types import Float64

from kaizen.featurestore.repo import offline_path

{WIDE_VIEW} = FeatureView(
    name="{WIDE_VIEW}",
    entities=[customer],
    ttl=dt.timedelta(days=3650),
    schema=[Field(name=f"f{{i:02d}}", dtype=Float64) for i in range(50)],
    source=FileSource(
        name="{WIDE_VIEW}_source", path=offline_path("{WIDE_VIEW}"), timestamp_field="event_timestamp"
    ),
    online=True,
)
'''


@dataclass
class ThroughputRow(Row):
    """A row whose goal is on throughput: ratio = measured rows/s / baseline rows/s
    (= baseline seconds / measured seconds for the same rows)."""

    higher_is_better: bool = True  # kept in the JSON, so a partial rerun reloads it right


@dataclass
class Workspace:
    root: Path
    repo: Path
    lake_root: Path

    def settings(self, online: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": REPO,
            "project": PROJECT_NAME,
            "feast_repo": self.repo,
            "lake_root": str(self.lake_root),
            "feast_data_dir": self.root / f"feast-{online}",
            "feast_online_store": online,
            "feast_registry": "file",
            "redis_connection": f"{REDIS_HOST}:{REDIS_PORT},db={BENCH_REDIS_DB}",
        }
        return Settings(_env_file=None, **(values | overrides))

    @property
    def lake(self) -> Lake:
        return Lake(str(self.lake_root))


def workspace(prefix: str) -> Workspace:
    root = Path(tempfile.mkdtemp(prefix=f"kaizen-bench-{prefix}-"))
    repo = root / "feature_repo"
    shutil.copytree(
        PROJECT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__", "data")
    )
    (repo / "wide.py").write_text(_WIDE_MODULE)
    return Workspace(root=root, repo=repo, lake_root=root / "lake")


def cleanup(ws: Workspace) -> None:
    shutil.rmtree(ws.root, ignore_errors=True)


def contract() -> dict[str, dict[str, str]]:
    key = {ENTITY: "int64", EVENT_TIMESTAMP: TIMESTAMP}
    features = view_features(project_params().featurize)
    dtypes = {view: key | columns for view, columns in features.items()}
    return {**dtypes, WIDE_VIEW: key | dict.fromkeys(WIDE_FEATURES, "float64")}


_STRINGS = {
    "region": ["north", "south", "east", "west", "central"],
    "income_band": ["<30k", "30-60k", "60-100k", "100k+"],
}


def synthetic_view(view: str, customers: np.ndarray, stamps: Any, seed: int) -> pa.Table:
    """Feature rows of `view` for these customers at these event times, typed by the
    contract: ints, floats with a few nulls, and the two text columns from small sets."""
    rng = np.random.default_rng(seed)
    n = len(customers)
    columns: dict[str, Any] = {}
    for name, dtype in contract()[view].items():
        if name == ENTITY:
            columns[name] = pa.array(customers, pa.int64())
        elif name == EVENT_TIMESTAMP:
            index = pd.DatetimeIndex([stamps] * n if isinstance(stamps, pd.Timestamp) else stamps)
            columns[name] = pa.array(
                index.tz_convert("UTC").as_unit("us"), pa.timestamp("us", "UTC")
            )
        elif dtype == "int64":
            columns[name] = pa.array(rng.integers(0, 500, n), pa.int64())
        elif dtype == "float64":
            values = rng.gamma(2.0, 500.0, n)
            mask = rng.random(n) < 0.03
            columns[name] = pa.array(values, pa.float64(), mask=mask)
        else:
            choices = _STRINGS.get(name, ["a", "b", "c"])
            columns[name] = pa.array(rng.choice(choices, n), pa.string())
    return pa.table(columns)


def write_days(ws: Workspace, views: list[str], customers: int, days: list[str]) -> int:
    """Publish one partition per view and day for customers 1..N; returns the rows written."""
    lake = ws.lake
    ids = np.arange(1, customers + 1, dtype=np.int64)
    rows = 0
    for i, ds in enumerate(days):
        for j, view in enumerate(views):
            table = synthetic_view(view, ids, as_of(ds), seed=i * 101 + j)
            lake.write(Partition("features", view, ds), table)
            rows += table.num_rows
    return rows


def day_list(first: str, count: int) -> list[str]:
    start = dt.date.fromisoformat(first)
    return [(start + dt.timedelta(days=k)).isoformat() for k in range(count)]


def apply_repo(settings: Settings) -> Any:
    from kaizen.featurestore.store import apply, open_store

    apply(settings)
    return open_store(settings)


def flush_bench_redis() -> None:
    import redis

    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BENCH_REDIS_DB).flushdb()


def redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def redis_cpus() -> set[int]:
    """The CPUs the Redis server may run on (empty if it cannot be found)."""
    import psutil

    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "redis-server" and any(
                f":{REDIS_PORT}" in part for part in proc.info["cmdline"] or []
            ):
                return set(proc.cpu_affinity())
        except (psutil.Error, OSError):
            continue
    return set()


@contextlib.contextmanager
def pinned_off_redis() -> Iterator[int | None]:
    """Run the calling thread (which does all the benchmark's work) on one core, another
    than the one Redis last ran on, if there are two; the previous affinity is restored."""
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        yield None
        return
    import psutil

    last = None
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "redis-server":
            with contextlib.suppress(psutil.Error, AttributeError):
                last = proc.cpu_num()
            break
    cpu = max(c for c in allowed if c != last) if last in allowed else max(allowed)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, allowed)


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f}"


def run_child(module: str, payload: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    """Run `python -m <module>` with a JSON payload on stdin; its last stdout line is JSON.

    Peak RSS is measured in the child, so each side of a comparison has its own process.
    """
    env = child_env({"PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])})
    done = subprocess.run(
        [sys.executable, "-m", module],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rss_now_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def reset_peak_rss() -> None:
    """Start a new high-water mark of this process's RSS (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def peak_rss_mb() -> float:
    """The high-water mark of this process's RSS since start or `reset_peak_rss()`."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def median(values: list[float]) -> float:
    return float(statistics.median(values))
