"""What the raw-file fault tests share: one runtime per project, a fresh tiny lake per case,
ingest -> validate on one drop, and where it ended with its row accounting."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import make_settings, small_world

from kaizen.errors import BatchQuarantined
from kaizen.lake import Partition
from kaizen.runtime import Runtime
from kaizen.sources import SourceCatalog
from kaizen.stages.ingest import ingest
from kaizen.stages.validate import validate

DS = "2026-01-01"  # the first simulated day: every customer, a handful of orders and payments
_LOADED = ("project", "params", "project_params", "catalog")
_ids = itertools.count()


def project_runtime(root: Path, project: str) -> Runtime:
    """A runtime with the project loaded and one clean day simulated under root/clean."""
    rt = Runtime(make_settings(root, project=project))
    for name in _LOADED:
        getattr(rt, name)
    clean = str(root / "clean")
    if project == "credit_risk":
        from credit_risk.simulate import simulate

        simulate(small_world(days=1, customers=300), clean)
    else:
        rt.project.hook("generator")(rt.project_params, clean, start=DS, days=1)
    return rt


def clean_drop(base: Runtime, source: str) -> bytes:
    root = Path(base.settings.raw_root).parent
    return (root / "clean" / source / f"{DS}.csv").read_bytes()


def fresh(
    base: Runtime,
    declare: dict[str, Any] | None = None,
    source: str = "",
    lake_of: Runtime | None = None,
) -> Runtime:
    """A new, empty raw zone and lake (or those of `lake_of`); the project, params and GX
    context of `base`, with `declare` overriding fields of `source`'s declaration."""
    root = Path(base.settings.raw_root).parent / f"case{next(_ids)}"
    rt = Runtime(
        lake_of.settings
        if lake_of
        else base.settings.model_copy(
            update={"raw_root": str(root / "raw"), "lake_root": str(root / "lake")}
        )
    )
    for name in _LOADED:
        rt.__dict__[name] = getattr(base, name)
    if declare:
        sources = dict(base.catalog.sources)
        sources[source] = sources[source].model_copy(update=declare)
        rt.__dict__["catalog"] = SourceCatalog(sources=sources)
    return rt


@dataclass
class Outcome:
    where: str  # "silver" or "quarantine"
    message: str  # the one-line error, or "" for silver
    rows: int  # rows in silver (+ exact duplicates dropped) or held in quarantine
    manifest: dict[str, Any]
    raw_kept: bytes | None  # the raw bytes attached to the quarantine, if any


def land_and_gate(rt: Runtime, source: str, data: bytes) -> Outcome:
    """Land `data` as the day's drop, run ingest and validate; check it is in exactly one place."""
    raw = Path(rt.settings.raw_root) / source / f"{DS}.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(data)
    message = ""
    try:
        ingest(source, DS, rt)
        validate(source, DS, rt)
    except BatchQuarantined as exc:
        message = str(exc)
    assert "\n" not in message
    assert raw.read_bytes() == data  # raw files are never modified
    silver, held = (
        rt.lake.manifest(Partition(layer, source, DS)) for layer in ("silver", "quarantine")
    )
    assert (silver is None) != (held is None), "a batch ends in silver xor quarantine"
    if silver is not None:
        assert not message
        return Outcome("silver", "", silver["rows"] + silver["duplicates_dropped"], silver, None)
    assert message and not rt.lake.exists(Partition("bronze", source, DS))
    kept = [n for n in held["attachments"] if n.startswith("raw_drop.")]
    part = Partition("quarantine", source, DS)
    raw_kept = rt.lake.read_attachment(part, kept[0]) if kept else None
    return Outcome("quarantine", message, held["rows"], held, raw_kept)
