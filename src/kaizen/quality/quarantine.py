"""Quarantine: where a rejected batch waits, whole, with the reason it was rejected.

A quarantined partition holds the batch's rows exactly as they were in bronze (or, for a
drop that could not be read cleanly, every row that could be read and the raw bytes), plus
`validation.json` (the machine-readable result) and `summary.txt` (which expectations
failed, with unexpected counts and example values). Moving a batch here removes it from bronze and silver, so
no stage downstream can read it; `kaizen replay` brings it back once it is fixed.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from kaizen.lake import Lake, Partition

RESULT = "validation.json"
SUMMARY = "summary.txt"


def quarantine(
    lake: Lake,
    source: str,
    ds: str,
    table: pa.Table,
    *,
    meta: dict[str, Any],
    result: dict[str, Any],
    summary: str,
    withdraw: tuple[str, ...] = ("bronze", "silver"),
    attachments: dict[str, bytes] | None = None,
) -> str:
    """Commit the batch to quarantine, then withdraw it from the layers downstream read."""
    target = Partition("quarantine", source, ds)
    lake.write(
        target,
        table,
        meta=meta,
        attachments={
            RESULT: (json.dumps(result, indent=2, sort_keys=True, default=str) + "\n").encode(),
            SUMMARY: summary.encode(),
            **(attachments or {}),
        },
    )
    for layer in withdraw:
        lake.delete(Partition(layer, source, ds))
    return lake.url(target)


def waiting(lake: Lake, sources: list[str]) -> list[tuple[str, str]]:
    """Every (source, ds) in quarantine, oldest first: the batches waiting for a replay."""
    return sorted((s, ds) for s in sources for ds in lake.partitions("quarantine", s))
