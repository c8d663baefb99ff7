"""Reading a raw drop, whatever it holds: typed rows, plus every problem found on the way.

A raw file is judged here before any content rule: its size against the source's cap, that
it is text in the declared encoding, that it ends with a line break, that its header names
are usable, that its quotes are balanced, that every record has the header's field count, that values convert to their
declared types, and that it has rows when the source does not allow an empty drop. Each
problem is a named file check with a one-line reason, an unexpected count and a few example
values, so a quarantine summary reads the same whether this or the GX gate caught the batch.

The rows that could be read are always returned, so a quarantine keeps them: a truncated
file's complete records, the rows of a file not valid in its encoding (decoded with U+FFFD
in place of the bad bytes; the raw bytes are kept beside them), every row of a file whose
values do not convert (then as text). Encodings are declared, never guessed: a UTF-8 BOM is
dropped; bytes not valid in the declared encoding are a problem, never silently transcoded.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kaizen.logs import get_logger
from kaizen.sources import ColumnType, Source

log = get_logger(__name__)

ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}

# Named like GX expectations, so a summary reads the same whatever caught the batch.
SIZE = "expect_file_size_to_be_within_cap"
NON_EMPTY = "expect_file_to_be_non_empty"
TEXT = "expect_file_to_be_text"
ENCODING = "expect_file_to_be_valid_in_its_encoding"
LINE_END = "expect_file_to_end_with_a_line_break"
HEADER = "expect_file_header_names_to_be_unique"
QUOTES = "expect_quotes_to_be_balanced"
FIELDS = "expect_rows_to_have_the_header_field_count"
TYPES = "expect_values_to_convert_to_declared_types"
PARSEABLE = "expect_file_to_be_parseable"

EXAMPLES = 5
_BOM = codecs.BOM_UTF8
# Magic numbers of formats that are not text: named, so the reason says what was landed.
_MAGIC = {
    b"\x1f\x8b": "gzip-compressed bytes",
    b"PK\x03\x04": "a zip archive",
    b"PAR1": "a Parquet file",
    b"\x28\xb5\x2f\xfd": "zstd-compressed bytes",
    b"BZh": "bzip2-compressed bytes",
}
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass
class Problem:
    check: str
    reason: str
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)

    def result(self) -> dict[str, Any]:
        """As a GX-like expectation result for validation.json."""
        return {
            "expectation_config": {"type": self.check},
            "success": False,
            "reason": self.reason,
            "result": {
                "unexpected_count": self.unexpected_count,
                "partial_unexpected_list": self.examples,
            },
        }


@dataclass
class Parsed:
    table: pa.Table  # typed by the declaration, or all text when values did not convert
    problems: list[Problem]
    records_rejected: int = 0  # records not parsable into a row (their field count is wrong)
    typed: bool = True
    bom_stripped: bool = False
    readable: bool = True  # False: no row could be read at all (only the raw bytes are kept)

    @property
    def ok(self) -> bool:
        return not self.problems


def parse(spec: Source, data: bytes, *, block_size_mb: int) -> Parsed:
    """Every readable row of a drop and every problem with it; never raises on content."""
    if len(data) > spec.max_bytes:
        return _nothing(
            spec, Problem(SIZE, f"file has more than the declared cap of {spec.max_mb:g} MB")
        )
    if not data.strip():
        return _nothing(spec, Problem(NON_EMPTY, "raw file is empty (not even a header)"))
    try:
        parsed = (
            _parse_csv(spec, data, block_size_mb) if spec.format == "csv" else _parquet(spec, data)
        )
    except (pa.ArrowException, ValueError, TypeError) as exc:
        return _nothing(spec, Problem(PARSEABLE, f"cannot parse: {_first_line(exc)}"))
    if parsed.readable and not (
        parsed.table.num_rows or parsed.records_rejected or spec.allow_empty
    ):
        parsed.problems.append(
            Problem(NON_EMPTY, "no rows (header only) and the source does not allow an empty drop")
        )
    return parsed


def _nothing(spec: Source, problem: Problem) -> Parsed:
    """Nothing could be read: the raw bytes are all there is."""
    schema = pa.schema([pa.field(n, ARROW_TYPES[c.type]) for n, c in spec.columns.items()])
    return Parsed(schema.empty_table(), [problem], readable=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _show_bytes(data: bytes, at: int) -> str:
    return repr(data[max(at - 12, 0) : at + 12])


# -- CSV -------------------------------------------------------------------------------------


def _parse_csv(spec: Source, data: bytes, block_size_mb: int) -> Parsed:
    problems: list[Problem] = []
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            return _nothing(spec, Problem(TEXT, f"{what}, not a CSV text file: land it as text"))
    utf8, bom, problem = _decode(spec.encoding, data)
    if problem:
        problems.append(problem)
    nul = -1 if problem else utf8.find(b"\x00")  # an encoding problem explains NULs itself
    if nul >= 0:  # valid text, but no export writes NUL: binary data or a corrupted copy
        count = utf8.count(b"\x00")
        problems.append(
            Problem(TEXT, f"{count} NUL characters (binary data?), the first at byte {nul}", count)
        )
    if spec.final_newline and not utf8.endswith((b"\n", b"\r")):
        last = utf8[-60:].rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
        problems.append(
            Problem(
                LINE_END, "no line break at the end: the file may be truncated mid-row", 1, [last]
            )
        )
    quotes = utf8.count(b'"')
    if quotes % 2:  # every quoted field and every escaped quote is a pair of them
        problems.append(
            Problem(
                QUOTES,
                f"an odd number of double quotes ({quotes}): a quoted field is never closed,"
                " and the records after it are read into that one field",
                1,
            )
        )
    rejected: list[Any] = []

    def reject(row: Any) -> str:
        rejected.append(row)
        return "skip"

    def read(types: dict[str, pa.DataType] | None) -> pa.Table:
        rejected.clear()
        return pacsv.read_csv(
            pa.BufferReader(utf8),
            read_options=pacsv.ReadOptions(block_size=block_size_mb << 20),
            # Quoted fields may hold line breaks; the slower multi-line parser only then.
            parse_options=pacsv.ParseOptions(
                newlines_in_values=b'"' in utf8, invalid_row_handler=reject
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                # Only an empty field is missing: "NA" is a region code, not a null.
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )

    typed = True
    declared = {name: ARROW_TYPES[col.type] for name, col in spec.columns.items()}
    try:
        table = read(declared)
    except pa.ArrowInvalid as exc:
        if "conversion error" not in str(exc):
            raise
        typed = False
        table = read(dict.fromkeys(spec.columns, pa.string()))
        problems += _conversion_problems(spec, table, exc)
    table, header = _usable_names(table)
    if header:
        problems.append(header)
    if rejected:
        n_fields = rejected[0].expected_columns
        problems.append(
            Problem(
                FIELDS,
                f"{len(rejected)} records do not have the header's {n_fields} fields"
                " (wrong delimiter, unbalanced quotes or a truncated row?)",
                len(rejected),
                [r.text[:60] for r in rejected[:EXAMPLES]],
            )
        )
    # Undeclared columns are kept as text, so their type never depends on inference.
    for i, f in enumerate(table.schema):
        if f.name not in spec.columns and f.type != pa.string():
            table = table.set_column(i, f.name, table.column(i).cast(pa.string()))
    return Parsed(table, problems, len(rejected), typed, bom)


def _decode(encoding: str, data: bytes) -> tuple[bytes, bool, Problem | None]:
    """The drop as UTF-8 bytes for the parser, whether a BOM was dropped, and a problem when
    bytes are not valid in the declared encoding (they are then replaced by U+FFFD)."""
    bom = encoding.startswith("utf-8") and data.startswith(_BOM)
    if bom:
        data = data[len(_BOM) :]
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    try:
        text = data.decode(codec)
        return (data if codec == "utf-8" else text.encode("utf-8")), bom, None
    except UnicodeDecodeError as exc:
        shift = len(_BOM) if bom else 0  # positions are in the file as landed
        positions, at = [], 0
        while len(positions) < EXAMPLES and at < len(data):
            try:
                data[at:].decode(codec)
                break
            except UnicodeDecodeError as more:
                positions.append(at + more.start)
                at += more.end
        text = data.decode(codec, errors="replace")
        hint = ""
        if codec == "utf-8" and data.startswith(_UTF16_BOMS):
            hint = " (it starts with a UTF-16 byte-order mark: declare `encoding: utf-16` if so)"
        return (
            text.encode("utf-8"),
            bom,
            Problem(
                ENCODING,
                f"not valid {encoding} at byte {exc.start + shift}{hint}; rows are held with U+FFFD"
                " in place of the bad bytes, the raw bytes beside them",
                text.count("\ufffd"),
                [f"byte {p + shift}: {_show_bytes(data, p)}" for p in positions],
            ),
        )


def _usable_names(table: pa.Table) -> tuple[pa.Table, Problem | None]:
    """Duplicate or empty header names renamed (`name__2`, `column_3`) so rows can be held."""
    names = table.schema.names
    bad = sorted({n for n in names if names.count(n) > 1 or not n.strip()})
    if not bad:
        return table, None
    seen: dict[str, int] = {}
    fixed = []
    for i, name in enumerate(names):
        if not name.strip():
            fixed.append(f"column_{i + 1}")
            continue
        seen[name] = seen.get(name, 0) + 1
        fixed.append(name if seen[name] == 1 else f"{name}__{seen[name]}")
    return table.rename_columns(fixed), Problem(
        HEADER, f"the header has duplicate or empty column names {bad}", len(bad), bad
    )


def _conversion_problems(spec: Source, text: pa.Table, exc: BaseException) -> list[Problem]:
    """Per declared column, how many values do not convert to its type, with examples."""
    problems = []
    for name, col in spec.columns.items():
        if name not in text.schema.names or col.type == "string":
            continue
        bad, count = _unconvertible(text.column(name), ARROW_TYPES[col.type])
        if count:
            problems.append(
                Problem(TYPES, f"column {name}: {count} values are not {col.type}", count, bad)
            )
    if not problems:  # Arrow's converter refused what the per-value check accepts
        problems.append(Problem(TYPES, _first_line(exc)))
    return problems


def _unconvertible(column: pa.ChunkedArray, type_: pa.DataType) -> tuple[list[str], int]:
    """A few values that do not cast to `type_` and how many rows hold such values."""
    values = pc.utf8_trim_whitespace(column.combine_chunks())
    try:
        pc.cast(values, type_)
        return [], 0
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    counts = pc.value_counts(values)
    bad, rows = [], 0
    for value, n in zip(
        counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
    ):
        if value is None or value == "":
            continue
        try:
            pc.cast(pa.array([value]), type_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            rows += n
            if len(bad) < EXAMPLES:
                bad.append(value[:60])
    return bad, rows


# -- Parquet ---------------------------------------------------------------------------------


def _parquet(spec: Source, data: bytes) -> Parsed:
    table = pq.read_table(pa.BufferReader(data))
    for i, f in enumerate(table.schema):
        column = spec.columns.get(f.name)
        if column is not None and f.type != ARROW_TYPES[column.type]:
            table = table.set_column(i, f.name, table.column(i).cast(ARROW_TYPES[column.type]))
    table, header = _usable_names(table)
    return Parsed(table, [header] if header else [])
