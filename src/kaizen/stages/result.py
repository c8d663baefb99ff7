"""What every stage returns and how it ends: one summary line an operator can act on."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "skipped", "quarantined", "failed"]


@dataclass
class StageResult:
    stage: str
    interval: str
    status: Status = "ok"
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    output: str = ""
    duration_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.stage} {self.interval}: {self.status}, rows in={self.rows_in} "
            f"out={self.rows_out} quarantined={self.rows_quarantined}, "
            f"{self.duration_s:.2f}s -> {self.output or '-'}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def timed(
    result: StageResult, logger: logging.Logger, rt: Any | None = None
) -> Iterator[StageResult]:
    """Time the stage body and log its summary line, also when it fails.

    With the stage's runtime, the same figures are appended to the stage-metrics table
    (`kaizen.stage_metrics`); recording them never fails the stage."""
    from kaizen.logs import bound_context

    start = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC)
    error = ""
    with bound_context(stage=result.stage):
        try:
            yield result
        except BaseException as exc:
            if result.status != "quarantined":  # a quarantine is an outcome, not a crash
                result.status = "failed"
            error = _one_line(exc)
            raise
        finally:
            result.duration_s = round(time.perf_counter() - start, 3)
            try:
                _finish(result, logger, rt, started_at, error)
            except Exception:  # reporting on a stage must never replace its own outcome
                logging.getLogger(__name__).debug("stage summary failed", exc_info=True)


def _one_line(exc: BaseException) -> str:
    try:
        text = str(exc).strip().splitlines()
    except Exception:  # an exception whose __str__ raises
        text = []
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _finish(
    result: StageResult,
    logger: logging.Logger,
    rt: Any | None,
    started_at: dt.datetime,
    error: str,
) -> None:
    from kaizen.logs import run_identity

    identity = run_identity()
    log = logger.info if result.status in ("ok", "skipped") else logger.error
    log(
        result.summary(),
        extra={
            "stage": result.stage,
            "interval": result.interval,
            "status": result.status,
            "rows_in": result.rows_in,
            "rows_out": result.rows_out,
            "rows_quarantined": result.rows_quarantined,
            "duration_s": result.duration_s,
            "output": result.output,
            **_model_version(result),
        },
    )
    if rt is not None:
        _record(rt, result, identity, started_at, error, logger)


def _model_version(result: StageResult) -> dict[str, str]:
    version = result.details.get("version") if isinstance(result.details, dict) else None
    return {"model_version": str(version)} if version is not None else {}


def _record(
    rt: Any,
    result: StageResult,
    identity: dict[str, str],
    started_at: dt.datetime,
    error: str,
    logger: logging.Logger,
) -> None:
    from kaizen import stage_metrics

    row = {
        **identity,
        **{k: v for k, v in result.to_dict().items() if k != "details"},
        "output": str(result.output),
        "error": error,
        "started_at": started_at,
        "ended_at": dt.datetime.now(dt.UTC),
    }
    try:
        settings = rt.settings
        stage_metrics.append(settings.lake_root, row, settings.storage_options(settings.lake_root))
    except Exception as exc:  # the figures are in the summary line; the stage's work stands
        logger.warning("could not record %s's metrics row: %s", result.stage, exc)


def run_step(
    stage: str, interval: str, rt: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """Run a step that returns its own record (a gate decision, a ledger event) under the
    same summary line and metrics row as a stage; the record's id is its output."""
    result = StageResult(stage, interval)
    with timed(result, logging.getLogger(getattr(fn, "__module__", __name__)), rt):
        outcome = fn(*args, **kwargs)
        record = outcome if isinstance(outcome, dict) else {}
        seq = f"ledger #{record['seq']}" if "seq" in record else ""
        result.output = str(getattr(outcome, "id", None) or record.get("id") or seq)
        verdict = getattr(outcome, "verdict", None) or record.get("verdict")
        if verdict:
            result.details = {"verdict": verdict}
            result.output = f"{result.output} ({verdict})"
    return outcome
