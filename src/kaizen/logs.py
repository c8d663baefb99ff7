"""Logging set-up: one line per event, text for people or JSON for machines (a setting).

JSON goes through structlog's ProcessorFormatter on the stdlib root handler, so library
logs (Airflow, MLflow, Feast) come out as JSON too. Every line carries the run identity
(Airflow's dag/run/task/try inside a task, a generated id for a CLI process) and whatever
is bound with `bound_context` (model version, entity...) through contextvars.

Logging must never break the program: unserialisable values are rendered with repr, a
formatter that fails falls back to a plain line, a closed stream falls back to the
process's original stderr, and a bad level or format falls back to the defaults.
Third-party chatter (Great Expectations, py4j, botocore) is kept at WARNING.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

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
FORMATS = ("text", "json")
# Airflow's task runner exports the task's context as AIRFLOW_CTX_* environment variables.
_AIRFLOW_CTX = {
    "dag_id": "AIRFLOW_CTX_DAG_ID",
    "airflow_run_id": "AIRFLOW_CTX_DAG_RUN_ID",
    "task_id": "AIRFLOW_CTX_TASK_ID",
    "try_number": "AIRFLOW_CTX_TRY_NUMBER",
}
_PROCESS_RUN_ID: str | None = None


def _process_run_id() -> str:
    """One id per CLI process, so every stage a command runs shares it."""
    global _PROCESS_RUN_ID
    if _PROCESS_RUN_ID is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        _PROCESS_RUN_ID = f"cli-{stamp}-{uuid.uuid4().hex[:8]}"
    return _PROCESS_RUN_ID


def run_identity() -> dict[str, str]:
    """Who is running: Airflow's ids inside a task, else this process's generated run id.

    A `run_id` bound with `bound_context` wins over both."""
    bound = structlog.contextvars.get_contextvars()
    found = {key: os.environ[env] for key, env in _AIRFLOW_CTX.items() if os.environ.get(env)}
    if "airflow_run_id" in found:
        found["run_id"] = found["airflow_run_id"]
    else:
        found["run_id"] = _process_run_id()
    if bound.get("run_id"):
        found["run_id"] = str(bound["run_id"])
    return found


@contextmanager
def bound_context(**values: Any) -> Iterator[None]:
    """Bind fields (model_version, entity, ...) to every log line in this context."""
    with structlog.contextvars.bound_contextvars(
        **{k: v for k, v in values.items() if v is not None}
    ):
        yield


def _add_identity(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in run_identity().items():
        event.setdefault(key, value)
    return event


def _safe_default(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a __repr__ that raises must not lose the line
        return f"<unprintable {type(value).__name__}>"


def _dumps(event: Any, **kwargs: Any) -> str:
    kwargs["default"] = _safe_default
    try:
        return json.dumps(event, **kwargs)
    except (TypeError, ValueError):  # non-string keys, circular references
        return json.dumps({str(k): _safe_default(v) for k, v in dict(event).items()}, **kwargs)


class SafeJsonFormatter(structlog.stdlib.ProcessorFormatter):
    """structlog's JSON for every stdlib record; a line it cannot render degrades, never raises."""

    def __init__(self) -> None:
        chain = [
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            _add_identity,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        ]
        super().__init__(
            foreign_pre_chain=chain,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.EventRenamer("msg"),
                structlog.processors.JSONRenderer(serializer=_dumps),
            ],
        )

    def format(self, record: logging.LogRecord) -> str:
        try:
            return super().format(record)
        except Exception as exc:
            try:
                msg = record.getMessage()
            except Exception:  # bad %-args: keep the template
                msg = str(record.msg)
            return _dumps(
                {
                    "level": record.levelname.lower(),
                    "logger": record.name,
                    "msg": msg,
                    "log_error": f"{type(exc).__name__}: {exc}",
                    **run_identity(),
                }
            )


# Backwards-compatible name: the JSON formatter of this module.
JsonFormatter = SafeJsonFormatter


class SafeTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        try:
            return super().format(record)
        except Exception:
            return f"{record.levelname} {record.name}: {record.msg!s}"


class SafeStreamHandler(logging.StreamHandler):
    """A stream that is closed or broken falls back to the process's stderr, then to nothing."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            return
        for stream in (self.stream, sys.__stderr__):
            if stream is None:
                continue
            try:
                stream.write(line + self.terminator)
                stream.flush()
                return
            except Exception:  # ValueError on a closed file, OSError on a broken pipe
                continue


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Idempotent: safe to call from the CLI, a task or a test. Never raises."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_kaizen", False):
            root.removeHandler(handler)
    handler = SafeStreamHandler(sys.stderr)
    handler._kaizen = True  # type: ignore[attr-defined]
    problems = []
    if fmt not in FORMATS:
        problems.append(f"unknown log format {fmt!r}, using text")
        fmt = "text"
    if fmt == "json":
        handler.setFormatter(SafeJsonFormatter())
    else:
        handler.setFormatter(
            SafeTextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root.addHandler(handler)
    resolved = logging.getLevelName(str(level).upper())
    if not isinstance(resolved, int):
        problems.append(f"unknown log level {level!r}, using INFO")
        resolved = logging.INFO
    root.setLevel(resolved)
    _configure_structlog()
    quiet_third_party()
    for problem in problems:
        logging.getLogger(__name__).warning(problem)


def _configure_structlog() -> None:
    """structlog loggers hand their events to stdlib, so one handler formats everything."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.PositionalArgumentsFormatter(),
            _add_identity,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def quiet_third_party() -> None:
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.raiseExceptions = False  # a broken log call never breaks the stage


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
