"""The layers in front of Kaizen's HTTP services: the bearer token, and load shedding.

The feature server (`kaizen feature-server`) and the prediction API (`kaizen serve`) both
wrap their app in `BearerAuth`: every HTTP and WebSocket route needs
`Authorization: Bearer <token>`, compared in constant time, except the `open_paths`
(`GET /health` by default: a liveness check tells nothing but "up"). A missing and a wrong
token get the same 401 with `WWW-Authenticate: Bearer`; a refused WebSocket is closed before
the handshake (the client sees HTTP 403). A service with several credentials (the feature
server's read and write tokens) gives role -> token; the role of the token presented is in
`scope[ROLE]` for the app to authorize by.

`require_token` is the one rule for a configured token: present, at least
`MIN_TOKEN_LENGTH` characters, printable ASCII without spaces. Without one the service
refuses to start.

`LoadShed` (outermost in both servers) bounds the requests in flight: past `limit` it answers
503 with `Retry-After` at once instead of letting requests queue into their clients'
timeouts. `open_paths` are never shed (a health check under load must still say "up").
uvicorn's own `limit_concurrency` is no substitute: it counts idle keep-alive connections too,
and sheds /health.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import anyio
from pydantic import SecretStr

from kaizen.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MIN_TOKEN_LENGTH = 16
OPEN_PATHS = frozenset({"/health"})  # liveness only: no data behind it
ROLE = "kaizen.role"  # the scope key BearerAuth puts the presented token's role in
_UNAUTHORIZED = b'{"detail":"Unauthorized"}'
RETRY_AFTER_SECONDS = 1


def require_token(secret: SecretStr | None, variable: str, service: str) -> str:
    """The configured token, or one line saying why `service` will not start without one.
    `variable` is the environment variable (`.env`) that holds it."""
    token = secret.get_secret_value() if secret is not None else ""
    if not token:
        raise ConfigError(
            f"no {service} token: set {variable} in .env (the first `kaizen up` "
            f"generates one); the {service} never runs without authentication"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{variable} is too short ({len(token)} characters): use at least "
            f"{MIN_TOKEN_LENGTH} random ones, or delete it and let `kaizen up` generate one"
        )
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigError(f"{variable} must be printable ASCII without spaces")
    return token


class BearerAuth:
    """Refuse every request without `Authorization: Bearer <token>`, except `open_paths`."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | Mapping[str, str],
        open_paths: frozenset[str] = OPEN_PATHS,
    ):
        """`token`: the one token, or role -> token (each role's token must differ)."""
        self.app = app
        tokens = {"bearer": token} if isinstance(token, str) else dict(token)
        self._tokens = [(role, t.encode("ascii")) for role, t in tokens.items()]
        if len({t for _, t in self._tokens}) != len(self._tokens):
            raise ValueError("two roles share one token")
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        role = self._role(scope)
        if role is not None:
            scope[ROLE] = role
        if role is not None or (kind == "http" and scope["path"] in self.open_paths):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":  # closed before the handshake: the client sees HTTP 403
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _UNAUTHORIZED})

    def _role(self, scope: Scope) -> str | None:
        """The role whose token the request presents, else None."""
        values = [v for k, v in scope.get("headers", ()) if k.lower() == b"authorization"]
        if len(values) != 1:
            return None
        scheme, _, credentials = values[0].strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        credentials = credentials.strip()
        # Constant time in each token's content (a length mismatch returns early); every
        # token is compared, so which one matched does not show in the time either.
        matches = [role for role, t in self._tokens if hmac.compare_digest(credentials, t)]
        return matches[0] if matches else None


class LoadShed:
    """At most `limit` HTTP requests in flight; past it a 503 with `Retry-After`, at once.

    A slot is taken without waiting (anyio's semaphore, `acquire_nowait`) and held until the
    response is sent, or the app fails. `open_paths` are never counted nor shed; WebSocket
    and lifespan events pass through. `shed` counts the refused requests.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        open_paths: frozenset[str] = OPEN_PATHS,
        retry_after_s: int = RETRY_AFTER_SECONDS,
    ):
        if limit < 1:
            raise ConfigError(f"the in-flight request limit must be at least 1 (got {limit})")
        self.app, self.limit, self.open_paths = app, limit, open_paths
        self._slots = anyio.Semaphore(limit)
        self.shed = 0
        body = {"detail": f"overloaded: {limit} requests in flight; retry in {retry_after_s} s"}
        self._body = json.dumps(body).encode()
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
            (b"retry-after", str(retry_after_s).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            self.shed += 1
            await send({"type": "http.response.start", "status": 503, "headers": self._headers})
            await send({"type": "http.response.body", "body": self._body})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()
