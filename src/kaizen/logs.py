"""Logging set-up: one line per event, text for people or JSON for machines (a setting).

Logging must never break the program: formatting errors are swallowed by the handler, and
third-party chatter (Great Expectations, py4j, botocore) is kept at WARNING.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_NOISY = (
    "great_expectations",
    "py4j",
    "botocore",
    "s3fs",
    "urllib3",
    "fsspec",
    "numexpr",
    "feast",
    "alembic",
)
# Attributes every LogRecord has; anything else was passed through `extra=` and is context.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Idempotent: safe to call from the CLI, a task or a test."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_kaizen", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._kaizen = True  # type: ignore[attr-defined]
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_third_party()


def quiet_third_party() -> None:
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.raiseExceptions = False  # a broken log call never breaks the stage


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
