"""What every stage returns and how it ends: one summary line an operator can act on."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
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
def timed(result: StageResult, logger: logging.Logger) -> Iterator[StageResult]:
    """Time the stage body and log its summary line, also when it fails."""
    start = time.perf_counter()
    try:
        yield result
    except Exception:
        if result.status != "quarantined":  # a quarantine is an outcome, not a crash
            result.status = "failed"
        raise
    finally:
        result.duration_s = round(time.perf_counter() - start, 3)
        log = logger.info if result.status in ("ok", "skipped") else logger.error
        log(result.summary(), extra={"stage": result.stage, "interval": result.interval})
