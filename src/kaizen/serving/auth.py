"""The prediction API's bearer token: the feature server's rules and the same ASGI layer.

Every route but `GET /health` needs `Authorization: Bearer <token>`, compared in constant
time; a missing and a wrong token get the same 401. The token is
`KAIZEN_PREDICTION_API_TOKEN` (`.env`; the first `kaizen up` generates it): without one the
API refuses to start.
"""

from __future__ import annotations

from kaizen.config import Settings
from kaizen.errors import ConfigError
from kaizen.featurestore.server import MIN_TOKEN_LENGTH, BearerAuth

TOKEN_VARIABLE = "KAIZEN_PREDICTION_API_TOKEN"
OPEN_PATHS = frozenset({"/health"})

__all__ = ["OPEN_PATHS", "TOKEN_VARIABLE", "BearerAuth", "require_token"]


def require_token(settings: Settings) -> str:
    """The configured token, or one line saying why the API will not start without one."""
    secret = settings.prediction_api_token
    token = secret.get_secret_value() if secret is not None else ""
    if not token:
        raise ConfigError(
            f"no prediction API token: set {TOKEN_VARIABLE} in .env (the first `kaizen up` "
            "generates one); the prediction API never runs without authentication"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{TOKEN_VARIABLE} is too short ({len(token)} characters): use at least "
            f"{MIN_TOKEN_LENGTH} random ones, or delete it and let `kaizen up` generate one"
        )
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigError(f"{TOKEN_VARIABLE} must be printable ASCII without spaces")
    return token
