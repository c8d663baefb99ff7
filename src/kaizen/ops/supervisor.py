"""Start, stop and inspect the platform: one detached `kaizen.ops.supervise` running
`components()`.

`up` generates the missing admin passwords into `.env`, writes the files the services read,
migrates Airflow's database, writes `components.json` and starts the supervisor in its own
session (pid in `platform.pid`, output in `logs/platform.log`), then waits until every
component is healthy and both admin logins work. On a running supervisor `up` only asks it to
retry what it gave up on and waits for health. `down` sends the supervisor SIGTERM (it stops
each component's process group) and, if anything is left after the grace period, SIGKILLs
every process group of the tree. The tree is found by the session ids the supervisor recorded
and the `KAIZEN_PLATFORM_INSTANCE` variable each process inherits, so orphans are found too
and two instances never touch each other.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from pydantic import SecretStr

from kaizen.config import Settings
from kaizen.errors import KaizenError
from kaizen.logs import get_logger
from kaizen.ops import secrets as platform_secrets
from kaizen.ops.components import Component, components, feature_server_project, write_plan
from kaizen.ops.health import Health, probe, render
from kaizen.ops.layout import (
    HOST,
    MARKER,
    Layout,
    mlflow_artifacts_destination,
    mlflow_auth_database_uri,
    mlflow_backend_store_uri,
)
from kaizen.ops.supervise import read_state
from kaizen.postgres import ensure_database

log = get_logger(__name__)

Echo = Callable[[str], None]
STOP_GRACE_S = 9.0  # SIGTERM grace before SIGKILL; `down` stays under 15 s in all, even on
# two busy cores where the api-server alone took 6.5 s to exit and orphans are killed at the end
# Importing Feast (`up` applies the repo in this process) points these at a temp dir of its own,
# which it removes when this process exits. Inherited, they would send every later Feast import
# of the platform (the feature server, the DAG's apply and materialize tasks) to a missing
# directory (FileNotFoundError); each process's Feast import makes its own instead.
NOT_INHERITED = ("PROMETHEUS_MULTIPROCESS_DIR", "PROMETHEUS_MULTIPROC_DIR")


@dataclass(frozen=True)
class Member:
    """A live process of one platform instance: the supervisor or a component's process."""

    proc: psutil.Process
    component: str  # the component's name, or "supervisor"


def _recorded(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process still runs; a reused pid started after the file
    was written, so it does not count."""
    try:
        pid = int(pid_file.read_text().strip())
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if proc.create_time() > pid_file.stat().st_mtime + 1.0:
            return None
        return pid
    except (OSError, ValueError, psutil.Error):
        return None


def supervisor_pid(layout: Layout) -> int | None:
    return _recorded(layout.pid_file)


def component_pids(layout: Layout) -> dict[str, int]:
    """Each running component's top pid, from the pid file its Procfile line writes."""
    pids = {}
    for pid_file in sorted(layout.pids_dir.glob("*.pid")):
        pid = _recorded(pid_file)
        if pid is not None:
            pids[pid_file.stem] = pid
    return pids


def _sessions(layout: Layout) -> dict[int, str]:
    """Every pid this run recorded, dead or alive, as a session id -> its component.

    The supervisor runs in its own session and starts each component (each restart too) in a
    new one, so these are the platform's session ids: the pid files, and every session the
    supervisor lists in its state (those of crashed runs of a component included). Linux does
    not hand out a pid again while a session still uses it as its id, so a recorded id keeps
    naming the same session while anything in it lives.
    """
    recorded = {path.stem: path for path in layout.pids_dir.glob("*.pid")}
    recorded["supervisor"] = layout.pid_file
    sessions = {}
    listed = read_state(layout).get("sessions")
    for sid, name in (listed if isinstance(listed, dict) else {}).items():
        with contextlib.suppress(ValueError):
            sessions[int(sid)] = str(name)
    for name, path in recorded.items():
        with contextlib.suppress(OSError, ValueError):
            sessions[int(path.read_text().strip())] = name
    return sessions


def members(layout: Layout) -> list[Member]:
    """Every live process of this instance, orphans included, zombies and this one excluded:
    those in one of its sessions, descendants of its live leaders (should one start a new
    session), and any process still showing this instance's marker variable."""
    sessions = _sessions(layout)
    found: dict[int, Member] = {}
    leaders = {pid: name for name, pid in component_pids(layout).items()}
    if (sup := supervisor_pid(layout)) is not None:
        leaders[sup] = "supervisor"
    for pid, name in leaders.items():
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            found[pid] = Member(proc, name)
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, Member(child, name))
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me or proc.pid in found:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            session = os.getsid(proc.pid)
            if session in sessions:
                found[proc.pid] = Member(proc, sessions[session])
                continue
            env = proc.environ()
            if env.get(MARKER) == str(layout.root):
                name = env.get("HONCHO_PROCESS_NAME", "")
                found[proc.pid] = Member(proc, name.rsplit(".", 1)[0] if name else "supervisor")
    alive = []
    for member in found.values():
        with contextlib.suppress(psutil.Error):
            if member.proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(member)
    return alive


