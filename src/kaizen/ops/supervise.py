"""The platform's supervisor: `kaizen up` runs `python -m kaizen.ops.supervise RUNTIME_DIR`.

It starts each component of `components.json` in a session of its own once the components it
comes `after` answer their health checks, restarts one that exits with exponential backoff,
gives up on one that keeps crashing, keeps its view in `supervisor.json` (what `kaizen status`
shows) and logs every restart as one line. SIGTERM stops everything; SIGHUP retries the
components it gave up on (`kaizen up` sends it).

Why a small loop of our own and not a library: honcho stops every process when one exits and
restarts none. supervisord restarts, but its backoff covers only a program that dies within
`startsecs` (one that ran longer is restarted at once, without end), it starts programs by
priority without waiting for one to answer, it leaves a SIGKILLed program's children running
(a uvicorn worker keeps the port, so the restart crash-loops) and its exit events carry no
exit status. Closing those gaps takes a wrapper per program plus an event listener: more code
than this loop, which has one rule for each.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psutil

from kaizen.ops.components import Component, read_plan
from kaizen.ops.layout import Layout

TICK_S = 0.25
SWEEP_S = 2.0  # how often a draining component's leftovers are looked at
STOP_GRACE_S = 7.0  # SIGTERM to SIGKILL; below `kaizen down`'s own grace (9 s), so it ends first


@dataclass(frozen=True)
class RestartPolicy:
    """Restart #n of a component waits `backoff_s * 2**(n-1)` s (at most `max_backoff_s`); n
    counts the restarts since it last ran `stable_s` in one go, and after `max_restarts` in a
    row it is given up on."""

    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_restarts: int = 5
    stable_s: float = 60.0

    def delay(self, restart: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** (restart - 1))


@dataclass
class Child:
    item: Component
    proc: subprocess.Popen[bytes] | None = None
    state: str = "waiting"  # waiting | running | backoff | gave-up | stopped
    due: float = 0.0  # monotonic time from which it may start
    started: float = 0.0
    in_a_row: int = 0  # restarts since it last ran stable_s
    restarts: int = 0  # every restart of this run
    last_exit: str = ""
    note: str = ""


def describe_exit(rc: int) -> str:
    if rc < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-rc).name}"
        return f"killed by signal {-rc}"
    return f"exit code {rc}"


def session_members(sessions: set[int]) -> dict[int, list[psutil.Process]]:
    """The live processes of each session id (zombies and this process left out)."""
    found: dict[int, list[psutil.Process]] = {sid: [] for sid in sessions}
    me = os.getpid()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            sid = os.getsid(proc.pid)
            if sid in found and proc.pid != me and proc.status() != psutil.STATUS_ZOMBIE:
                found[sid].append(proc)
    return found


class Supervisor:
    def __init__(
        self,
        items: list[Component],
        layout: Layout,
        policy: RestartPolicy | None = None,
        out: BinaryIO | None = None,
        answers: Callable[[Component], bool] | None = None,
    ) -> None:
        names = {c.name for c in items}
        unknown = sorted({a for c in items for a in c.after} - names)
        if unknown:
            raise ValueError(f"components come after unknown ones: {', '.join(unknown)}")
        self.children = {c.name: Child(c) for c in items}
        self.layout = layout
        self.policy = policy or RestartPolicy()
        self.out = out or sys.stdout.buffer
        self.answers = answers or _health_check()
        self.sessions: dict[int, str] = {}  # every session this run started -> its component
        self.draining: set[int] = set()
        self.stopping = False
        self.retry = False
        self._lock = threading.Lock()
        self._width = max(len(n) for n in [*names, "supervisor"])
        self._written = ""
        self._next_sweep = 0.0

    def say(self, name: str, line: bytes | str) -> None:
        data = line.encode() if isinstance(line, str) else line
        prefix = f"{time.strftime('%H:%M:%S')} {name:<{self._width}} | ".encode()
        with self._lock:
            self.out.write(prefix + data.rstrip(b"\n") + b"\n")
            self.out.flush()

    def run(self) -> int:
        def stop(*_: object) -> None:
            self.stopping = True

        def retry(*_: object) -> None:
            self.retry = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, retry)
        self.say("supervisor", f"pid {os.getpid()}: starting {', '.join(self.children)}")
        while not self.stopping:
            self.tick(time.monotonic())
            time.sleep(TICK_S)
        self.stop()
        return 0

    def tick(self, now: float) -> None:
        if self.retry:
            self.retry = False
            for child in self.children.values():
                if child.state == "gave-up":
                    child.state, child.in_a_row, child.due = "waiting", 0, now
                    self.say("supervisor", f"{child.item.name}: trying again (kaizen up)")
        answering: dict[str, bool] = {}
        for child in self.children.values():
            if child.proc is not None and (rc := child.proc.poll()) is not None:
                self._exited(child, rc, now)
            if (
                child.state == "running"
                and child.in_a_row
                and now - child.started >= (self.policy.stable_s)
            ):
                child.in_a_row = 0
            if child.state in ("waiting", "backoff") and now >= child.due:
                blocked = [a for a in child.item.after if not self._answers(a, answering)]
                if blocked:
                    child.note = f"waiting for {', '.join(blocked)} to answer"
                else:
                    self._start(child, now)
        if self.draining and now >= self._next_sweep:
            self._sweep()
            self._next_sweep = now + SWEEP_S
        self.write_state()

    def _answers(self, name: str, cache: dict[str, bool]) -> bool:
        if name not in cache:
            child = self.children[name]
            cache[name] = child.state == "running" and self.answers(child.item)
        return cache[name]

    def _start(self, child: Child, now: float) -> None:
        item = child.item
        try:
            proc = subprocess.Popen(
                item.argv,
                env={**os.environ, **item.env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its pid is its session id: its leftovers are found
                close_fds=True,
            )
        except OSError as exc:
            child.started = now
            self._failed(child, f"not started: {exc.strerror or exc}", now)
            return
        self.layout.component_pid_file(item.name).write_text(f"{proc.pid}\n")
        self.sessions[proc.pid] = item.name
        child.proc, child.state, child.started, child.note = proc, "running", now, ""
        assert proc.stdout is not None
        threading.Thread(target=self._pump, args=(item.name, proc.stdout), daemon=True).start()

    def _pump(self, name: str, stream: BinaryIO) -> None:
        with stream:
            for line in iter(stream.readline, b""):
                self.say(name, line)

    def _exited(self, child: Child, rc: int, now: float) -> None:
        assert child.proc is not None
        session, child.proc = child.proc.pid, None
        if child.item.drains:
            self.draining.add(session)
        else:  # nothing of it may outlive it: a leftover worker would keep the port
            left = session_members({session})[session]
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(left, timeout=3)
        if not self.stopping:
            self._failed(child, describe_exit(rc), now)

    def _failed(self, child: Child, how: str, now: float) -> None:
        name, ran, limit = child.item.name, now - child.started, self.policy.max_restarts
        child.last_exit = how
        if child.in_a_row >= limit:
            child.state = "gave-up"
            child.note = f"gave up after {limit} restarts in a row (last: {how})"
            self.say(
                "supervisor",
                f"{name} exited ({how}) after {ran:.0f}s; gave up after {limit} restarts in "
                f"a row: fix what its lines above say, then `kaizen up` starts it again",
            )
            return
        child.in_a_row += 1
        child.restarts += 1
        delay = self.policy.delay(child.in_a_row)
        child.state, child.due = "backoff", now + delay
        child.note = f"restart #{child.in_a_row} in {delay:g}s (last: {how})"
        self.say(
            "supervisor",
            f"{name} exited ({how}) after {ran:.0f}s; restart #{child.in_a_row} of at most "
            f"{limit} in {delay:g}s",
        )

    def _sweep(self) -> None:
        """A draining component's leftovers finish what they run; one that is idle (no child
        of its own, e.g. a LocalExecutor worker whose task is done) and no longer under
        another of them is stopped."""
        for session, procs in session_members(self.draining).items():
            if not procs:
                self.draining.discard(session)
                continue
            pids = {p.pid for p in procs}
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    if proc.ppid() not in pids and not proc.children():
                        proc.kill()

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM every component's process group, SIGKILL what is left of any session of
        this run after the grace period."""
        self.say("supervisor", "stopping every component")
        for child in self.children.values():
            child.state, child.note = "stopped", ""
            if child.proc is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.proc.pid, signal.SIGTERM)
        for procs in session_members(self.draining).values():
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.terminate()
        deadline = time.monotonic() + grace_s
        left = session_members(set(self.sessions))
        while any(left.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
            left = session_members(set(self.sessions))
        stragglers = [(self.sessions[sid], p) for sid, procs in left.items() for p in procs]
        for _, proc in stragglers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if stragglers:
            which = ", ".join(f"{name} pid {p.pid}" for name, p in stragglers)
            self.say("supervisor", f"killed what was alive {grace_s:g}s after SIGTERM: {which}")
        for child in self.children.values():
            if child.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(timeout=2)
                child.proc = None
        self.write_state()

    def write_state(self) -> None:
        """`supervisor.json`, replaced in one step when anything in it changed."""
        state = {
            "pid": os.getpid(),
            "sessions": {str(sid): name for sid, name in self.sessions.items()},
            "components": {
                name: {
                    "state": c.state,
                    "pid": c.proc.pid if c.proc else None,
                    "restarts": c.restarts,
                    "last_exit": c.last_exit,
                    "note": c.note,
                }
                for name, c in self.children.items()
            },
        }
        text = json.dumps(state, indent=1)
        if text != self._written:
            tmp = self.layout.state_file.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.layout.state_file)
            self._written = text


def read_state(layout: Layout) -> dict[str, object]:
    """What the supervisor last wrote, or {} when it wrote nothing readable."""
    try:
        state = json.loads(layout.state_file.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _health_check() -> Callable[[Component], bool]:
    import httpx

    from kaizen.ops.health import check

    client = httpx.Client(timeout=2.0, trust_env=False)  # never a proxy between us and loopback
    return lambda item: check(client, item)[0]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m kaizen.ops.supervise RUNTIME_DIR", file=sys.stderr)
        return 2
    layout = Layout(Path(args[0]))
    return Supervisor(read_plan(layout.plan_file.read_text()), layout).run()


if __name__ == "__main__":
    sys.exit(main())
