"""What every project's transforms meet: the instant a day closes, and the published shape.

Features for day `ds` are computed as of `as_of(ds)`, the instant the day closed
(ds + 1 day at 00:00 UTC): only events strictly before it are used, and every row's
`event_timestamp` is that instant. The columns and dtypes of each view are the Feast repo's
(`kaizen.featurestore.schema`); `conform` casts a transform's frame to them.
"""

from __future__ import annotations

import pandas as pd

from kaizen.featurestore.schema import EVENT_TIMESTAMP, STRING, TIMESTAMP
from kaizen.interval import day_bounds

__all__ = ["EVENT_TIMESTAMP", "STRING", "TIMESTAMP", "as_of", "conform", "midnight_utc"]


def as_of(ds: str) -> pd.Timestamp:
    """The instant day `ds` closed (ds + 1 day, 00:00 UTC); only events before it count."""
    return pd.Timestamp(day_bounds(ds)[1]).as_unit("us")


def conform(frame: pd.DataFrame, dtypes: dict[str, str], sort_by: list[str]) -> pd.DataFrame:
    """`frame` with exactly these columns, in order and dtype, sorted by `sort_by`."""
    missing = [c for c in dtypes if c not in frame.columns]
    if missing:
        raise ValueError(f"feature frame lacks the schema's columns {missing}")
    out = frame[list(dtypes)].copy()
    for column, dtype in dtypes.items():
        if dtype == TIMESTAMP:
            stamps = pd.to_datetime(out[column])
            if stamps.dt.tz is None:
                raise ValueError(f"{column} must be time-zone aware (UTC)")
            out[column] = stamps.dt.tz_convert("UTC").dt.as_unit("us")
        else:
            out[column] = out[column].astype(dtype)
    return out.sort_values(sort_by, kind="stable").reset_index(drop=True)


def midnight_utc(dates: pd.Series) -> pd.Series:
    """Calendar dates (`datetime.date` objects or datetime64) as their 00:00 UTC instants."""
    stamps = pd.to_datetime(dates)
    if stamps.dt.tz is None:
        return stamps.dt.tz_localize("UTC")
    return stamps.dt.tz_convert("UTC")