def status(settings: Settings, echo: Echo) -> bool:
    """Print the status table; True when the supervisor and every component are healthy."""
    layout = Layout.from_settings(settings)
    rows, sup = _probe(settings, layout)
    echo(render(rows, sup))
    return sup is not None and all(r.healthy for r in rows)


def health_report(settings: Settings) -> dict[str, Any]:
    """The status table as data, for `kaizen status --json`."""
    rows, sup = _probe(settings, Layout.from_settings(settings))
    return {
        "healthy": sup is not None and all(r.healthy for r in rows),
        "supervisor_pid": sup,
        "components": [
            {
                "name": r.name,
                "pid": r.pid,
                "healthy": r.healthy,
                "gave_up": r.gave_up,
                "restarts": r.restarts,
                "detail": r.detail,
            }
            for r in rows
        ],
    }


def _probe(settings: Settings, layout: Layout) -> tuple[list[Health], int | None]:
    sup = supervisor_pid(layout)
    return probe(components(settings), component_pids(layout), supervised=_supervised(layout)), sup


def _supervised(layout: Layout) -> dict[str, Any]:
    """The running supervisor's view of each component; nothing when it is not running."""
    if supervisor_pid(layout) is None:
        return {}
    seen = read_state(layout).get("components")
    return seen if isinstance(seen, dict) else {}


def up(settings: Settings, echo: Echo, timeout_s: float = 180.0) -> bool:
    """Start the platform and wait until it is healthy; True when it is (or already was)."""
    started = time.monotonic()
    layout = Layout.from_settings(settings)
    if sup := supervisor_pid(layout):
        return _heal(settings, layout, sup, echo, started + timeout_s)
    leftovers = members(layout)
    if leftovers:
        # A supervisor watches only the processes it started: begin again from nothing.
        echo(f"the supervisor is gone: stopping the {len(leftovers)} processes it left")
        stop(layout)
    items = components(settings)
    _check_ports(settings, items)

    env_file = settings.home / ".env"
    generated = platform_secrets.ensure_passwords(settings, env_file)
    if generated:
        by_variable = {v: k for k, v in platform_secrets.generated_secrets(settings).items()}
        settings = settings.model_copy(
            update={by_variable[k]: SecretStr(v) for k, v in generated.items()}
        )
    try:
        _write_service_files(settings, layout)
        env = platform_environ(settings, layout)
        _migrate_airflow(settings, env)
        _apply_feature_repo(settings)
        proc = _spawn(settings, layout, items, env)
        try:
            _wait_healthy(layout, lambda: proc.poll() is None, items, started + timeout_s)
            _check_logins(settings)
        except BaseException:
            stop(layout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)  # reap it: this process is its parent
            raise
        seconds = time.monotonic() - started
        echo(
            f"platform up and healthy in {seconds:.1f}s: supervisor pid {proc.pid}, "
            f"logs in {layout.log_file}"
        )
        for item in items:
            if item.ui:
                served = (
                    f" (project {feature_server_project(settings)})"
                    if item.name == "feature-server"
                    else ""
                )
                echo(f"  {item.name:<12} {item.ui}{served}")
        echo(
            f"  logins: Airflow user {settings.airflow_admin_username!r}, MLflow user "
            f"{settings.mlflow_admin_username!r}; passwords in {env_file} "
            f"({', '.join(platform_secrets.PASSWORDS.values())})"
        )
        echo("  `make status` checks it, `make down` stops it")
    finally:
        if generated:
            # Where they live, never their values: a terminal's scrollback and CI logs keep
            # what is printed.
            echo(f"generated {len(generated)} secrets into {env_file} (mode 600, never printed):")
            echo(f"  {', '.join(generated)}")
            echo(f"  read one with: grep ^{next(iter(generated))}= {env_file}")
    return True


def _heal(settings: Settings, layout: Layout, sup: int, echo: Echo, deadline: float) -> bool:
    """`up` on a running supervisor: it restarts crashed components itself; have it retry any
    it gave up on (SIGHUP), then wait for every component to be healthy."""
    gave_up = [n for n, c in _supervised(layout).items() if c.get("state") == "gave-up"]
    with contextlib.suppress(ProcessLookupError):
        os.kill(sup, signal.SIGHUP)
    retry = f"; starting again what it gave up on: {', '.join(gave_up)}" if gave_up else ""
    echo(f"supervisor pid {sup} is running and restarts crashed components{retry}")
    try:
        _wait_healthy(layout, lambda: supervisor_pid(layout) == sup, components(settings), deadline)
    except KaizenError as exc:
        echo(str(exc))
        status(settings, echo)
        return False
    return status(settings, echo)


