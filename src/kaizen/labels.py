"""Labelled rows, from the project's label hook: the one place labels come from.

The hook (kaizen.yaml `label.hook`) yields every row known as of an instant: its row id,
join keys, event time, request fields, its label as known then and the instant it is
final. Training sets, live quality, the positive rate and the scoreboard all read it here,
so the rule that says when a label is final is written once, in the project.
"""

from __future__ import annotations

import pandas as pd

from kaizen.errors import ConfigError
from kaizen.project.project import EVENT_TIMESTAMP, FINAL_TS, LABEL
from kaizen.runtime import Runtime
from kaizen.transforms.contract import as_of

__all__ = ["EVENT_TIMESTAMP", "FINAL_TS", "LABEL", "final_rows", "label_rows", "read_frames"]


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
    return [*p.key_columns, *p.request_fields, LABEL, FINAL_TS]


def check_rows(rt: Runtime, rows: object) -> pd.DataFrame:
    """The hook's result, or one line naming the hook and what is wrong with it."""
    where = rt.project.where("label.hook")
    if not isinstance(rows, pd.DataFrame):
        raise ConfigError(f"{where}: must return a pandas DataFrame, not {type(rows).__name__}")
    missing = [c for c in expected_columns(rt) if c not in rows.columns]
    if missing:
        raise ConfigError(f"{where}: the rows lack the columns {missing}")
    rows = rows.copy()
    for column in (EVENT_TIMESTAMP, FINAL_TS):
        stamps = rows[column]
        if rows.empty:  # no rows yet: nothing to say about their type
            rows[column] = pd.to_datetime(stamps, utc=True).dt.as_unit("us")
        elif not isinstance(stamps.dtype, pd.DatetimeTZDtype):
            raise ConfigError(f"{where}: {column} must be UTC timestamps (got {stamps.dtype})")
    if len(rows) and not rows[LABEL].isin([0, 1]).all():
        raise ConfigError(f"{where}: label must be 0 or 1")
    if rows[rt.project.row_id].duplicated().any():
        raise ConfigError(f"{where}: {rt.project.row_id} must be unique")
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
