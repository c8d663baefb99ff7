"""The platform heals itself: each long-running component, SIGKILLed one at a time, is
restarted and healthy again; a scheduler killed during a DAG run loses and repeats nothing.

They run in file order on the session's one platform (tests/integration/conftest.py, shared
with test_platform.py): `kaizen up` on free ports in its own home, whose DAGs folder holds a
probe DAG for these tests. Each kill is healed before the next test; the last one stops it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import psutil
import pytest
from support import PROBE_DAG_ID, Platform

pytestmark = [pytest.mark.slow, pytest.mark.services]

DAG_ID = PROBE_DAG_ID


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


def back_healthy(platform: Platform, name: str, old_pid: int, timeout_s: float = 120) -> float:
    """Seconds until `name` runs again under another pid and is healthy."""
    started, killed_at = time.monotonic(), dt.datetime.now(dt.UTC)

    def beat_since_kill() -> bool:
        if name not in HEARTBEATS:
            return True
        field, key = HEARTBEATS[name]
        monitor = httpx.get(f"{platform.airflow}/api/v2/monitor/health", trust_env=False).json()
        beat = monitor[field].get(key)
        if not beat:
            return False
        when = dt.datetime.fromisoformat(beat)
        return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)) > killed_at

    def healed() -> bool:
        row = platform.report()[name]
        return bool(row["healthy"] and row["pid"] not in (None, old_pid) and beat_since_kill())

    wait(f"{name} healthy again", healed, timeout_s)
    return time.monotonic() - started


def supervisor_lines(platform: Platform) -> list[str]:
    return [
        line.split("|", 1)[1].strip()
        for line in platform.layout.log_file.read_text(errors="replace").splitlines()
        if line[9:].startswith("supervisor ") and "|" in line
    ]


def airflow_client(platform: Platform) -> httpx.Client:
    token = httpx.post(
        f"{platform.airflow}/auth/token",
        json={"username": "admin", "password": platform.airflow_password},
        timeout=15,
        trust_env=False,
    )
    assert token.status_code in (200, 201), token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    return httpx.Client(
        base_url=f"{platform.airflow}/api/v2", headers=headers, timeout=15, trust_env=False
    )


def test_a_scheduler_killed_mid_run_loses_and_repeats_nothing(platform: Platform) -> None:
    with airflow_client(platform) as client:
        wait("the DAG parsed", lambda: client.get(f"/dags/{DAG_ID}").status_code == 200, 90)
        assert client.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
        triggered = client.post(f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
        assert triggered.status_code == 200, triggered.text
        run = f"/dags/{DAG_ID}/dagRuns/{triggered.json()['dag_run_id']}"

        def states() -> dict[str, tuple[str | None, int]]:
            tis = client.get(f"{run}/taskInstances").json()["task_instances"]
            return {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in tis}

        def slow_started() -> bool:
            return platform.task_log.exists() and "slow start" in platform.task_log.read_text()

        wait("task slow running", slow_started, 90, 0.5)
        assert states()["slow"][0] == "running"
        scheduler = platform.pid("airflow-scheduler")
        os.kill(scheduler, signal.SIGKILL)
        killed_at = time.monotonic()
        seconds = back_healthy(platform, "airflow-scheduler", scheduler)
        assert "slow end" not in platform.task_log.read_text(), "the kill came after the task"
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
    assert platform.task_log.read_text().splitlines() == ["slow start", "slow end", "after"]
    assert any(
        line.startswith("airflow-scheduler exited (killed by SIGKILL)") and "restart #1" in line
        for line in supervisor_lines(platform)
    ), supervisor_lines(platform)
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


def test_each_component_killed_comes_back_healthy(platform: Platform) -> None:
    took = {}
    for name in KILLED_ONE_AT_A_TIME:
        old = platform.pid(name)
        os.kill(old, signal.SIGKILL)
        took[name] = back_healthy(platform, name, old)
        assert platform.report()[name]["restarts"] == 1
    print("healthy again after SIGKILL: " + ", ".join(f"{n} {s:.0f}s" for n, s in took.items()))
    lines = supervisor_lines(platform)
    for name in KILLED_ONE_AT_A_TIME:
        assert any(
            line.startswith(f"{name} exited (killed by SIGKILL)") and "restart #1 of" in line
            for line in lines
        ), (name, lines)
    report = platform.report()
    assert all(row["healthy"] for row in report.values()), report


def test_up_on_a_healing_platform_waits_for_it(platform: Platform) -> None:
    old = platform.pid("prediction-api")
    os.kill(old, signal.SIGKILL)
    again = platform.kaizen("up", "--timeout", "120", timeout=150)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "is running and restarts crashed components" in again.stdout
    assert "already running" not in again.stdout
    assert platform.report()["prediction-api"]["pid"] != old


def test_down_stops_the_orphans_of_a_killed_supervisor_within_15s(platform: Platform) -> None:
    from kaizen.ops.supervisor import members

    before = [m.proc for m in members(platform.layout)]
    supervisor = int(platform.layout.pid_file.read_text())
    os.kill(supervisor, signal.SIGKILL)
    wait(
        "the supervisor gone",
        lambda: supervisor not in {m.proc.pid for m in members(platform.layout)},
        10,
        0.1,
    )
    started = time.monotonic()
    result = platform.kaizen("down", timeout=30)
    seconds = time.monotonic() - started
    print(f"kaizen down with the supervisor SIGKILLed: {seconds:.1f}s; {result.stdout.strip()}")
    assert result.returncode == 0, result.stderr
    assert seconds < 15
    alive = [p.pid for p in before if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [] and members(platform.layout) == []
