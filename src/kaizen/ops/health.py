"""Is each component up? Its process is alive and its HTTP health endpoint says so.

Health endpoints are unauthenticated by design (Airflow's `/api/v2/monitor/health`, MLflow's
`/health`), so no credential is sent and none can leak into the status output.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from kaizen.ops.components import Component


@dataclass(frozen=True)
class Health:
    name: str
    pid: int | None
    healthy: bool
    detail: str

    restarts: int = 0  # by the supervisor in this run
    gave_up: bool = False  # the supervisor restarts it no more

    @property
    def process(self) -> str:
        return "running" if self.pid else "stopped"


def check(client: Any, item: Component) -> tuple[bool, str]:
    """One component's health check: (healthy, detail)."""
    if item.health_url is None:
        return True, "process running (no health endpoint)"
    return _judge(item, *_get(client, item.health_url))


def probe(
    items: list[Component],
    pids: dict[str, int],
    timeout_s: float = 2.0,
    supervised: dict[str, Any] | None = None,
) -> list[Health]:
    """One row per component; each health URL is fetched once however many rows read it.
    `supervised` is the supervisor's view of each (`supervisor.json`): why one is not running
    (restarting, waiting, given up) and how often it was restarted."""
    import httpx

    # httpx logs every request at INFO: a status poll would drown the log it writes to.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    answers: dict[str, tuple[int | None, Any, str]] = {}
    rows = []
    # trust_env=False: a proxy from the environment must never sit between us and loopback.
    with httpx.Client(timeout=timeout_s, trust_env=False) as client:
        for item in items:
            seen = (supervised or {}).get(item.name) or {}
            restarts = int(seen.get("restarts") or 0)
            gave_up = seen.get("state") == "gave-up"
            pid = pids.get(item.name)
            if pid is None:
                detail = str(seen.get("note") or "process not running")
                rows.append(Health(item.name, None, False, detail, restarts, gave_up))
                continue
            if item.health_url is None:
                healthy, detail = True, "process running (no health endpoint)"
            else:
                if item.health_url not in answers:
                    answers[item.health_url] = _get(client, item.health_url)
                healthy, detail = _judge(item, *answers[item.health_url])
            if restarts:
                detail += f"; restarted {restarts}x (last: {seen.get('last_exit')})"
            rows.append(Health(item.name, pid, healthy, detail, restarts))
    return rows


def _get(client: Any, url: str) -> tuple[int | None, Any, str]:
    import httpx

    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        return None, None, f"unreachable ({type(exc).__name__})"
    try:
        body = response.json()
    except ValueError:
        body = response.text.strip()
    return response.status_code, body, ""


def _judge(item: Component, code: int | None, body: Any, error: str) -> tuple[bool, str]:
    path = (item.health_url or "").split("/", 3)[-1]
    if code is None:
        return False, f"/{path} {error}"
    if item.unready_status is not None and code == item.unready_status:
        reason = body.get("status") if isinstance(body, dict) else None
        return True, f"/{path} HTTP {code}: running, not ready ({reason or 'unready'})"
    if not 200 <= code < 300:
        return False, f"/{path} answered HTTP {code}"
    if item.health_field is None:
        return True, f"/{path} HTTP {code}"
    report = body.get(item.health_field) if isinstance(body, dict) else None
    if not isinstance(report, dict):
        return False, f"/{path} has no {item.health_field!r}"
    status = report.get("status") or "not started"
    beat = next((v for k, v in report.items() if k.endswith("heartbeat") and v), None)
    age = f", heartbeat {_age(beat)} ago" if beat else ""
    return status == "healthy", f"{item.health_field}: {status}{age}"


def _age(timestamp: str) -> str:
    try:
        then = dt.datetime.fromisoformat(timestamp)
    except ValueError:
        return "?"
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return f"{max(0.0, (dt.datetime.now(dt.UTC) - then).total_seconds()):.0f}s"


def render(rows: list[Health], supervisor_pid: int | None) -> str:
    """A compact table: component, pid, process, health, detail."""
    lines = [("COMPONENT", "PID", "PROCESS", "HEALTH", "DETAIL")]
    lines.append(
        (
            "supervisor",
            str(supervisor_pid or "-"),
            "running" if supervisor_pid else "stopped",
            "healthy" if supervisor_pid else "down",
            "restarts crashed components" if supervisor_pid else "not running",
        )
    )
    for row in rows:
        lines.append(
            (
                row.name,
                str(row.pid or "-"),
                row.process,
                "healthy"
                if row.healthy
                else "gave-up"
                if row.gave_up
                else "down"
                if row.pid is None
                else "unhealthy",
                row.detail,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line[:4], widths, strict=True))
        + "  "
        + line[4]
        for line in lines
    )
