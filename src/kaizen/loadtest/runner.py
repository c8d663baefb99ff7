"""Run the locust scenario headless as a subprocess and read its figures back from its CSV."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kaizen.errors import KaizenError
from kaizen.logs import get_logger
from kaizen.params import LoadTestParams

log = get_logger(__name__)
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
PREDICT = "/predict"  # a project's route is /<project>/predict (`predict_path`)


def predict_path(project: str) -> str:
    return f"/{project}{PREDICT}"


@dataclass(frozen=True)
class CoreSplit:
    """Which CPUs the server and locust run on; `pinned` is False when they share them."""

    server: tuple[int, ...]
    locust: tuple[int, ...]

    @property
    def pinned(self) -> bool:
        return not set(self.server) & set(self.locust)

    def describe(self) -> str:
        if self.pinned:
            return f"server on CPU {_cpus(self.server)}, locust on CPU {_cpus(self.locust)}"
        return f"server and locust share CPU {_cpus(self.server)} (one core: no pinning)"


def _cpus(cores: tuple[int, ...]) -> str:
    return ",".join(str(c) for c in cores)


def split_cores(available: set[int] | None = None) -> CoreSplit:
    """The first half of the CPUs this process may use for the server, the rest for locust
    (so the load generator never steals the measured server's core)."""
    cores = tuple(sorted(available if available is not None else os.sched_getaffinity(0)))
    if len(cores) < 2:
        return CoreSplit(cores, cores)
    half = len(cores) // 2
    return CoreSplit(cores[:half], cores[half:])


def pinned(command: list[str], cores: tuple[int, ...]) -> list[str]:
    """`command` under `taskset` on `cores`, or unchanged where taskset is missing."""
    taskset = shutil.which("taskset")
    return [taskset, "-c", _cpus(cores), *command] if taskset else command


@dataclass(frozen=True)
class LoadResult:
    requests: int
    failures: int
    p50_ms: float | None  # POST /predict
    p99_ms: float | None  # POST /predict
    rps: float  # every request
    users: int
    duration_s: int
    cores: str
    first_failure: str | None

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": self.error_rate}

    def summary(self) -> str:
        def ms(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.0f} ms"

        return (
            f"/predict p50 {ms(self.p50_ms)}, p99 {ms(self.p99_ms)}; {self.rps:.1f} req/s; "
            f"errors {self.failures}/{self.requests} ({self.error_rate:.2%}); "
            f"{self.users} users for {self.duration_s}s; {self.cores}"
        )


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:  # locust writes N/A when a row has no requests
        return None


def read_stats(
    prefix: Path, path: str = PREDICT
) -> tuple[dict[str, str], dict[str, str] | None, str | None]:
    """The Aggregated and POST `path` rows of locust's stats CSV, and its first failure."""
    stats = Path(f"{prefix}_stats.csv")
    if not stats.is_file():
        raise KaizenError(f"locust wrote no statistics ({stats} is missing)")
    with stats.open(newline="") as f:
        rows = list(csv.DictReader(f))
    total = next((r for r in rows if r["Name"] == "Aggregated"), None)
    if total is None:
        raise KaizenError(f"locust's {stats.name} has no Aggregated row")
    predict = next((r for r in rows if r["Name"] == path and r["Type"] == "POST"), None)
    first = None
    failures = Path(f"{prefix}_failures.csv")
    if failures.is_file():
        with failures.open(newline="") as f:
            row = next(csv.DictReader(f), None)
        if row is not None:
            first = f"{row['Method']} {row['Name']}: {row['Error']}"[:300]
    return total, predict, first


def warm_up(url: str, token: str, traffic: Path, requests: int, path: str = PREDICT) -> None:
    """Unmeasured POST `path` calls, so lazy imports and first connections are not in p99.
    Their outcome is not judged here: the measured run shows any failure."""
    import json

    import httpx

    bodies = json.loads(traffic.read_text())[:requests]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30, trust_env=False) as http:
        for body in bodies:
            try:
                http.post(path, json=body)
            except httpx.HTTPError:
                break


def served_project(url: str) -> str:
    """The project an API serves, when it serves exactly one (its open root /health says)."""
    import httpx

    try:
        body = httpx.get(f"{url}/health", timeout=5, trust_env=False).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise KaizenError(f"no prediction API answers at {url} ({type(exc).__name__})") from None
    projects = sorted(body.get("projects") or {}) if isinstance(body, dict) else []
    if len(projects) != 1:
        raise KaizenError(
            f"the prediction API at {url} serves {projects or 'no project'}: name the one "
            "to load-test"
        )
    return projects[0]


