"""`ingest`: a raw drop becomes a typed bronze partition, as landed, atomically.

Whatever a raw file holds, ingest ends in bronze or in quarantine. A drop that cannot be
read cleanly (too large, not text, not valid in its declared encoding, truncated, records of
the wrong width, values that do not convert, no rows when the source does not allow that;
see `kaizen.rawfile`) is quarantined with every row that could be read, its raw bytes and
a one-line reason. Content rules belong to the validation gate. Declared columns are typed
by their declaration; a column the drop has but the declaration lacks is kept as text, and a
declared column the drop lacks stays missing, so the gate can say exactly what changed.
"""

from __future__ import annotations

import hashlib
import json

import fsspec
import pyarrow as pa

from kaizen import rawfile
from kaizen.errors import BatchQuarantined, RawFileError
from kaizen.interval import parse_ds
from kaizen.lake import Partition
from kaizen.logs import get_logger
from kaizen.project.check import preflight
from kaizen.rawfile import ARROW_TYPES
from kaizen.runtime import Runtime
from kaizen.sources import Source
from kaizen.stages.result import StageResult, timed

log = get_logger(__name__)

__all__ = ["ARROW_TYPES", "declared_schema", "ingest", "parse_raw", "raw_exists", "read_raw"]

FILE_CHECKS = "file checks"  # the "suite" of a batch quarantined before the gate


def declared_schema(spec: Source) -> pa.Schema:
    return pa.schema(
        [pa.field(n, ARROW_TYPES[c.type], nullable=c.nullable) for n, c in spec.columns.items()]
    )


