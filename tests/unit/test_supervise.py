"""The platform supervisor's rules on tiny Python processes: restart with backoff, give up,
start order, leftovers of a crash, stop. No server; each test runs in about a second."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from kaizen.ops.components import Component, read_plan, write_plan
from kaizen.ops.layout import Layout
from kaizen.ops.supervise import RestartPolicy, Supervisor, read_state, session_members

FAST = RestartPolicy(backoff_s=0.05, max_backoff_s=0.2, max_restarts=3, stable_s=60)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def make(tmp_path: Path, items: list[Component], **kwargs: object) -> tuple[Supervisor, io.BytesIO]:
    layout = Layout(tmp_path)
    layout.create()
    out = io.BytesIO()
    return Supervisor(items, layout, out=out, **kwargs), out  # type: ignore[arg-type]


def tick_until(sup: Supervisor, done: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "condition not reached"
        sup.tick(time.monotonic())
        time.sleep(0.02)


def test_a_crashing_component_is_restarted_with_backoff_then_given_up(tmp_path: Path) -> None:
    sup, out = make(tmp_path, [Component("flaky", py("import sys; sys.exit(3)"))], policy=FAST)
    try:
        tick_until(sup, lambda: sup.children["flaky"].state == "gave-up")
        seen = read_state(sup.layout)["components"]["flaky"]  # type: ignore[index]
        # SIGHUP (`kaizen up`) makes it try again from a clean count.
        sup.retry = True
        sup.tick(time.monotonic())
        assert sup.children["flaky"].state == "running"
        assert sup.children["flaky"].in_a_row == 0
    finally:
        sup.stop()
    log = out.getvalue().decode()
    lines = [line for line in log.splitlines() if "supervisor |" in line]
    assert len([line for line in lines if "restart #" in line]) == 3
    assert (
        "flaky exited (exit code 3)" in lines[0] and "restart #1 of at most 3 in 0.05s" in lines[0]
    )
    assert "restart #2 of at most 3 in 0.1s" in lines[1]
    assert "restart #3 of at most 3 in 0.2s" in lines[2]
    assert "gave up after 3 restarts in a row" in lines[3] and "kaizen up" in lines[3]
    assert seen["state"] == "gave-up" and seen["restarts"] == 3
    assert seen["last_exit"] == "exit code 3"
    assert "trying again" in out.getvalue().decode()


def test_a_killed_component_comes_back_and_its_leftovers_are_killed(tmp_path: Path) -> None:
    # The leader starts a child that would outlive it (like a uvicorn worker keeping a port).
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); print('up', flush=True); time.sleep(60)"
    sup, out = make(tmp_path, [Component("server", py(code))], policy=FAST)
    try:
        tick_until(sup, lambda: b"server" in out.getvalue() and b"| up" in out.getvalue())
        first = sup.children["server"].proc
        assert first is not None
        tick_until(sup, lambda: len(session_members({first.pid})[first.pid]) == 2)
        os.kill(first.pid, signal.SIGKILL)
        tick_until(sup, lambda: sup.children["server"].restarts == 1)
        assert session_members({first.pid})[first.pid] == []  # the leftover child is gone
        tick_until(sup, lambda: sup.children["server"].state == "running")
        assert "server exited (killed by SIGKILL)" in out.getvalue().decode()
        assert sup.layout.component_pid_file("server").read_text().strip() != str(first.pid)
    finally:
        sup.stop()
    again = sup.children["server"]
    assert again.state == "stopped" and again.proc is None
    assert all(not procs for procs in session_members(set(sup.sessions)).values())


def test_a_draining_components_busy_leftover_finishes_its_work(tmp_path: Path) -> None:
    """The scheduler's rule: a leftover still running a child (a task) is left to finish it and
    stopped once idle; an idle one at once."""
    done = tmp_path / "task-done"
    task = f"import pathlib, time; time.sleep(1.5); pathlib.Path({str(done)!r}).touch()"
    (tmp_path / "worker.py").write_text(
        f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {task!r}])\n"
        "time.sleep(60)\n"
    )
    code = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, {str(tmp_path / 'worker.py')!r}]); "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "time.sleep(60)"
    )
    sup, _ = make(tmp_path, [Component("scheduler", py(code), drains=True)], policy=FAST)
    try:
        tick_until(sup, lambda: sup.children["scheduler"].proc is not None)
        first = sup.children["scheduler"].proc
        assert first is not None
        # leader, busy worker, its task, idle worker
        tick_until(sup, lambda: len(session_members({first.pid})[first.pid]) == 4)
        os.kill(first.pid, signal.SIGKILL)
        tick_until(sup, lambda: len(session_members({first.pid})[first.pid]) == 2, 5)
        assert not done.exists()  # the idle worker went; the busy one and its task run on
        tick_until(sup, lambda: first.pid not in sup.draining, 10)
        assert done.exists()
    finally:
        sup.stop()


def test_a_component_starts_only_after_the_ones_it_needs_answer(tmp_path: Path) -> None:
    ready, started = tmp_path / "api-ready", tmp_path / "scheduler-started"
    api = Component(
        "api",
        py(
            f"import time, pathlib; time.sleep(0.5); pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
        ),
    )
    scheduler = Component(
        "scheduler",
        py(f"import time, pathlib; pathlib.Path({str(started)!r}).touch(); time.sleep(60)"),
        after=("api",),
    )
    sup, _ = make(tmp_path, [scheduler, api], answers=lambda item: ready.exists())
    try:
        sup.tick(time.monotonic())
        assert sup.children["scheduler"].note == "waiting for api to answer"
        tick_until(sup, started.exists)
        assert ready.stat().st_mtime <= started.stat().st_mtime
    finally:
        sup.stop()
    with pytest.raises(ValueError, match="unknown ones: nope"):
        make(tmp_path, [Component("x", py("pass"), after=("nope",))])


def test_the_plan_round_trips_through_json() -> None:
    items = [
        Component("a", ["x", "--y"], env={"K": "v"}, health_url="http://h/health", port=1),
        Component("b", ["z"], also_binds=(2, 3), after=("a",), drains=True, unready_status=503),
    ]
    assert read_plan(write_plan(items)) == items


def test_stop_ends_every_process_of_every_component(tmp_path: Path) -> None:
    ignores_term = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    )
    items = [Component("a", py("import time; time.sleep(60)")), Component("b", py(ignores_term))]
    sup, _ = make(tmp_path, items)
    tick_until(sup, lambda: all(c.proc for c in sup.children.values()))
    pids = [c.proc.pid for c in sup.children.values() if c.proc]
    time.sleep(0.3)  # b installs its handler
    started = time.monotonic()
    sup.stop(grace_s=1.0)
    assert time.monotonic() - started < 3
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)
    assert read_state(sup.layout)["components"]["b"]["state"] == "stopped"  # type: ignore[index]


def test_a_component_that_ran_stable_s_starts_its_count_over(tmp_path: Path) -> None:
    policy = RestartPolicy(backoff_s=0.05, max_backoff_s=0.05, max_restarts=1, stable_s=0.3)
    crashes_late = py("import sys, time; time.sleep(0.5); sys.exit(1)")
    sup, out = make(tmp_path, [Component("late", crashes_late)], policy=policy)
    try:
        tick_until(sup, lambda: sup.children["late"].restarts == 3)
        assert sup.children["late"].state != "gave-up"  # one restart in a row at most
    finally:
        sup.stop()
    assert out.getvalue().decode().count("restart #1 of at most 1") == 3