def down(settings: Settings, echo: Echo, grace_s: float = STOP_GRACE_S) -> float:
    """Stop the platform; the seconds it took. Nothing of its process tree survives."""
    layout = Layout.from_settings(settings)
    if supervisor_pid(layout) is None and not members(layout):
        layout.pid_file.unlink(missing_ok=True)
        echo("not running")
        return 0.0
    seconds, killed = stop(layout, grace_s)
    how = f"; {killed} processes did not stop on SIGTERM and were killed" if killed else ""
    echo(f"platform stopped in {seconds:.1f}s{how}")
    return seconds


def stop(layout: Layout, grace_s: float = STOP_GRACE_S) -> tuple[float, int]:
    """SIGTERM through honcho, then SIGKILL every process group still alive after `grace_s`."""
    started = time.monotonic()
    sup = supervisor_pid(layout)
    if sup is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup, signal.SIGTERM)
    else:  # no supervisor left to forward it: signal the orphans' groups ourselves
        _signal_groups(members(layout), signal.SIGTERM)
    deadline = started + grace_s
    alive = members(layout)
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = members(layout)
    killed = len(alive)
    if alive:
        log.warning("%d processes still alive after %.0fs: killing their groups", killed, grace_s)
        _signal_groups(alive, signal.SIGKILL)
        for m in alive:
            with contextlib.suppress(psutil.Error):
                m.proc.kill()
        psutil.wait_procs([m.proc for m in alive], timeout=2)
    survivors = members(layout)
    if survivors:
        pids = ", ".join(str(m.proc.pid) for m in survivors)
        raise KaizenError(f"processes of the platform survived SIGKILL: {pids}")
    layout.pid_file.unlink(missing_ok=True)
    for pid_file in layout.pids_dir.glob("*.pid"):
        pid_file.unlink()
    return time.monotonic() - started, killed


def _signal_groups(found: list[Member], sig: signal.Signals) -> None:
    mine = os.getpgrp()
    groups = set()
    for m in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            groups.add(os.getpgid(m.proc.pid))
    for group in groups - {mine}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)


def platform_environ(settings: Settings, layout: Layout) -> dict[str, str]:
    """The environment every process shares: Airflow's, the venv first on PATH, and the
    instance marker. Written to `platform.env` for whoever reads it (0600)."""
    from kaizen.dags.runner import airflow_environ

    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {
        **airflow_environ(settings),
        "PATH": venv_bin if not path else f"{venv_bin}:{path}",
        MARKER: str(layout.root),
        "PYTHONUNBUFFERED": "1",
    }


def _check_ports(settings: Settings, items: list[Component]) -> None:
    """Each component's port is distinct and free on HOST, else one line naming its setting."""
    seen: dict[int, str] = {}
    for item in items:
        if not item.port:
            continue
        variable = next(
            (
                f"KAIZEN_{name.upper()}"
                for name in type(settings).model_fields
                if name.endswith("_port") and getattr(settings, name) == item.port
            ),
            "its KAIZEN_*_PORT variable",
        )
        for port in (item.port, *item.also_binds):
            if port in seen:
                raise KaizenError(f"{item.name} and {seen[port]} are both set to port {port}")
            seen[port] = item.name
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((HOST, port))
                except OSError:
                    raise KaizenError(
                        f"port {port} for {item.name} is already in use on {HOST}: "
                        f"stop what holds it or choose another port with {variable}"
                    ) from None


def _write_service_files(settings: Settings, layout: Layout) -> None:
    layout.create()
    airflow_pw = settings.airflow_admin_password
    mlflow_pw = settings.mlflow_admin_password
    assert airflow_pw is not None and mlflow_pw is not None  # ensured by ensure_passwords
    platform_secrets.write_airflow_passwords(
        layout.airflow_passwords, settings.airflow_admin_username, airflow_pw.get_secret_value()
    )
    platform_secrets.write_mlflow_auth_config(
        layout.mlflow_auth_config,
        settings.mlflow_admin_username,
        mlflow_pw.get_secret_value(),
        mlflow_auth_database_uri(settings),
    )
    if settings.runs_s3_server:
        from kaizen.seaweed import identity_json

        key, secret = settings.s3_access_key_id, settings.s3_secret_access_key
        assert key is not None and secret is not None  # ensured by ensure_passwords
        identities = identity_json(key.get_secret_value(), secret.get_secret_value())
        platform_secrets.write_private(layout.s3_identities, identities)
    for uri in (mlflow_backend_store_uri(settings), mlflow_auth_database_uri(settings)):
        if uri.startswith("postgresql"):  # the stack profile's: created on the first start
            ensure_database(uri)


