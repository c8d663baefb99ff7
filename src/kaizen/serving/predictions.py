"""The prediction log: every prediction, served and shadow, appended to the project's lake.

`<lake_root>/predictions/ds=YYYY-MM-DD/part-<uuid>.parquet`, one file per flush and day, with
the columns of `log_schema(project)`: the request id and instant, the project's join keys
and row id and request fields (typed as kaizen.yaml declares them), then the model, the
score and decision, the features and their freshness. A file appears whole or not at all:
locally it is written under a dot-name (which readers skip) and renamed; on S3 it is a
single PUT. Unlike the lake's partitions, a day's partition only ever grows, so the log
does not go through `Lake.write` (which replaces a partition whole).

Logging never slows or fails a request: `PredictionLog.append` puts rows on a bounded
in-memory queue without blocking; a full queue drops them and counts the drops. A background
thread writes every `log_flush_rows` rows or `log_flush_seconds` seconds, and on `close()`.
A failed write is retried at the next flush, once, then dropped and counted.

`read_predictions(rt, start_ds, end_ds)` reads them back with the project's columns (the
production gate's and monitoring's input).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kaizen.errors import InputError
from kaizen.lake import Lake
from kaizen.logs import get_logger
from kaizen.project.project import Project
from kaizen.runtime import Runtime

log = get_logger(__name__)
POLL_SECONDS = 0.2  # how often the writer thread takes what the requests queued
TABLE = "predictions"
REQUEST = [("request_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC"))]
OUTCOME = [
    ("model_version", pa.string()),
    ("alias", pa.string()),
    ("role", pa.string()),  # "served" or "shadow"
    ("probability", pa.float64()),  # null when the prediction failed
    ("decision", pa.string()),
    ("features", pa.string()),  # JSON of the model's inputs
    ("fresh", pa.bool_()),
    ("latency_ms", pa.float64()),
    ("error", pa.string()),  # null when the prediction succeeded
]
# The columns every project's log has (its keys and request fields come between the two).
COMMON_SCHEMA = pa.schema([*REQUEST, *OUTCOME])
_ARROW = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_()}
_DS_DIR = re.compile(r"^ds=(\d{4}-\d{2}-\d{2})$")
_FILE = re.compile(r"^part-[0-9a-f]{32}\.parquet$")


def log_schema(project: Project) -> pa.Schema:
    """The project's prediction log: request_id, ts, the join keys (typed), the row id (a
    string), the request fields (typed), then model_version, alias, role, probability,
    decision, features (JSON), fresh, latency_ms and error."""
    d = project.declaration
    keys = tuple(d.entity.join_keys.items())
    fields = tuple((name, f.type) for name, f in d.request.fields.items())
    return _log_schema(keys, d.label.row_id, fields)


@functools.lru_cache(maxsize=32)
def _log_schema(
    keys: tuple[tuple[str, str], ...], row_id: str, fields: tuple[tuple[str, str], ...]
) -> pa.Schema:
    middle = [(k, _ARROW[t]) for k, t in keys] + [(row_id, pa.string())]
    middle += [(name, _ARROW[t]) for name, t in fields]
    return pa.schema([*REQUEST, *middle, *OUTCOME])


def log_columns(project: Project) -> list[str]:
    """The column names of the project's prediction log, in order."""
    return log_schema(project).names


def _inferred_schema(rows: list[dict[str, Any]]) -> pa.Schema:
    """Without the project: the common columns typed, the others (keys, request fields)
    as pyarrow infers them, in the rows' order."""
    common = {f.name: f for f in COMMON_SCHEMA}
    names = list(dict.fromkeys(k for row in rows for k in row))
    out = []
    for name in names:
        if name in common:
            out.append(common[name])
        else:
            out.append(pa.field(name, pa.array([r.get(name) for r in rows]).type))
    return pa.schema(out)