def run_locust(
    url: str,
    token: str,
    traffic: Path,
    p: LoadTestParams,
    cores: tuple[int, ...],
    describe_cores: str,
    duration_s: int | None = None,
    users: int | None = None,
    *,
    project: str | None = None,
) -> LoadResult:
    """A headless locust run against `project`'s routes at `url` (None: the one project the
    API serves); its figures, or KaizenError when locust failed."""
    duration = duration_s or p.duration_seconds
    users = users or p.users
    project = project or served_project(url)
    path = predict_path(project)
    warm_up(url, token, traffic, p.warmup_requests, path)
    locust = Path(sys.executable).with_name("locust")
    if not locust.is_file():
        raise KaizenError(f"locust is not installed beside {sys.executable} (run `make install`)")
    with tempfile.TemporaryDirectory(prefix="kaizen-locust-") as tmp:
        prefix = Path(tmp) / "run"
        command = [
            str(locust),
            *("-f", str(LOCUSTFILE), "--headless", "--host", url),
            *("--users", str(users), "--spawn-rate", str(p.spawn_rate)),
            *("--run-time", f"{duration}s", "--stop-timeout", "5"),
            *("--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"),
            *("--exit-code-on-error", "0"),  # the caller judges the figures
        ]
        env = {
            **os.environ,
            "KAIZEN_LOADTEST_TRAFFIC": str(traffic),
            "KAIZEN_LOADTEST_TOKEN": token,
            "KAIZEN_LOADTEST_PROJECT": project,
            "KAIZEN_LOADTEST_HEALTH_SHARE": str(p.health_share),
            "KAIZEN_LOADTEST_WAIT_MAX": str(p.wait_max_seconds),
        }
        log.info(
            "locust: %d users for %ds against %s%s; %s", users, duration, url, path, describe_cores
        )
        try:
            done = subprocess.run(
                pinned(command, cores),
                env=env,
                capture_output=True,
                text=True,
                timeout=duration + 120,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise KaizenError(f"locust did not finish a {duration}s run within 120s more") from None
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise KaizenError(f"locust exited with {done.returncode}: {tail}")
        total, predict, first = read_stats(prefix, path)
    row = predict or {}
    return LoadResult(
        requests=int(total["Request Count"]),
        failures=int(total["Failure Count"]),
        p50_ms=_number(row.get("50%", "N/A")),
        p99_ms=_number(row.get("99%", "N/A")),
        rps=float(total["Requests/s"]),
        users=users,
        duration_s=duration,
        cores=describe_cores,
        first_failure=first,
    )


def breaches(result: LoadResult, budget_ms: float) -> list[str]:
    """Why `result` is not within the budget (empty when it is): p99 and zero errors."""
    problems = []
    if result.p99_ms is None:
        problems.append("no successful POST /predict was measured")
    elif result.p99_ms > budget_ms:
        problems.append(f"/predict p99 {result.p99_ms:.0f} ms > budget {budget_ms:g} ms")
    if result.failures:
        problems.append(
            f"{result.failures} of {result.requests} requests failed (first: {result.first_failure})"
        )
    if result.requests == 0:
        problems.append("locust made no request")
    return problems


def load_test_running_api(
    rt: Any, users: int | None = None, duration_s: int | None = None
) -> LoadResult:
    """`make loadtest`: the scenario against the project's routes of the API `make serve` /
    `make up` runs (host, port and token from the settings). Locust takes the second half
    of the CPUs; the server's placement is its own."""
    from kaizen.errors import InputError
    from kaizen.loadtest.traffic import write_traffic
    from kaizen.serving.server import require_token

    p = rt.params.promote.load_test
    if p is None:
        raise InputError("params.yaml has no promote.load_test section")
    token = require_token(rt.settings)
    url = f"http://{rt.settings.prediction_api_host}:{rt.settings.prediction_api_port}"
    cores = split_cores()
    where = f"locust on CPU {_cpus(cores.locust)} of {len(os.sched_getaffinity(0))}"
    with tempfile.TemporaryDirectory(prefix="kaizen-loadtest-") as tmp:
        traffic = Path(tmp) / "traffic.json"
        write_traffic(rt, traffic)
        project = rt.project.name
        _require_health(url, project)
        return run_locust(
            url, token, traffic, p, cores.locust, where, duration_s, users, project=project
        )


def _require_health(url: str, project: str) -> None:
    import httpx

    try:
        status = httpx.get(f"{url}/{project}/health", timeout=5, trust_env=False).status_code
    except httpx.HTTPError as exc:
        raise KaizenError(
            f"no prediction API answers at {url} ({type(exc).__name__}): start it with "
            "`make serve` or `make up` first"
        ) from None
    if status != 200:
        if status == 404:
            raise KaizenError(f"the prediction API at {url} does not serve project {project}")
        raise KaizenError(
            f"the prediction API at {url} is not ready for {project} (/{project}/health {status})"
        )
