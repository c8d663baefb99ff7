"""The feature server's gate and BearerAuth's roles, on a stand-in for Feast's app (no store).

What Feast does with a request is in tests/integration/test_feature_server.py; here: who may
use which route, that a body past the cap is refused before it is read, and that no error
body says more than one safe line.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from kaizen.asgi import ROLE, BearerAuth
from kaizen.config import Settings
from kaizen.errors import ConfigError
from kaizen.featurestore import gate as gate_module
from kaizen.featurestore.gate import INTERNAL, UNAVAILABLE, Gate
from kaizen.featurestore.server import write_token
from kaizen.featurestore.server_checks import Limits, Refused

READ, WRITE = "r" * 20, "w" * 20
NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)


class Feast:
    """Answers like Feast's app: 200 with the body it got, or what `fail` says."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.fail: tuple[int, bytes, Exception | None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            for step in ("startup", "shutdown"):
                await receive()
                await send({"type": f"lifespan.{step}.complete"})
            return
        message = await receive() if scope["method"] == "POST" else {"body": b""}
        self.calls.append((scope["path"], message.get("body", b"")))
        status, body, exc = self.fail or (200, message.get("body", b"") or b"{}", None)
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        if exc is not None:  # as Starlette's ServerErrorMiddleware does after answering
            raise exc


@pytest.fixture
def feast(monkeypatch: pytest.MonkeyPatch) -> Feast:
    def check(store: Any, body: dict, limits: Limits, now: dt.datetime) -> dict:
        if body.get("refuse"):
            raise Refused(404, "unknown feature service 'x'")
        return body

    for table in (gate_module.READS, gate_module.WRITES):
        for route in [r for r, c in table.items() if c is not None]:
            monkeypatch.setitem(table, route, check)
    return Feast()


def _client(feast: Feast, *, writes: bool = True, cap: int = 2048) -> TestClient:
    limits = Limits(max_entities=10, max_body_bytes=cap)
    app = Gate(feast, store=None, writes=writes, limits=limits, clock=lambda: NOW)
    tokens = {"read": READ, **({"write": WRITE} if writes else {})}
    return TestClient(BearerAuth(app, tokens), raise_server_exceptions=True)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _one_line(response: Any) -> str:
    assert response.headers["content-type"] == "application/json"
    assert b"\n" not in response.content
    body = response.json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str)
    return body["detail"]


def test_roles_read_write_and_default_deny(feast: Feast) -> None:
    with _client(feast) as client:
        read = client.post("/get-online-features", headers=_auth(READ), json={"a": 1})
        by_writer = client.post("/get-online-features", headers=_auth(WRITE), json={"a": 1})
        assert read.status_code == by_writer.status_code == 200
        for path in ["/write-to-online-store", "/push", "/materialize", "/anything-new"]:
            refused = client.post(path, headers=_auth(READ), json={"a": 1})
            assert refused.status_code == 403, path
            assert "needs the write token" in _one_line(refused)
        assert client.post("/push", headers=_auth(WRITE), json={"a": 1}).status_code == 200
        unserved = client.post("/search", headers=_auth(WRITE), json={})
        assert unserved.status_code == 404 and _one_line(unserved) == "Not Found"
        assert client.post("/push", json={}).status_code == 401
        assert client.get("/health").status_code == 200  # open, as before
    assert [path for path, _ in feast.calls] == [
        "/get-online-features",
        "/get-online-features",
        "/push",
        "/health",
    ]


def test_with_no_write_token_writes_are_off(feast: Feast) -> None:
    with _client(feast, writes=False) as client:
        refused = client.post("/materialize", headers=_auth(READ), json={})
        assert client.post("/push", headers=_auth(WRITE), json={}).status_code == 401
    assert refused.status_code == 403
    assert "writes are off" in _one_line(refused)
    assert "KAIZEN_FEATURE_SERVER_WRITE_TOKEN" in refused.json()["detail"]
    assert feast.calls == []


def test_a_declared_body_past_the_cap_is_refused_before_a_byte_is_read(feast: Feast) -> None:
    app = Gate(feast, store=None, writes=True, limits=Limits(max_body_bytes=1024), clock=None)  # type: ignore[arg-type]
    received, sent = [], []

    async def receive() -> dict:
        received.append(1)
        return {"type": "http.request", "body": b"x" * 8_000_000, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/get-online-features",
        "headers": [(b"content-length", b"8000000"), (b"content-type", b"application/json")],
        ROLE: "read",
    }
    import asyncio

    asyncio.run(app(scope, receive, send))
    assert received == [] and feast.calls == []
    assert sent[0]["status"] == 413
    assert "KAIZEN_FEATURE_SERVER_MAX_BODY_BYTES" in json.loads(sent[1]["body"])["detail"]


