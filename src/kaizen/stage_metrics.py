"""The stage-metrics table: one row per stage run, `<lake>/metrics/stage_runs/`.

Each run writes its own small parquet file under `stage=<stage>/date=<day it ended>/`, named
by its end time and a fresh attempt id. Appends therefore never touch another writer's file:
mapped Airflow tasks running at once cannot collide, and a rerun of an interval adds a row
instead of replacing one. A file appears whole or not at all (written aside and renamed
locally; one PUT on an object store), and readers skip the hidden temporary names.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Mapping
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kaizen.lake import table_to_parquet_bytes

TABLE = "metrics/stage_runs"
SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("attempt_id", pa.string()),
        ("dag_id", pa.string()),
        ("task_id", pa.string()),
        ("try_number", pa.string()),
        ("stage", pa.string()),
        ("interval", pa.string()),
        ("status", pa.string()),
        ("rows_in", pa.int64()),
        ("rows_out", pa.int64()),
        ("rows_quarantined", pa.int64()),
        ("duration_s", pa.float64()),
        ("output", pa.string()),
        ("error", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("ended_at", pa.timestamp("us", tz="UTC")),
    ]
)
COLUMNS = SCHEMA.names


def table_url(lake_root: str) -> str:
    return f"{lake_root.rstrip('/')}/{TABLE}"


def append(
    lake_root: str, row: Mapping[str, Any], storage_options: Mapping[str, Any] | None = None
) -> str:
    """Add one run's row; returns the file's address. Never overwrites an existing row."""
    full = {name: row.get(name) for name in COLUMNS}
    full["attempt_id"] = full["attempt_id"] or uuid.uuid4().hex
    ended = full["ended_at"] or dt.datetime.now(dt.UTC)
    full["ended_at"] = ended
    blob = table_to_parquet_bytes(pa.Table.from_pylist([full], schema=SCHEMA))
    fs, base = fsspec.core.url_to_fs(table_url(lake_root), **dict(storage_options or {}))
    folder = f"{base}/stage={full['stage']}/date={ended.date().isoformat()}"
    name = f"{ended.strftime('%Y%m%dT%H%M%S%fZ')}-{full['attempt_id']}.parquet"
    fs.makedirs(folder, exist_ok=True)
    path = f"{folder}/{name}"
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        tmp = f"{folder}/.{name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # the name is unique, so this only ever creates
    else:
        fs.pipe_file(path, blob)  # one PUT: the object is whole or absent
    return f"{table_url(lake_root)}/stage={full['stage']}/date={ended.date().isoformat()}/{name}"


def read(
    lake_root: str,
    storage_options: Mapping[str, Any] | None = None,
    stage: str | None = None,
) -> pd.DataFrame:
    """Every recorded run (of one stage, if given), oldest first."""
    fs, base = fsspec.core.url_to_fs(table_url(lake_root), **dict(storage_options or {}))
    pattern = f"{base}/stage={stage or '*'}/date=*/*.parquet"
    files = sorted(p for p in fs.glob(pattern) if not p.rsplit("/", 1)[-1].startswith("."))
    if not files:
        return SCHEMA.empty_table().to_pandas()
    tables = []
    for path in files:
        with fs.open(path, "rb") as fh:
            tables.append(pq.read_table(fh, schema=SCHEMA))
    frame = pa.concat_tables(tables).to_pandas()
    return frame.sort_values(["started_at", "ended_at"], kind="stable").reset_index(drop=True)


def read_settings(settings: Any, stage: str | None = None) -> pd.DataFrame:
    return read(settings.lake_root, settings.storage_options(settings.lake_root), stage)


def last_good(runs: pd.DataFrame) -> pd.DataFrame:
    """Per DAG (or per stage for runs outside Airflow): the newest interval that ended ok."""
    ok = runs[runs["status"].isin(["ok", "skipped"])].copy()
    if ok.empty:
        return pd.DataFrame(columns=["source", "interval", "ended_at"])
    ok["source"] = [
        f"dag {d}" if d else f"stage {s}" for d, s in zip(ok["dag_id"], ok["stage"], strict=True)
    ]
    newest = ok.sort_values("ended_at").groupby("source", sort=True).tail(1)
    return newest[["source", "interval", "ended_at"]].sort_values("source").reset_index(drop=True)
