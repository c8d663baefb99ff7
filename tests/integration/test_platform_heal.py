"""The platform heals itself: each long-running component, SIGKILLed one at a time, is
restarted and healthy again; a scheduler killed during a DAG run loses and repeats nothing.

One stack for the module (`kaizen up` on free ports, its own home and a one-DAG folder, as
tests/integration/test_platform.py does); the tests run in file order on it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from support import REPO

from kaizen.config import Settings
from kaizen.ops.layout import Layout
from kaizen.seaweed import free_port

pytestmark = [pytest.mark.slow, pytest.mark.services]

KAIZEN = str(Path(sys.executable).with_name("kaizen"))
DAG_ID = "heal_probe"
SLOW_S = 20  # long enough to kill the scheduler in the middle of it
# retries=0: a task lost with the scheduler fails the run instead of hiding behind a retry;
# each task appends one line per execution, so a repeat shows.
DAG = """
import pathlib, time
import pendulum
from airflow.sdk import dag, task

LOG = pathlib.Path({log!r})


def note(line):
    with LOG.open("a") as out:
        out.write(line + "\\n")


@dag(dag_id={dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
     catchup=False, default_args={{"retries": 0}})
def heal_probe():
    @task
    def slow():
        note("slow start")
        time.sleep({slow_s})
        note("slow end")

    @task
    def after():
        note("after")

    slow() >> after()


heal_probe()
"""


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    layout: Layout
    airflow: str
    airflow_password: str
    task_log: Path

    def kaizen(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KAIZEN, *args], env=self.env, cwd=self.home, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def report(self) -> dict[str, Any]:
        """`kaizen status --platform --json`'s components by name."""
        out = self.kaizen("status", "--platform", "--json").stdout
        return {c["name"]: c for c in json.loads(out)["platform"]["components"]}

    def pid(self, name: str) -> int:
        return int(self.layout.component_pid_file(name).read_text())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("heal-home")
    dags, task_log = home / "dags", home / "task-lines.txt"
    dags.mkdir()
    (dags / "heal_probe.py").write_text(DAG.format(log=str(task_log), dag_id=DAG_ID, slow_s=SLOW_S))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAIZEN_", "AIRFLOW"))}
    env.update(
        {
            "KAIZEN_HOME": str(home),
            "KAIZEN_DAGS_FOLDER": str(dags),
            "KAIZEN_RAW_ROOT": str(home / "{project}" / "raw"),
            "KAIZEN_LAKE_ROOT": str(home / "{project}" / "lake"),
            "KAIZEN_PROJECTS_DIR": str(REPO / "projects"),
            "KAIZEN_PROJECT": "credit_risk",
            "KAIZEN_FEAST_DATA_DIR": str(home / "{project}" / "feast"),
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    for name in ("AIRFLOW", "MLFLOW", "FEATURE_SERVER", "PREDICTION_API"):
        env[f"KAIZEN_{name}_PORT"] = str(free_port())
    up = subprocess.run(
        [KAIZEN, "up", "--timeout", "150"], env=env, cwd=home, capture_output=True, text=True,
        timeout=200,
    )  # fmt: skip
    try:
        assert up.returncode == 0, f"kaizen up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        settings = Settings(_env_file=home / ".env", home=home)
        assert settings.airflow_admin_password
        yield Stack(
            home=home,
            env=env,
            layout=Layout(home / ".kaizen"),
            airflow=f"http://127.0.0.1:{env['KAIZEN_AIRFLOW_PORT']}",
            airflow_password=settings.airflow_admin_password.get_secret_value(),
            task_log=task_log,
        )
    finally:
        subprocess.run([KAIZEN, "down"], env=env, cwd=home, capture_output=True, timeout=60)


def wait(what: str, done: Callable[[], Any], timeout_s: float, every_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := done()):
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f}s: {what}"
        time.sleep(every_s)
    return result


# Airflow reports these by the latest heartbeat of their kind: the killed process's last one
# still reads healthy for a while, so healed means a heartbeat from after the kill.
HEARTBEATS = {
    "airflow-scheduler": ("scheduler", "latest_scheduler_heartbeat"),
    "airflow-dag-processor": ("dag_processor", "latest_dag_processor_heartbeat"),
    "airflow-triggerer": ("triggerer", "latest_triggerer_heartbeat"),
}


def back_healthy(stack: Stack, name: str, old_pid: int, timeout_s: float = 120) -> float:
    """Seconds until `name` runs again under another pid and is healthy."""
    started, killed_at = time.monotonic(), dt.datetime.now(dt.UTC)

    def beat_since_kill() -> bool:
        if name not in HEARTBEATS:
            return True
        field, key = HEARTBEATS[name]
        monitor = httpx.get(f"{stack.airflow}/api/v2/monitor/health", trust_env=False).json()
        beat = monitor[field].get(key)
        if not beat:
            return False
        when = dt.datetime.fromisoformat(beat)
        return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)) > killed_at

    def healed() -> bool:
        row = stack.report()[name]
        return bool(row["healthy"] and row["pid"] not in (None, old_pid) and beat_since_kill())

    wait(f"{name} healthy again", healed, timeout_s)
    return time.monotonic() - started


