"""`ingest`: a raw drop becomes a typed bronze partition, as landed, atomically.

Ingest refuses only what it cannot parse (a missing, empty, unreadable or malformed file);
content rules belong to the validation gate. Declared columns are typed by their
declaration; a column the drop has but the declaration lacks is kept as text, and a declared
column the drop lacks stays missing, so the gate can say exactly what changed.
"""

from __future__ import annotations

import hashlib
import json

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kaizen.errors import RawFileError
from kaizen.interval import parse_ds
from kaizen.lake import Partition
from kaizen.logs import get_logger
from kaizen.project.check import preflight
from kaizen.runtime import Runtime
from kaizen.sources import ColumnType, Source
from kaizen.stages.result import StageResult, timed

log = get_logger(__name__)

ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def declared_schema(spec: Source) -> pa.Schema:
    return pa.schema(
        [pa.field(n, ARROW_TYPES[c.type], nullable=c.nullable) for n, c in spec.columns.items()]
    )


def schema_fingerprint(schema: pa.Schema) -> str:
    blob = json.dumps([[f.name, str(f.type)] for f in schema]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_raw(url: str, storage_options: dict) -> bytes:
    """The raw drop's bytes; the file itself is never modified."""
    try:
        with fsspec.open(url, "rb", **storage_options) as fh:
            data = fh.read()
    except FileNotFoundError:
        raise RawFileError(f"raw file not found: {url}", kind="missing") from None
    except (PermissionError, IsADirectoryError, OSError) as exc:
        raise RawFileError(f"raw file unreadable: {url}: {exc}", kind="unreadable") from None
    if not data.strip():
        raise RawFileError(f"raw file is empty: {url}", kind="empty")
    return data


def parse_raw(spec: Source, data: bytes, *, block_size_mb: int, url: str) -> pa.Table:
    """Parse and type a drop by its declaration; a RawFileError when it cannot be parsed."""
    try:
        table = (
            _parse_csv(spec, data, block_size_mb)
            if spec.format == "csv"
            else _parse_parquet(spec, data)
        )
    except (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        pa.ArrowNotImplementedError,
        UnicodeDecodeError,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RawFileError(f"cannot parse {url}: {first}", kind="malformed") from None
    names = table.schema.names
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise RawFileError(
            f"cannot parse {url}: duplicate column names {duplicated}", kind="malformed"
        )
    if "" in names:
        raise RawFileError(f"cannot parse {url}: a column has an empty name", kind="malformed")
    # Undeclared columns are kept as text, so their type never depends on inference.
    for i, field in enumerate(table.schema):
        if field.name not in spec.columns and field.type != pa.string():
            table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
    return table


def _parse_csv(spec: Source, data: bytes, block_size_mb: int) -> pa.Table:
    types = {name: ARROW_TYPES[col.type] for name, col in spec.columns.items()}
    # Quoted fields may hold line breaks; the slower multi-line parser is needed only then.
    quoted = b'"' in data
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(block_size=block_size_mb << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=quoted),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            # Only an empty field is missing: "NA" is a region code, not a null.
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


def _parse_parquet(spec: Source, data: bytes) -> pa.Table:
    table = pq.read_table(pa.BufferReader(data))
    for i, field in enumerate(table.schema):
        column = spec.columns.get(field.name)
        if column is not None and field.type != ARROW_TYPES[column.type]:
            table = table.set_column(i, field.name, table.column(i).cast(ARROW_TYPES[column.type]))
    return table


def raw_exists(source: str, ds: str, rt: Runtime | None = None) -> bool:
    """Has the drop for `source` on `ds` landed? (Used by the DAG's sensor.)"""
    rt = rt or Runtime()
    url = rt.raw_url(source, parse_ds(ds))
    fs, path = fsspec.core.url_to_fs(url, **rt.settings.storage_options(url))
    return bool(fs.exists(path))


# Named like expectations so a quarantine summary reads the same whatever caught the batch.
FILE_CHECKS = {"empty": "expect_file_to_be_non_empty", "malformed": "expect_file_to_be_parseable"}


def _quarantine_unparseable(
    rt: Runtime, spec: Source, ds: str, data: bytes, exc: RawFileError, result: StageResult
) -> None:
    """A drop that cannot even be parsed is a bad batch: record it in quarantine, then fail."""
    from kaizen.errors import BatchQuarantined
    from kaizen.quality.quarantine import quarantine

    check = FILE_CHECKS[exc.kind]
    lines = max(data.count(b"\n") - 1, 0) if data.strip() else 0  # data lines after the header
    verdict = {
        "success": False,
        "results": [{"expectation_config": {"type": check}, "success": False, "reason": str(exc)}],
    }
    where = quarantine(
        rt.lake,
        spec.name,
        ds,
        declared_schema(spec).empty_table(),
        meta={
            "source": spec.name,
            "source_file": f"{spec.name}/{spec.raw_name(ds)}",
            "source_sha256": hashlib.sha256(data).hexdigest(),
            "rows_landed": lines,
            "validation": {"suite": "file checks", "success": False, "failed": [check]},
        },
        result=verdict,
        summary=f"{spec.name} {ds}: FAILED file checks\n- {check}: {exc}\n",
    )
    result.status, result.rows_quarantined, result.output = "quarantined", lines, where
    raise BatchQuarantined(f"{spec.name} {ds} quarantined: {check} failed: {exc}") from None


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
        try:
            data = read_raw(url, rt.settings.storage_options(url))
        except RawFileError as exc:
            if exc.kind == "empty":
                _quarantine_unparseable(rt, spec, ds, b"", exc, result)
            raise
        try:
            table = parse_raw(spec, data, block_size_mb=rt.params.ingest.csv_block_size_mb, url=url)
        except RawFileError as exc:
            _quarantine_unparseable(rt, spec, ds, data, exc, result)
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
                "landed_schema_hash": schema_fingerprint(table.schema),
                "missing_columns": missing,
                "undeclared_columns": extra,
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
