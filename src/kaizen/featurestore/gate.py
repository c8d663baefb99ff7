"""The feature server's gate: which token may use which route, what a request may carry,
and what an error says.

It sits inside `BearerAuth` (which put the token's role in the scope) and outside Feast's
app, and is default-deny:

* `READS` are the routes the read token may use; every other route, a new Feast route
  included, is a write and needs the write token (403 otherwise; with no write token
  configured, writes are off). Of the writes, only `WRITES` are served: Feast's vector
  search, chat and static UI routes answer 404 (no Kaizen project declares vector features).
* A routed body must be JSON (415), at most `max_body_bytes` (413 from the Content-Length
  header alone, or as soon as the bytes read pass it), parse (400), and pass its check in
  `kaizen.featurestore.server_checks` before Feast sees it.
* Every error answer is one line of JSON, `{"detail": "..."}`. Feast's own 4xx keep their
  message; a 5xx never shows its body (Feast's is `str(exception)`: the Redis host and
  port, a path): the online store being unreachable is a 503, anything else a 500, and the
  exception goes to the server's log.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from kaizen.asgi import OPEN_PATHS, ROLE, ASGIApp, Message, Receive, Scope, Send
from kaizen.featurestore.server_checks import (
    Check,
    Limits,
    Refused,
    check_materialize,
    check_materialize_incremental,
    check_push,
    check_read,
    check_write,
)
from kaizen.logs import get_logger

log = get_logger(__name__)

READ, WRITE = "read", "write"
# (method, path) -> the body's check (None: no body). HEAD is routed as GET.
READS: dict[tuple[str, str], Check | None] = {
    ("POST", "/get-online-features"): check_read,
    ("GET", "/health"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
}
WRITES: dict[tuple[str, str], Check] = {
    ("POST", "/write-to-online-store"): check_write,
    ("POST", "/push"): check_push,
    ("POST", "/materialize"): check_materialize,
    ("POST", "/materialize-incremental"): check_materialize_incremental,
}
UNAVAILABLE = "the feature store is unavailable; try again later"
INTERNAL = "internal error (the feature server's log has the details)"


def _store_down(exc: BaseException) -> bool:
    """Redis or SQLite (or any socket) failing under a request: the store, not the request."""
    from redis.exceptions import ConnectionError as RedisDown
    from redis.exceptions import TimeoutError as RedisSlow

    return isinstance(exc, RedisDown | RedisSlow | OSError | sqlite3.OperationalError)


def error_body(detail: str) -> bytes:
    return json.dumps({"detail": " ".join(detail.split())}, ensure_ascii=False).encode()


async def answer(send: Send, status: int, detail: str) -> None:
    body = error_body(detail)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def feast_detail(status: int, body: bytes) -> str:
    """The one-line message of a 4xx from Feast or FastAPI, whatever shape it came in."""
    try:
        value: Any = json.loads(body)
        if isinstance(value, str):  # Feast's FeastError: a JSON string holding JSON
            value = json.loads(value) if value.startswith("{") else {"detail": value}
    except ValueError:
        value = None
    if isinstance(value, dict):
        detail = value.get("detail", value.get("message", value.get("error")))
        if isinstance(detail, dict):  # the vector store routes: {"error": {"message": ...}}
            detail = detail.get("message")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # FastAPI 422
            first = detail[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            detail = f"{where}: {first.get('msg', 'invalid')}"
        if isinstance(detail, str) and detail:
            return detail[:300]
    return HTTPStatus(status).phrase


class Gate:
    """Route by role, cap and check bodies, and answer errors in one safe line (see above)."""

    def __init__(
        self,
        app: ASGIApp,
        store: Any,
        *,
        writes: bool,
        limits: Limits,
        clock: Callable[[], dt.datetime],
    ):
        self.app, self.store, self.writes, self.limits, self.clock = (
            app,
            store,
            writes,
            limits,
            clock,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no WebSocket route is served (Feast's is a demo chat)
            await send({"type": "websocket.close", "code": 1008})
            return
        method, path = scope["method"], scope["path"]
        route = ("GET" if method == "HEAD" else method, path)
        role = scope.get(ROLE)
        if route in READS or (path in OPEN_PATHS and role is None):
            check = READS.get(route)
        elif role != WRITE:
            await answer(send, 403, self._not_a_reader())
            return
        elif route in WRITES:
            check = WRITES[route]
        else:
            await answer(send, 404, "Not Found")
            return
        if check is not None:
            try:
                body = await self._checked_body(scope, receive, check)
            except Refused as refused:
                await answer(send, refused.status, refused.detail)
                return
            receive = _replay(body, receive)
        await self._guarded(scope, receive, send)

    def _not_a_reader(self) -> str:
        if not self.writes:
            return (
                "the read token only reads, and writes are off on this feature server "
                "(no KAIZEN_FEATURE_SERVER_WRITE_TOKEN is set)"
            )
        return "the read token only reads: this route needs the write token"

    async def _checked_body(self, scope: Scope, receive: Receive, check: Check) -> bytes:
        from starlette.concurrency import run_in_threadpool

        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        kind = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if kind != b"application/json":
            raise Refused(415, "the body must be JSON (Content-Type: application/json)")
        cap = self.limits.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise Refused(400, "bad Content-Length")
            if int(declared) > cap:
                raise Refused(413, _too_large(cap))
        raw = await _read_capped(receive, cap)
        if not raw.strip():
            raise Refused(400, "empty body: send a JSON object")
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Refused(400, f"the body is not valid JSON ({_reason(exc)})") from None
        if not isinstance(parsed, dict):
            raise Refused(400, "the body must be a JSON object")
        checked = await run_in_threadpool(check, self.store, parsed, self.limits, self.clock())
        return raw if checked is parsed else json.dumps(checked, ensure_ascii=False).encode()

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Feast's answer, with an error's body replaced by one safe line."""
        held: Message = {}  # the start of an error response, sent once its body is known
        chunks: list[bytes] = []
        started = answered = False

        async def guarded_send(message: Message) -> None:
            nonlocal started, answered
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held.update(message)
            elif message["type"] == "http.response.body" and held:
                chunks.append(message.get("body", b""))
                status = held["status"]
                if status < 500 and not message.get("more_body"):
                    answered = True
                    await answer(send, status, feast_detail(status, b"".join(chunks)))
                # A 5xx waits: the exception Starlette re-raises tells a store down.
            else:
                started = started or message["type"] == "http.response.start"
                await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:  # Starlette re-raises what Feast's handler answered
            if answered:  # a 4xx (a FeastError): already said in one line
                return
            if started:
                raise  # a success had started: nothing to mend
            where = f"{scope['method']} {scope['path']}"
            if _store_down(exc):
                log.warning("feature server: %s: the store failed: %r", where, exc)
                await answer(send, 503, UNAVAILABLE)
            else:
                log.error("feature server: %s failed", where, exc_info=exc)
                await answer(send, 500, INTERNAL)
            return
        if held and not answered:  # a 5xx without an exception (Feast's /health: 503)
            status = 503 if held["status"] == 503 else 500
            await answer(send, status, UNAVAILABLE if status == 503 else INTERNAL)


def _too_large(cap: int) -> str:
    return f"the body is larger than {cap} bytes (KAIZEN_FEATURE_SERVER_MAX_BODY_BYTES)"


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)


async def _read_capped(receive: Receive, cap: int) -> bytes:
    """The request body, refused (413) as soon as more than `cap` bytes have arrived."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise Refused(413, _too_large(cap))
        parts.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then the client's own events (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
