"""`kaizen feature-server`: Feast's own feature server behind bearer tokens, with freshness.

Feast's built-in auth is OIDC or Kubernetes only, and it serves online values past their
view's TTL as if current (feast-dev/feast#6821). Feast's app (`feast.feature_server.get_app`)
is served unmodified, inside three plain ASGI layers of ours, outermost first (and, around
them all, `kaizen.asgi.LoadShed`: a 503 at once past `feature_server_max_in_flight`):

1. `kaizen.asgi.BearerAuth` (the prediction API's too): every HTTP and WebSocket route needs
   `Authorization: Bearer <token>`, compared in constant time, except `GET /health` (Feast's
   liveness check: 200 or 503, so it tells nothing but "up"). Missing and wrong tokens get
   the same 401. The token's role (read or write) goes on to:
2. `kaizen.featurestore.gate.Gate`: the read token may only read (`POST /get-online-features`
   and the API docs); every other route is a write and needs the write token (403), which is
   optional: without it the server takes no writes. Bodies are capped, parsed and checked
   against the registry (`server_checks`: types, columns, no event time in the future)
   before Feast sees them, and every error is one line of `{"detail": ...}`.
3. `Freshness`: a 200 from `POST /get-online-features` is judged like `online.read_features`
   at the server's clock: a value of a view past its TTL gets status `OUTSIDE_MAX_AGE` (Feast's
   own status enum) and, under the `refuse` policy (the server's), a null value.

The read token is `KAIZEN_FEATURE_SERVER_TOKEN` (`.env`; the first `kaizen up` generates it).
With none the server refuses to start. The write token is `KAIZEN_FEATURE_SERVER_WRITE_TOKEN`,
set by hand when something should write through the server (Kaizen's own stages write
through the SDK). It binds `KAIZEN_FEATURE_SERVER_HOST` (127.0.0.1) and
`KAIZEN_FEATURE_SERVER_PORT` (6566).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from kaizen.asgi import ASGIApp, BearerAuth, LoadShed, Message, Receive, Scope, Send
from kaizen.asgi import require_token as checked_token
from kaizen.config import Settings
from kaizen.errors import ConfigError, KaizenError
from kaizen.featurestore.gate import READ, WRITE, Gate
from kaizen.featurestore.online import POLICIES, Policy, judge
from kaizen.featurestore.plans import evidence, plan_for_refs, plan_for_service
from kaizen.featurestore.server_checks import Limits
from kaizen.logs import get_logger

log = get_logger(__name__)

TOKEN_VARIABLE = "KAIZEN_FEATURE_SERVER_TOKEN"
WRITE_TOKEN_VARIABLE = "KAIZEN_FEATURE_SERVER_WRITE_TOKEN"
SERVER_POLICY: Policy = "refuse"  # params.yaml: a value past its TTL is "not served"


def require_token(settings: Settings) -> str:
    """The configured token, or one line saying why the server will not start without one."""
    return checked_token(settings.feature_server_token, TOKEN_VARIABLE, "feature server")


def write_token(settings: Settings) -> str | None:
    """The write token, None when writes are off, or one line saying what is wrong with it."""
    secret = settings.feature_server_write_token
    if secret is None or not secret.get_secret_value():
        return None
    token = checked_token(secret, WRITE_TOKEN_VARIABLE, "feature server write")
    if settings.feature_server_token and token == settings.feature_server_token.get_secret_value():
        raise ConfigError(f"{WRITE_TOKEN_VARIABLE} must differ from {TOKEN_VARIABLE}")
    return token


def limits(settings: Settings) -> Limits:
    return Limits(
        max_entities=settings.feature_server_max_entities,
        max_body_bytes=settings.feature_server_max_body_bytes,
        future_tolerance=dt.timedelta(seconds=settings.feature_server_future_tolerance_seconds),
    )


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Freshness:
    """Judge `POST /get-online-features` responses: values past their view's TTL are flagged
    `OUTSIDE_MAX_AGE` and, under `refuse`, nulled. Everything else passes through untouched."""

    PATH = "/get-online-features"

    def __init__(
        self,
        app: ASGIApp,
        store: Any,
        policy: Policy = SERVER_POLICY,
        clock: Callable[[], dt.datetime] = utc_now,
    ):
        if policy not in POLICIES:
            raise ConfigError(f"unknown freshness policy {policy!r}: use mark or refuse")
        self.app, self.store, self.policy, self.clock = app, store, policy, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        from starlette.concurrency import run_in_threadpool

        request = await _read_body(receive)
        start: Message = {}
        chunks: list[bytes] = []

        replayed = False

        async def replay() -> Message:  # the body once, then the client's own events
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": request, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, replay, capture)
        except Exception:
            # Starlette sends the error response of an unhandled exception, then re-raises it
            # for the server to log: pass that response on unjudged (it holds no values).
            if start:
                await send(start)
                await send({"type": "http.response.body", "body": b"".join(chunks)})
            raise
        status, body = start["status"], b"".join(chunks)
        if status == 200:
            try:
                body = await run_in_threadpool(self.judge_response, request, body, self.clock())
            except KaizenError as exc:  # e.g. an on-demand feature without its sources
                status, body = 400, json.dumps({"detail": str(exc)}).encode()
            except Exception:  # never serve values whose freshness was not checked
                log.exception("freshness check failed; the response was withheld")
                status, body = 500, b'{"detail":"freshness check failed"}'
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def judge_response(self, request: bytes, response: bytes, now: dt.datetime) -> bytes:
        asked = json.loads(request)
        full = bool(asked.get("full_feature_names"))
        if asked.get("feature_service"):
            plan = plan_for_service(self.store, asked["feature_service"], full_feature_names=full)
        else:
            plan = plan_for_refs(self.store, asked.get("features") or [], full_feature_names=full)
        answer = json.loads(response)
        results = answer.get("results") or []
        names = answer["metadata"]["feature_names"]
        rows = len(results[0]["values"]) if results else 0
        found: dict[str, list[bool]] = {}
        stamps: dict[str, list[dt.datetime | None]] = {}
        for view, at in evidence(plan, names).items():
            stamps[view] = [_parse_timestamp(t) for t in results[at]["event_timestamps"]]
            # Feast's Redis store answers a missing entity PRESENT at the epoch: not found.
            found[view] = [
                s != "NOT_FOUND" and t != _EPOCH
                for s, t in zip(results[at]["statuses"], stamps[view], strict=True)
            ]
        verdicts = judge(plan, found, stamps, rows, now)
        if not any(v.stale for verdict in verdicts for v in verdict.values()):
            return response  # the common case: nothing to change, nothing to re-encode
        for at, column in enumerate(names):
            view = plan.columns.get(column)
            if view is None:  # an entity key
                continue
            statuses, values = results[at]["statuses"], results[at]["values"]
            for i in range(rows):
                if verdicts[i][view].stale and statuses[i] in ("PRESENT", "NULL_VALUE"):
                    statuses[i] = "OUTSIDE_MAX_AGE"
                    if self.policy == "refuse":
                        values[i] = None
        return json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _parse_timestamp(text: str) -> dt.datetime:
    """Feast's RFC 3339 (`...Z`, 0, 3, 6 or 9 fraction digits) to an aware datetime."""
    text = text.removesuffix("Z")
    head, dot, fraction = text.partition(".")
    if dot:
        head = f"{head}.{fraction[:6].ljust(6, '0')}"
    return dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)