def schema_fingerprint(schema: pa.Schema) -> str:
    blob = json.dumps([[f.name, str(f.type)] for f in schema]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_raw(url: str, storage_options: dict, max_bytes: int | None = None) -> bytes:
    """The raw drop's bytes (at most `max_bytes` + 1); the file itself is never modified."""
    try:
        with fsspec.open(url, "rb", **storage_options) as fh:
            return fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise RawFileError(f"raw file not found: {url}", kind="missing") from None
    except (PermissionError, IsADirectoryError, OSError) as exc:
        raise RawFileError(f"raw file unreadable: {url}: {exc}", kind="unreadable") from None


def raw_sha256(url: str, storage_options: dict) -> str | None:
    """The drop's checksum, streamed (a drop over its cap is never read whole); None if gone."""
    digest = hashlib.sha256()
    try:
        with fsspec.open(url, "rb", **storage_options) as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def parse_raw(spec: Source, data: bytes, *, block_size_mb: int, url: str) -> pa.Table:
    """A drop typed by its declaration; a RawFileError naming its first problem otherwise."""
    parsed = rawfile.parse(spec, data, block_size_mb=block_size_mb)
    if parsed.problems:
        kind = "empty" if parsed.problems[0].check == rawfile.NON_EMPTY else "malformed"
        raise RawFileError(f"cannot use {url}: {parsed.problems[0].reason}", kind=kind)
    return parsed.table


def raw_exists(source: str, ds: str, rt: Runtime | None = None) -> bool:
    """Has the drop for `source` on `ds` landed? (Used by the DAG's sensor.)"""
    rt = rt or Runtime()
    url = rt.raw_url(source, parse_ds(ds))
    fs, path = fsspec.core.url_to_fs(url, **rt.settings.storage_options(url))
    return bool(fs.exists(path))


def _parse(rt: Runtime, spec: Source, data: bytes, url: str) -> rawfile.Parsed:
    try:
        return rawfile.parse(spec, data, block_size_mb=rt.params.ingest.csv_block_size_mb)
    except Exception as exc:  # a file no check foresaw still ends in quarantine, not nowhere
        log.warning("%s: unexpected error while parsing", url, exc_info=True)
        problem = rawfile.Problem(rawfile.PARSEABLE, f"cannot parse: {type(exc).__name__}: {exc}")
        return rawfile.Parsed(declared_schema(spec).empty_table(), [problem], readable=False)


def _quarantine_at_intake(
    rt: Runtime,
    spec: Source,
    ds: str,
    url: str,
    data: bytes,
    parsed: rawfile.Parsed,
    result: StageResult,
) -> None:
    """A drop that cannot be read cleanly is a bad batch: hold what was read, then fail."""
    from kaizen.quality.quarantine import quarantine

    # Every check by name; the first two with the gist of their reason, to stay one line.
    reason = "; ".join(
        f"{p.check} ({p.reason.split(';')[0]})" if i < 2 else p.check
        for i, p in enumerate(parsed.problems)
    )
    held = parsed.table.num_rows
    lines = [f"{spec.name} {ds}: FAILED {FILE_CHECKS}: {reason}"]
    for p in parsed.problems:
        detail = f"- {p.check}: {p.reason}"
        if p.unexpected_count is not None:
            detail += f": {p.unexpected_count} unexpected"
        if p.examples:
            detail += "; e.g. " + ", ".join(repr(e) for e in p.examples)
        lines.append(detail)
    # Not named *.parquet: readers that glob a partition must never take it for its data.
    kept = "raw_drop." + spec.raw_name(ds).rsplit(".", 1)[-1].replace("parquet", "parquet.raw")
    lines.append(
        f"held: {held} rows{'' if parsed.typed else ' as text'}; {parsed.records_rejected}"
        f" records could not be parsed; the raw bytes are kept as {kept}"
        if len(data) <= spec.max_bytes
        else "held: nothing; the raw file is over the cap and stays in the raw zone only"
    )
    where = quarantine(
        rt.lake,
        spec.name,
        ds,
        parsed.table,
        meta={
            "source": spec.name,
            "source_file": f"{spec.name}/{spec.raw_name(ds)}",
            "source_sha256": hashlib.sha256(data).hexdigest()
            if len(data) <= spec.max_bytes
            else raw_sha256(url, rt.settings.storage_options(url)),
            "source_bytes": len(data) if len(data) <= spec.max_bytes else None,
            "intake_hash": spec.intake_hash(),
            "rows_landed": held,
            "records_rejected": parsed.records_rejected,
            "typed": parsed.typed,
            "reason": reason,
            "validation": {
                "suite": FILE_CHECKS,
                "success": False,
                "failed": [p.check for p in parsed.problems],
            },
        },
        result={
            "success": False,
            "suite": FILE_CHECKS,
            "results": [p.result() for p in parsed.problems],
        },
        summary="\n".join(lines) + "\n",
        # The bytes themselves, beside the rows: what was read from them may be lossy.
        attachments={kept: data} if len(data) <= spec.max_bytes else {},
    )
    result.status, result.rows_quarantined, result.output = "quarantined", held, where
    raise BatchQuarantined(
        f"{spec.name} {ds} quarantined: {FILE_CHECKS} failed: {reason}; see {where}/summary.txt"
    )


def ingest(source: str, ds: str, rt: Runtime | None = None) -> StageResult:
    """Type `<raw_root>/<source>/<ds>` by its declaration and commit `bronze/<source>/ds=<ds>`."""
    rt = rt or Runtime()
    ds = parse_ds(ds)
    preflight(rt)  # a broken declaration stops here, before anything is written
    spec = rt.catalog.get(source)
    part = Partition("bronze", spec.name, ds)
    result = StageResult("ingest", f"{source} {ds}")
    with timed(result, log, rt):
        url = rt.raw_url(source, ds)
        data = read_raw(url, rt.settings.storage_options(url), spec.max_bytes)
        parsed = _parse(rt, spec, data, url)
        if parsed.problems:
            _quarantine_at_intake(rt, spec, ds, url, data, parsed, result)
        table = parsed.table
        missing = [c for c in spec.columns if c not in table.schema.names]
        extra = [c for c in table.schema.names if c not in spec.columns]
        rt.lake.write(
            part,
            table,
            meta={
                "source": spec.name,
                "source_file": f"{spec.name}/{spec.raw_name(ds)}",
                "source_sha256": hashlib.sha256(data).hexdigest(),
                "source_bytes": len(data),
                "declared_schema_hash": spec.schema_hash(),
                "intake_hash": spec.intake_hash(),
                "landed_schema_hash": schema_fingerprint(table.schema),
                "missing_columns": missing,
                "undeclared_columns": extra,
                "bom_stripped": parsed.bom_stripped,
            },
        )
        if missing or extra:
            log.warning(
                "%s %s landed with schema changes: missing %s, undeclared %s (the gate decides)",
                source,
                ds,
                missing,
                extra,
            )
        result.rows_in = result.rows_out = table.num_rows
        result.output = rt.lake.url(part)
    return result
