"""The prediction log, read by its contract (`<lake_root>/predictions/ds=D/part-<uuid>.parquet`).

The log is written by `kaizen.serving.predictions`; when that module is installed its reader
is used, otherwise the files are read here by the same contract. No log yet is an empty frame.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kaizen.errors import InputError
from kaizen.runtime import Runtime

TABLE = "predictions"
SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("customer_id", pa.int64()),
        ("invoice_id", pa.string()),
        ("requested_amount", pa.float64()),
        ("model_version", pa.string()),
        ("alias", pa.string()),
        ("role", pa.string()),
        ("probability", pa.float64()),
        ("decision", pa.string()),
        ("features", pa.string()),
        ("fresh", pa.bool_()),
        ("latency_ms", pa.float64()),
        ("error", pa.string()),
    ]
)
_DS_DIR = re.compile(r"^ds=(\d{4}-\d{2}-\d{2})$")
_FILE = re.compile(r"^part-[0-9A-Za-z_-]+\.parquet$")


def read_predictions(
    rt: Runtime, start_ds: str | None = None, end_ds: str | None = None
) -> pd.DataFrame:
    """Logged predictions of the days in [start_ds, end_ds] (inclusive), ordered by `ts`."""
    try:
        from kaizen.serving.predictions import (  # type: ignore[import-not-found]
            read_predictions as serving_reader,
        )
    except ImportError:
        return _read(rt, start_ds, end_ds)
    return serving_reader(rt, start_ds, end_ds)


def _read(rt: Runtime, start_ds: str | None, end_ds: str | None) -> pd.DataFrame:
    import fsspec

    for label, value in (("start_ds", start_ds), ("end_ds", end_ds)):
        if value is not None:
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise InputError(f"{label} {value!r} is not a date (YYYY-MM-DD)") from None
    fs, root = fsspec.core.url_to_fs(rt.lake.url(TABLE), **rt.lake.storage_options)
    try:
        entries = fs.ls(root, detail=False)
    except FileNotFoundError:
        entries = []
    tables = []
    for entry in sorted(entries):
        match = _DS_DIR.match(entry.rstrip("/").rsplit("/", 1)[-1])
        if not match or (start_ds and match.group(1) < start_ds):
            continue
        if end_ds and match.group(1) > end_ds:
            continue
        for path in sorted(fs.ls(entry, detail=False)):
            if _FILE.match(path.rsplit("/", 1)[-1]):  # dot-named files are being written
                with fs.open(path, "rb") as fh:
                    tables.append(pq.read_table(fh, schema=SCHEMA))
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    return table.to_pandas().sort_values("ts", kind="stable").reset_index(drop=True)


def served(predictions: pd.DataFrame) -> pd.DataFrame:
    """Successful predictions that decided a request (not the shadow scores)."""
    ok = predictions["probability"].notna() & predictions["error"].isna()
    return predictions[ok & (predictions["role"] == "served")].reset_index(drop=True)


def logged_features(predictions: pd.DataFrame) -> pd.DataFrame:
    """The model inputs each prediction was made with, one row per prediction (same index)."""
    rows: list[dict[str, Any]] = [
        json.loads(text) if isinstance(text, str) and text else {}
        for text in predictions["features"]
    ]
    return pd.DataFrame(rows, index=predictions.index)