def build_app(
    store: Any,
    token: str,
    *,
    write_token: str | None = None,
    limits: Limits = Limits(),  # noqa: B008 - frozen
    policy: Policy = SERVER_POLICY,
    clock: Callable[[], dt.datetime] = utc_now,
    registry_ttl_sec: int = 5,
    max_in_flight: int = 40,  # past it a 503 at once (settings.feature_server_max_in_flight)
) -> ASGIApp:
    """Feast's feature server app inside Kaizen's freshness, gate and authentication layers.
    `token` reads; `write_token` (optional: None, no writes) also writes."""
    from feast.feature_server import get_app

    feast_app = get_app(store, registry_ttl_sec=registry_ttl_sec)
    fresh = Freshness(feast_app, store, policy=policy, clock=clock)
    gate = Gate(fresh, store, writes=write_token is not None, limits=limits, clock=clock)
    tokens = {READ: token, **({WRITE: write_token} if write_token else {})}
    return LoadShed(BearerAuth(gate, tokens), max_in_flight)


def serve(settings: Settings) -> None:
    """Run the feature server in the foreground until SIGINT / SIGTERM."""
    import uvicorn

    from kaizen.featurestore.store import open_store

    token, writer = require_token(settings), write_token(settings)
    # Feast logs every registry refresh (every few seconds) at INFO.
    logging.getLogger("feast.infra.registry.registry").setLevel(logging.WARNING)
    host, port = settings.feature_server_host, settings.feature_server_port
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        raise KaizenError(
            f"the feature server cannot listen on {host}:{port} ({os.strerror(exc.errno or 0)}): "
            "stop what holds it or choose another port with KAIZEN_FEATURE_SERVER_PORT"
        ) from None
    try:
        if not (settings.feast_repo / "feature_store.yaml").is_file():
            raise ConfigError(f"no Feast repo at {settings.feast_repo} (KAIZEN_FEAST_REPO)")
        store = open_store(settings)
        app = build_app(
            store,
            token,
            write_token=writer,
            limits=limits(settings),
            max_in_flight=settings.feature_server_max_in_flight,
        )
        config = uvicorn.Config(
            app,
            log_config=None,  # Kaizen's logging, configured by the CLI
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        log.info(
            "feature server on http://%s:%d (read token from %s; writes %s; freshness policy %s)",
            host,
            port,
            TOKEN_VARIABLE,
            f"with {WRITE_TOKEN_VARIABLE}" if writer else "off",
            SERVER_POLICY,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
