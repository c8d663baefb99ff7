"""`kaizen.asgi.LoadShed` on a pure ASGI app: what it refuses, when, and that slots come back."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from kaizen.asgi import LoadShed
from kaizen.errors import ConfigError


def _app(gate: asyncio.Event, started: list[str]) -> Any:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        started.append(scope["path"])
        if scope["path"] == "/boom":
            raise RuntimeError("the app failed")
        if scope["path"] == "/slow":
            await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_past_the_limit_a_503_at_once_never_for_health_and_slots_come_back() -> None:
    async def scenario() -> None:
        gate, started = asyncio.Event(), []
        shed = LoadShed(_app(gate, started), limit=2)
        transport = httpx.ASGITransport(app=shed, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            slow = [asyncio.create_task(http.get("/slow")) for _ in range(2)]
            while len(started) < 2:  # both slots taken
                await asyncio.sleep(0)
            refused = await http.post("/slow", json={"x": 1})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.json() == {"detail": "overloaded: 2 requests in flight; retry in 1 s"}
            assert (await http.get("/health")).status_code == 200  # open paths are never shed
            assert started.count("/slow") == 2 and shed.shed == 1
            gate.set()
            assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200]
            # A failed request gives its slot back too.
            assert (await http.get("/boom")).status_code == 500
            assert [(await http.get("/fast")).status_code for _ in range(3)] == [200] * 3
            assert shed.shed == 1

    asyncio.run(scenario())


def test_a_limit_below_one_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match=r"at least 1 \(got 0\)"):
        LoadShed(_app(asyncio.Event(), []), limit=0)
