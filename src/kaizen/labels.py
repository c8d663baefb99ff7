"""Labelled rows, from the project's label hook: the one place labels come from.

The hook (kaizen.yaml `label.hook`) yields every row known as of an instant: its row id,
join keys, event time, request fields, its label as known then, the instant it is final
and, optionally, the earlier instant it became known (`known_ts`). Training sets, live
quality, the positive rate and the scoreboard all read it here, so the rule that says when
a label is known is written once, in the project.

As of an instant T each row is in one of three states: resolved positive or resolved
negative (known by T), or censored (not known yet; its provisional label says nothing).
Label lag makes the newest rows censored, and censoring depends on the label (a negative
can settle early, a positive only at its deadline), so a reader that keeps only resolved
rows is biased; the states, with how long each row has been watched, let it correct for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kaizen.errors import ConfigError
from kaizen.project.project import EVENT_TIMESTAMP, FINAL_TS, KNOWN_TS, LABEL
from kaizen.runtime import Runtime
from kaizen.transforms.contract import as_of

__all__ = [
    "CENSORED",
    "ELAPSED_DAYS",
    "EVENT_TIMESTAMP",
    "FINAL_TS",
    "KNOWN_TS",
    "LABEL",
    "LABEL_TIMES",
    "NEGATIVE",
    "POSITIVE",
    "RESOLVED_DAYS",
    "STATE",
    "final_rows",
    "label_rows",
    "label_states",
    "read_frames",
    "states_as_of",
]

STATE = "state"
POSITIVE, NEGATIVE, CENSORED = "positive", "negative", "censored"
ELAPSED_DAYS = "elapsed_days"  # days from the event to the as-of instant: how long it was watched
RESOLVED_DAYS = "resolved_days"  # days from the event until its label was known (NaN: censored)
DAY = pd.Timedelta(days=1)
# When a label is known: never a model input, dropped before a row meets its features.
LABEL_TIMES = [FINAL_TS, KNOWN_TS]


# A declared column's dtype in a silver frame with no rows.
EMPTY_DTYPES = {
    "string": "object",
    "int64": "int64",
    "float64": "float64",
    "bool": "bool",
    "date": "object",
    "timestamp": "datetime64[us, UTC]",
}


def empty_frame(rt: Runtime, source: str) -> pd.DataFrame:
    """A source as silver holds it, with no rows (typed, so a hook's arithmetic works)."""
    columns = rt.catalog.get(source).columns
    return pd.DataFrame({c: pd.Series(dtype=EMPTY_DTYPES[col.type]) for c, col in columns.items()})


def read_frames(rt: Runtime, sources: list[str], ds: str) -> dict[str, pd.DataFrame]:
    """Every validated partition up to `ds` of each source, as pandas (empty if none yet)."""
    frames = {}
    for source in sources:
        dates = [d for d in rt.lake.partitions("silver", source) if d <= ds]
        table = rt.lake.read_many("silver", source, dates) if dates else None
        frames[source] = empty_frame(rt, source) if table is None else table.to_pandas()
    return frames


def expected_columns(rt: Runtime) -> list[str]:
    p = rt.project
    return [*p.key_columns, *p.request_fields, LABEL, FINAL_TS, KNOWN_TS]


def check_rows(rt: Runtime, rows: object) -> pd.DataFrame:
    """The hook's result, or one line naming the hook and what is wrong with it."""
    where = rt.project.where("label.hook")
    if not isinstance(rows, pd.DataFrame):
        raise ConfigError(f"{where}: must return a pandas DataFrame, not {type(rows).__name__}")
    required = [c for c in expected_columns(rt) if c != KNOWN_TS]  # known_ts is optional
    missing = [c for c in required if c not in rows.columns]
    if missing:
        raise ConfigError(f"{where}: the rows lack the columns {missing}")
    rows = rows.copy()
    if KNOWN_TS not in rows.columns:  # optional: known only when final
        rows[KNOWN_TS] = rows[FINAL_TS]
    for column in (EVENT_TIMESTAMP, FINAL_TS, KNOWN_TS):
        stamps = rows[column]
        if rows.empty:  # no rows yet: nothing to say about their type
            stamps = pd.to_datetime(stamps, utc=True)
        elif not isinstance(stamps.dtype, pd.DatetimeTZDtype):
            raise ConfigError(f"{where}: {column} must be UTC timestamps (got {stamps.dtype})")
        rows[column] = stamps.dt.tz_convert("UTC").dt.as_unit("us")  # one unit to compare in
    if len(rows) and not rows[LABEL].isin([0, 1]).all():
        raise ConfigError(f"{where}: label must be 0 or 1")
    if rows[rt.project.row_id].duplicated().any():
        raise ConfigError(f"{where}: {rt.project.row_id} must be unique")
    if (rows[KNOWN_TS].isna() | (rows[KNOWN_TS] > rows[FINAL_TS])).any():
        raise ConfigError(f"{where}: {KNOWN_TS} must be set and not after {FINAL_TS}")
    return rows[expected_columns(rt)].reset_index(drop=True)


def label_rows(rt: Runtime, ds: str) -> pd.DataFrame:
    """Every labelled row known at the close of `ds`, final or not, sorted by event time."""
    declared = rt.project.declaration.label
    frames = read_frames(rt, declared.sources, ds)
    hook = rt.project.hook("label.hook")
    rows = check_rows(rt, hook(frames, as_of(ds), rt.project_params))
    rows = rows[rows[EVENT_TIMESTAMP] < as_of(ds)]
    return rows.sort_values([EVENT_TIMESTAMP, rt.project.row_id], kind="stable").reset_index(
        drop=True
    )


def final_rows(rt: Runtime, ds: str) -> pd.DataFrame:
    """The rows whose label is final by the close of `ds`."""
    rows = label_rows(rt, ds)
    return rows[rows[FINAL_TS] <= as_of(ds)].reset_index(drop=True)


def states_as_of(rows: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """`rows` (the hook's, checked) with each row's state as of `at`: its STATE, how long it
    has been watched (ELAPSED_DAYS) and, once resolved, how long it took (RESOLVED_DAYS).
    Rows whose event is not before `at` are dropped: they were not asked about yet."""
    rows = rows[rows[EVENT_TIMESTAMP] < at].copy()
    resolved = (rows[KNOWN_TS] <= at).to_numpy()
    positive = (rows[LABEL] == 1).to_numpy()
    rows[STATE] = np.where(resolved, np.where(positive, POSITIVE, NEGATIVE), CENSORED)
    rows[ELAPSED_DAYS] = (at - rows[EVENT_TIMESTAMP]) / DAY
    rows[RESOLVED_DAYS] = ((rows[KNOWN_TS] - rows[EVENT_TIMESTAMP]) / DAY).where(resolved)
    return rows.reset_index(drop=True)


def label_states(rt: Runtime, ds: str) -> pd.DataFrame:
    """Every labelled row known at the close of `ds`, with its state then (`states_as_of`)."""
    return states_as_of(label_rows(rt, ds), as_of(ds))
