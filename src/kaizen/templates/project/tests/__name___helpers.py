"""Shared test helpers: the declaration, typed silver frames and a generated history."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml

PROJECT = Path(__file__).resolve().parents[1]
START = "2026-01-01"
ARROW = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


@functools.cache
def declaration() -> dict:
    return yaml.safe_load((PROJECT / "kaizen.yaml").read_text(encoding="utf-8"))


def schema(source: str) -> pa.Schema:
    """The silver schema of `source`: every column typed as kaizen.yaml declares it."""
    columns = declaration()["sources"][source]["columns"]
    return pa.schema([pa.field(name, ARROW[kind]) for name, kind in columns.items()])


def parse(blob: bytes, source: str) -> pd.DataFrame:
    """A drop typed by its declaration, as ingest types it (only an empty field is missing)."""
    types = {f.name: f.type for f in schema(source)}
    table = pacsv.read_csv(
        pa.BufferReader(blob),
        convert_options=pacsv.ConvertOptions(
            column_types=types, null_values=[""], strings_can_be_null=True
        ),
    )
    return table.to_pandas()


def silver(root: Path, source: str, dates: list[str]) -> pd.DataFrame:
    """The drops of `dates` concatenated, typed as the silver layer holds them."""
    frames = [parse((root / source / f"{ds}.csv").read_bytes(), source) for ds in dates]
    return pd.concat(frames, ignore_index=True)


def frame(source: str, rows: list[dict]) -> pd.DataFrame:
    """Hand-built rows typed exactly as silver types them (ISO strings become UTC instants)."""
    table = pa.Table.from_pylist(
        [{k: _instant(v) for k, v in row.items()} for row in rows], schema=schema(source)
    )
    return table.to_pandas()


def _instant(value: object) -> object:
    if isinstance(value, str) and "T" in value:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return value


def dates(start: str, days: int) -> list[str]:
    first = dt.date.fromisoformat(start)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]