def _s3_credentials(settings: Settings) -> dict[str, str]:
    """The S3 key pair for MLflow's artifact proxy, as boto3 reads it: handed to the
    supervisor's environment at spawn, never written to the Procfile or platform.env."""
    key, secret = settings.s3_access_key_id, settings.s3_secret_access_key
    if not (key and secret and mlflow_artifacts_destination(settings).startswith("s3://")):
        return {}
    return {
        "AWS_ACCESS_KEY_ID": key.get_secret_value(),
        "AWS_SECRET_ACCESS_KEY": secret.get_secret_value(),
    }


def _apply_feature_repo(settings: Settings) -> None:
    """The feature server and the prediction API serve the registries: bring each served
    project's in step with its repo first."""
    from kaizen.featurestore.store import apply
    from kaizen.serving.server import served_projects

    names = dict.fromkeys([*served_projects(settings), feature_server_project(settings)])
    for name in names:
        apply(settings if name == settings.project else settings.for_project(name))


def _migrate_airflow(settings: Settings, env: dict[str, str]) -> None:
    from kaizen.dags.runner import prepare_airflow

    os.environ.update({k: v for k, v in env.items() if k.startswith("AIRFLOW")})
    prepare_airflow(settings)


def _spawn(
    settings: Settings, layout: Layout, items: list[Component], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    import shlex

    for stale in [*layout.pids_dir.glob("*.pid"), layout.state_file]:
        stale.unlink(missing_ok=True)
    # 0600 both: a database URL in them (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, MLflow's backend
    # store in the `stack` profile) may carry a password.
    platform_secrets.write_private(layout.plan_file, write_plan(items))
    platform_secrets.write_private(
        layout.env_file, "".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items())
    )
    argv = [sys.executable, "-m", "kaizen.ops.supervise", str(layout.root)]
    # Per boot and never stored: it only signs MLflow's CSRF tokens and session cookies.
    secret = {"MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32)}
    with open(layout.log_file, "ab") as out:
        out.write(f"--- kaizen up {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            cwd=settings.home,
            env={**child_environ(), **env, **secret, **_s3_credentials(settings)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives this command and the terminal
            close_fds=True,
        )
    layout.pid_file.write_text(f"{proc.pid}\n")
    return proc


def child_environ() -> dict[str, str]:
    """This process's environment as the platform's processes inherit it."""
    return {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}


def _wait_healthy(
    layout: Layout, alive: Callable[[], bool], items: list[Component], deadline: float
) -> None:
    """Until every component is healthy; fails at once when the supervisor stops or gives
    one up, else at the deadline."""
    rows: list[Health] = []
    while True:
        if not alive():
            raise KaizenError(f"the platform's supervisor stopped; see {layout.log_file}")
        rows = probe(items, component_pids(layout), supervised=_supervised(layout))
        if all(r.healthy for r in rows):
            return
        if lost := [r for r in rows if r.gave_up]:
            bad = "; ".join(f"{r.name}: {r.detail}" for r in lost)
            raise KaizenError(f"the supervisor gave up ({bad}); see {layout.log_file}")
        if time.monotonic() > deadline:
            bad = "; ".join(f"{r.name}: {r.detail}" for r in rows if not r.healthy)
            raise KaizenError(
                f"not healthy before the deadline ({bad}); see {layout.log_file}, "
                "or raise `kaizen up --timeout`"
            )
        time.sleep(0.5)


def _check_logins(settings: Settings) -> None:
    """Both admin logins work with the passwords in the settings (and only then is it up)."""
    import httpx

    af = f"http://{HOST}:{settings.airflow_port}"
    ml = f"http://{HOST}:{settings.mlflow_port}"
    assert settings.airflow_admin_password and settings.mlflow_admin_password
    with httpx.Client(timeout=10, trust_env=False) as client:
        token = client.post(
            f"{af}/auth/token",
            json={
                "username": settings.airflow_admin_username,
                "password": settings.airflow_admin_password.get_secret_value(),
            },
        )
        if token.status_code not in (200, 201):
            raise KaizenError(
                f"Airflow refused the admin password from the settings (HTTP {token.status_code})"
            )
        experiments = client.get(
            f"{ml}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            auth=(
                settings.mlflow_admin_username,
                settings.mlflow_admin_password.get_secret_value(),
            ),
        )
        if experiments.status_code != 200:
            raise KaizenError(
                f"MLflow refused the admin password from the settings (HTTP "
                f"{experiments.status_code}); it is set only when MLflow's auth database is "
                f"created: to reset it, stop the platform and delete {mlflow_auth_database_uri(settings)}"
            )