def test_an_undeclared_body_is_refused_as_soon_as_it_passes_the_cap(feast: Feast) -> None:
    app = Gate(feast, store=None, writes=True, limits=Limits(max_body_bytes=1024), clock=None)  # type: ignore[arg-type]
    received, sent = [], []

    async def receive() -> dict:  # a chunked upload of 100 x 600 bytes
        received.append(1)
        return {"type": "http.request", "body": b"x" * 600, "more_body": len(received) < 100}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/push", "headers": [], ROLE: "write"}
    import asyncio

    asyncio.run(app(scope, receive, send))
    assert len(received) == 2 and sent[0]["status"] == 413 and feast.calls == []


@pytest.mark.parametrize(
    ("content", "content_type", "status", "says"),
    [
        (b"", "application/json", 400, "empty body"),
        (b"   ", "application/json", 400, "empty body"),
        (b"{nope", "application/json", 400, "not valid JSON"),
        (b"\xff\xfe{", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "a JSON object"),
        (b'"text"', "application/json", 400, "a JSON object"),
        (b'{"a": 1}', "text/plain", 415, "Content-Type: application/json"),
        (b"a=1", "application/x-www-form-urlencoded", 415, "application/json"),
        (b'{"refuse": true}', "application/json", 404, "unknown feature service"),
    ],
)
def test_a_bad_body_never_reaches_feast(
    feast: Feast, content: bytes, content_type: str, status: int, says: str
) -> None:
    with _client(feast) as client:
        headers = {**_auth(READ), "content-type": content_type}
        response = client.post("/get-online-features", headers=headers, content=content)
    assert response.status_code == status
    assert says in _one_line(response)
    assert feast.calls == []


def test_an_oversized_body_with_a_content_length_is_413(feast: Feast) -> None:
    with _client(feast, cap=1024) as client:
        response = client.post("/get-online-features", headers=_auth(READ), content=b"{" * 5000)
    assert response.status_code == 413 and feast.calls == []


@pytest.mark.parametrize(
    ("status", "body", "exc", "want_status", "want"),
    [
        # Feast's handler: str(exception) as the body, then Starlette re-raises it.
        (
            500,
            b'"Error 111 connecting to 10.0.0.7:6379. Connection refused."',
            redis.exceptions.ConnectionError("Error 111 connecting to 10.0.0.7:6379."),
            503,
            UNAVAILABLE,
        ),
        (
            500,
            b'"Timeout reading from 10.0.0.7:6379"',
            redis.exceptions.TimeoutError("10.0.0.7:6379"),
            503,
            UNAVAILABLE,
        ),
        (
            500,
            b'"/srv/feast/online.db: unable to open"',
            ValueError("/srv/feast/online.db"),
            500,
            INTERNAL,
        ),
        (503, b"", None, 503, UNAVAILABLE),  # Feast's /health when the registry is down
        # A FeastError: its message, once, without the module and class.
        (
            404,
            json.dumps(
                json.dumps(
                    {
                        "module": "feast.errors",
                        "class": "X",
                        "message": "Feature view v does not exist",
                    }
                )
            ).encode(),
            KeyError("x"),
            404,
            "Feature view v does not exist",
        ),
        # FastAPI's validation error: the first problem, without echoing the input.
        (
            422,
            json.dumps(
                {
                    "detail": [
                        {
                            "loc": ["query", "async"],
                            "msg": "Input should be a valid boolean",
                            "input": "maybe",
                        }
                    ]
                }
            ).encode(),
            None,
            422,
            "query.async: Input should be a valid boolean",
        ),
    ],
)
def test_an_error_from_feast_is_one_safe_line(
    feast: Feast,
    status: int,
    body: bytes,
    exc: Exception | None,
    want_status: int,
    want: str,
) -> None:
    feast.fail = (status, body, exc)
    with _client(feast) as client:
        response = client.post("/get-online-features", headers=_auth(READ), json={"a": 1})
    assert response.status_code == want_status
    assert _one_line(response) == want
    assert "10.0.0.7" not in response.text and "6379" not in response.text
    assert "/srv" not in response.text and "feast.errors" not in response.text


def test_a_websocket_with_a_token_is_still_refused(feast: Feast) -> None:
    from starlette.websockets import WebSocketDisconnect

    with (
        _client(feast) as client,
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws/chat", headers=_auth(WRITE)),
    ):
        pass


def test_roles_need_tokens_of_their_own() -> None:
    with pytest.raises(ValueError, match="share one token"):
        BearerAuth(Feast(), {"read": READ, "write": READ})
    base = {"_env_file": None, "feature_server_token": READ}
    assert write_token(Settings(**base)) is None  # type: ignore[arg-type]
    assert write_token(Settings(**base, feature_server_write_token=WRITE)) == WRITE  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must differ from KAIZEN_FEATURE_SERVER_TOKEN"):
        write_token(Settings(**base, feature_server_write_token=READ))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="KAIZEN_FEATURE_SERVER_WRITE_TOKEN is too short"):
        write_token(Settings(**base, feature_server_write_token="short"))  # type: ignore[arg-type]