def _root(lake: Lake) -> tuple[Any, str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(lake.url(TABLE), **lake.storage_options)
    return fs, path.rstrip("/")


def write_rows(
    lake: Lake, rows: list[dict[str, Any]], schema: pa.Schema | None = None
) -> list[str]:
    """Write `rows` as one new file per day of their `ts`; return the paths written.
    `schema` is the project's `log_schema` (None: inferred, for tools and tests)."""
    if not rows:
        return []
    schema = schema if schema is not None else _inferred_schema(rows)
    fs, root = _root(lake)
    by_day: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(row["ts"].astimezone(dt.UTC).date().isoformat(), []).append(row)
    written = []
    for ds, day_rows in sorted(by_day.items()):
        table = pa.Table.from_pylist(day_rows, schema=schema)
        directory = f"{root}/ds={ds}"
        name = f"part-{uuid.uuid4().hex}.parquet"
        if lake.is_local:
            os.makedirs(directory, exist_ok=True)
            tmp = f"{directory}/.{name}.tmp"
            try:
                with open(tmp, "wb") as fh:
                    pq.write_table(table, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, f"{directory}/{name}")
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        else:
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            fs.pipe_file(f"{directory}/{name}", sink.getvalue().to_pybytes())  # one PUT
        written.append(f"{directory}/{name}")
    return written


def read_predictions(
    rt: Runtime, start_ds: str | None = None, end_ds: str | None = None
) -> pd.DataFrame:
    """Every logged prediction of the project's days in [start_ds, end_ds] (inclusive; None:
    open), with the columns of its `log_schema`, ordered by `ts`. No log yet: an empty frame."""
    for label, value in (("start_ds", start_ds), ("end_ds", end_ds)):
        if value is not None:
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise InputError(f"{label} {value!r} is not a date (YYYY-MM-DD)") from None
    schema = log_schema(rt.project)
    fs, root = _root(rt.lake)
    try:
        entries = fs.ls(root, detail=False)
    except FileNotFoundError:
        entries = []
    tables = []
    for entry in sorted(entries):
        match = _DS_DIR.match(entry.rstrip("/").rsplit("/", 1)[-1])
        if not match:
            continue
        ds = match.group(1)
        if (start_ds and ds < start_ds) or (end_ds and ds > end_ds):
            continue
        for path in sorted(fs.ls(entry, detail=False)):
            if _FILE.match(path.rsplit("/", 1)[-1]):
                with fs.open(path, "rb") as fh:
                    tables.append(pq.read_table(fh, schema=schema))
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    frame = table.to_pandas()
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


class PredictionLog:
    """A bounded queue of rows and the thread that writes them."""

    def __init__(
        self,
        lake: Lake,
        queue_max: int,
        flush_rows: int,
        flush_seconds: float,
        on_drop: Callable[[int], None] | None = None,
        on_written: Callable[[int], None] | None = None,
        on_write_error: Callable[[], None] | None = None,
        writer: Callable[[Lake, list[dict[str, Any]]], list[str]] | None = None,
        schema: pa.Schema | None = None,
    ) -> None:
        """`schema`: the project's `log_schema`, which the default writer writes with;
        `writer(lake, rows)` replaces that writer (tests)."""
        self.lake = lake
        self.schema = schema
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=queue_max)
        self._on_drop, self._on_written, self._on_write_error = on_drop, on_written, on_write_error
        self._writer = writer or functools.partial(write_rows, schema=schema)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry: list[dict[str, Any]] = []
        self.dropped = 0

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Queue rows without ever blocking; return how many were dropped (queue full)."""
        dropped = 0
        for row in rows:
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                dropped += 1
        if dropped:
            self.dropped += dropped
            if self._on_drop is not None:
                self._on_drop(dropped)
        return dropped

    def queued(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the thread after it has written everything queued."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        else:
            self.flush()

    def flush(self) -> int:
        """Write what is queued now (and a batch that failed before); return rows written."""
        rows, self._retry = self._retry, []
        retried = len(rows)
        while True:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return self._write(rows, retried)

    def _write(self, rows: list[dict[str, Any]], retried: int = 0) -> int:
        if not rows:
            return 0
        try:
            self._writer(self.lake, rows)
        except Exception as exc:
            if self._on_write_error is not None:
                self._on_write_error()
            fresh = rows[retried:]  # rows that already failed once are dropped now
            log.error(
                "prediction log write failed (%s: %s): %d rows kept for the next flush, %d dropped",
                type(exc).__name__,
                exc,
                len(fresh),
                retried,
            )
            self._retry = fresh
            if retried:
                self.dropped += retried
                if self._on_drop is not None:
                    self._on_drop(retried)
            return 0
        if self._on_written is not None:
            self._on_written(len(rows))
        return len(rows)

    def _run(self) -> None:
        # Polls the queue rather than blocking on it: a thread blocked in get() is woken by
        # every put(), and that switch cost each request ~0.25 ms in its own thread (py-spy).
        pending: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.flush_seconds
        while True:
            stopping = self._stop.wait(POLL_SECONDS)
            while True:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if len(pending) >= self.flush_rows or time.monotonic() >= deadline or stopping:
                retry, self._retry = self._retry, []
                self._write(retry + pending, len(retry))
                pending = []
                deadline = time.monotonic() + self.flush_seconds
                if stopping:
                    if self._retry:  # one last try on shutdown
                        self._write(self._retry, len(self._retry))
                    return