def supervisor_lines(stack: Stack) -> list[str]:
    return [
        line.split("|", 1)[1].strip()
        for line in stack.layout.log_file.read_text(errors="replace").splitlines()
        if line[9:].startswith("supervisor ") and "|" in line
    ]


def airflow_client(stack: Stack) -> httpx.Client:
    token = httpx.post(
        f"{stack.airflow}/auth/token",
        json={"username": "admin", "password": stack.airflow_password},
        timeout=15,
        trust_env=False,
    )
    assert token.status_code in (200, 201), token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    return httpx.Client(
        base_url=f"{stack.airflow}/api/v2", headers=headers, timeout=15, trust_env=False
    )


def test_a_scheduler_killed_mid_run_loses_and_repeats_nothing(stack: Stack) -> None:
    with airflow_client(stack) as client:
        wait("the DAG parsed", lambda: client.get(f"/dags/{DAG_ID}").status_code == 200, 90)
        assert client.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
        triggered = client.post(f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
        assert triggered.status_code == 200, triggered.text
        run = f"/dags/{DAG_ID}/dagRuns/{triggered.json()['dag_run_id']}"

        def states() -> dict[str, tuple[str | None, int]]:
            tis = client.get(f"{run}/taskInstances").json()["task_instances"]
            return {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in tis}

        def slow_started() -> bool:
            return stack.task_log.exists() and "slow start" in stack.task_log.read_text()

        wait("task slow running", slow_started, 90, 0.5)
        assert states()["slow"][0] == "running"
        scheduler = stack.pid("airflow-scheduler")
        os.kill(scheduler, signal.SIGKILL)
        killed_at = time.monotonic()
        seconds = back_healthy(stack, "airflow-scheduler", scheduler)
        assert "slow end" not in stack.task_log.read_text(), "the kill came after the task"
        final = wait(
            "the run finished",
            lambda: (s := client.get(run).json()["state"]) in ("success", "failed") and s,
            120,
        )
        print(
            f"scheduler SIGKILLed during a task: healthy again in {seconds:.1f}s, run {final} "
            f"{time.monotonic() - killed_at:.0f}s after the kill; tasks {states()}"
        )
        assert final == "success", states()
        assert states() == {"slow": ("success", 1), "after": ("success", 1)}
    assert stack.task_log.read_text().splitlines() == ["slow start", "slow end", "after"]
    assert any(
        line.startswith("airflow-scheduler exited (killed by SIGKILL)") and "restart #1" in line
        for line in supervisor_lines(stack)
    ), supervisor_lines(stack)
    # The killed scheduler's LocalExecutor workers were stopped once their task was done.
    wait("no leftover", lambda: not [p for p in psutil.process_iter() if _sid(p) == scheduler], 10)


def _sid(proc: psutil.Process) -> int | None:
    try:
        return os.getsid(proc.pid) if proc.status() != psutil.STATUS_ZOMBIE else None
    except (psutil.Error, OSError):
        return None


KILLED_ONE_AT_A_TIME = [
    "airflow-api",
    "airflow-dag-processor",
    "airflow-triggerer",
    "mlflow",
    "feature-server",
    "prediction-api",
]


def test_each_component_killed_comes_back_healthy(stack: Stack) -> None:
    took = {}
    for name in KILLED_ONE_AT_A_TIME:
        old = stack.pid(name)
        os.kill(old, signal.SIGKILL)
        took[name] = back_healthy(stack, name, old)
        assert stack.report()[name]["restarts"] == 1
    print("healthy again after SIGKILL: " + ", ".join(f"{n} {s:.0f}s" for n, s in took.items()))
    lines = supervisor_lines(stack)
    for name in KILLED_ONE_AT_A_TIME:
        assert any(
            line.startswith(f"{name} exited (killed by SIGKILL)") and "restart #1 of" in line
            for line in lines
        ), (name, lines)
    report = stack.report()
    assert all(row["healthy"] for row in report.values()), report


def test_up_on_a_healing_platform_waits_for_it(stack: Stack) -> None:
    old = stack.pid("prediction-api")
    os.kill(old, signal.SIGKILL)
    again = stack.kaizen("up", "--timeout", "120", timeout=150)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "is running and restarts crashed components" in again.stdout
    assert "already running" not in again.stdout
    assert stack.report()["prediction-api"]["pid"] != old


def test_down_stops_the_orphans_of_a_killed_supervisor_within_15s(stack: Stack) -> None:
    from kaizen.ops.supervisor import members

    before = [m.proc for m in members(stack.layout)]
    supervisor = int(stack.layout.pid_file.read_text())
    os.kill(supervisor, signal.SIGKILL)
    wait(
        "the supervisor gone",
        lambda: supervisor not in {m.proc.pid for m in members(stack.layout)},
        10,
        0.1,
    )
    started = time.monotonic()
    result = stack.kaizen("down", timeout=30)
    seconds = time.monotonic() - started
    print(f"kaizen down with the supervisor SIGKILLed: {seconds:.1f}s; {result.stdout.strip()}")
    assert result.returncode == 0, result.stderr
    assert seconds < 15
    alive = [p.pid for p in before if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [] and members(stack.layout) == []
