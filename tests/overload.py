"""Drive a real server past its capacity and time every answer (the load-shedding tests).

`serving(app)` runs an ASGI app under uvicorn on a free loopback port in a thread; `drive`
times sequential requests (httpx), then bursts of concurrent ones (a few `GET /health` among
them) in a client process of its own, under one hard timeout. The bursts write pre-encoded
HTTP/1.1 requests on kept-alive asyncio streams: httpx's own ~1 ms of CPU per request would be
timed into every answer of a burst (measured: sheds of 40-110 ms that the server answered in
microseconds). `judge`
checks what shedding promises: some 503s with Retry-After, each at once; the accepted
requests' p99 within a budget derived from the single-request latency; nothing left hanging.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import numpy as np

from kaizen.seaweed import free_port

HARD_TIMEOUT_S = 15.0  # every request of a burst has answered by then, or the test fails
SHED_MAX_S = 0.1  # each 503 comes back in well under this


@dataclass(frozen=True)
class Answer:
    path: str
    status: int
    seconds: float
    retry_after: str | None


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """`app` under uvicorn on 127.0.0.1:<free port>; yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def drive(
    url: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    clients: int,
    health: tuple[str, ...] = ("/health",),
    rounds: int = 2,
) -> tuple[float, list[Answer]]:
    """The median single-request latency of `path` (sequential requests), then `rounds`
    bursts of `clients` concurrent POSTs to it and 2 GETs of each `health` path, all timed by
    a client in its own process (in the server's, its GIL would time the client too)."""
    spec = {"url": url, "path": path, "body": body, "headers": headers, "clients": clients,
            "health": list(health), "rounds": rounds}  # fmt: skip
    done = subprocess.run(
        [sys.executable, __file__],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=HARD_TIMEOUT_S + 30,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    return out["single_s"], [Answer(**a) for a in out["answers"]]


def _client(spec: dict[str, Any]) -> dict[str, Any]:
    url, path, body, headers = spec["url"], spec["path"], spec["body"], spec["headers"]
    times = []
    with httpx.Client(base_url=url, headers=headers, timeout=HARD_TIMEOUT_S, trust_env=False) as c:
        for k in range(8):  # the first one unmeasured
            started = time.perf_counter()
            response = c.post(path, json=body)
            assert response.status_code == 200, response.text
            if k:
                times.append(time.perf_counter() - started)
    clients, health = spec["clients"], spec["health"]
    host, port = url.removeprefix("http://").split(":")
    post = _encoded("POST", path, host, headers, json.dumps(body).encode())
    gets = {h: _encoded("GET", h, host, headers, None) for h in health}

    async def bursts() -> list[Answer]:
        # One keep-alive connection per concurrent request, opened and used once untimed.
        wanted = [(path, post)] * clients + [(h, gets[h]) for h in health for _ in range(2)]
        streams = await asyncio.gather(*(asyncio.open_connection(host, int(port)) for _ in wanted))
        await asyncio.gather(*(_exchange(r, w, gets[health[0]]) for r, w in streams))

        async def one(stream: Any, where: str, raw: bytes) -> Answer:
            started = time.perf_counter()
            status, fields = await _exchange(*stream, raw)
            took = time.perf_counter() - started
            return Answer(where, status, took, fields.get("retry-after"))

        out: list[Answer] = []
        for _ in range(spec["rounds"]):
            calls = [one(st, where, raw) for st, (where, raw) in zip(streams, wanted, strict=True)]
            out += await asyncio.gather(*calls)
        for _, writer in streams:
            writer.close()
        return out

    answers = asyncio.run(asyncio.wait_for(bursts(), HARD_TIMEOUT_S))
    return {"single_s": statistics.median(times), "answers": [asdict(a) for a in answers]}


def _encoded(
    method: str, path: str, host: str, headers: dict[str, str], body: bytes | None
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"host: {host}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    if body is not None:
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, dict[str, str]]:
    """One request on a kept-alive connection: its status and header fields (the body read
    and dropped; the servers answer with a content-length)."""
    writer.write(raw)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in head[1:] if x)}
    assert "transfer-encoding" not in fields, fields
    await reader.readexactly(int(fields.get("content-length", "0")))
    return int(head[0].split()[1]), fields


def judge(answers: list[Answer], path: str, limit: int, single_s: float) -> dict[str, float]:
    """Shedding's promises, asserted; returns what was measured."""
    posts = [a for a in answers if a.path == path]
    shed = [a for a in posts if a.status == 503]
    accepted = [a for a in posts if a.status == 200]
    assert {a.status for a in posts} <= {200, 503}, sorted({a.status for a in posts})
    assert [a.status for a in answers if a.path != path] == [200] * (len(answers) - len(posts))
    assert shed and len(accepted) >= limit, (len(shed), len(accepted))
    assert all(a.retry_after == "1" for a in shed)
    slowest_shed = max(a.seconds for a in shed)
    assert slowest_shed < SHED_MAX_S, f"a 503 took {slowest_shed * 1000:.0f} ms"
    # An accepted request waits for at most `limit - 1` others ahead of it on a backend that
    # serves one at a time: `limit` single latencies, doubled for a shared box's noise. With
    # no shedding the last of `clients` queued requests would wait `clients` of them.
    budget = 2 * limit * single_s
    p99 = float(np.percentile([a.seconds for a in accepted], 99))
    assert p99 <= budget, f"accepted p99 {p99 * 1000:.0f} ms > budget {budget * 1000:.0f} ms"
    return {
        "requests": len(posts),
        "shed": len(shed),
        "accepted": len(accepted),
        "single_ms": single_s * 1000,
        "accepted_p99_ms": p99 * 1000,
        "budget_ms": budget * 1000,
        "slowest_shed_ms": slowest_shed * 1000,
    }


@contextmanager
def one_at_a_time(target: Any, name: str, delay_s: float) -> Iterator[None]:
    """Make `target.name` a backend that serves one call at a time, each `delay_s` at least
    (a lock and a sleep around the real call), for the duration."""
    real = getattr(target, name)
    lock = threading.Lock()

    def slow(*args: Any, **kwargs: Any) -> Any:
        with lock:
            time.sleep(delay_s)
            return real(*args, **kwargs)

    setattr(target, name, slow)
    try:
        yield
    finally:
        setattr(target, name, real)


if __name__ == "__main__":  # the client process of `drive`: its spec on stdin, JSON out
    print(json.dumps(_client(json.loads(sys.stdin.read()))))
