"""Day boundaries, kept local so the project does not lean on platform internals that move.

Every instant is UTC with microsecond unit, the unit the lake and Spark use.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

DAY = pd.Timedelta(days=1)
DAY_US = 86_400_000_000
EPOCH = pd.Timestamp(0, tz="UTC")


def parse_ds(ds: str | dt.date) -> str:
    """`ds` as YYYY-MM-DD; a ValueError for anything else (a typo must not shift a day)."""
    if isinstance(ds, dt.date):
        return ds.isoformat()
    return dt.date.fromisoformat(ds).isoformat()


def day_start(ds: str | dt.date) -> pd.Timestamp:
    """00:00 UTC of day `ds`."""
    return pd.Timestamp(parse_ds(ds), tz="UTC").as_unit("us")


def as_of(ds: str | dt.date) -> pd.Timestamp:
    """The instant day `ds` closed (ds + 1 day, 00:00 UTC); only events before it count."""
    return day_start(ds) + DAY


def micros(ts: pd.Timestamp) -> int:
    """Epoch microseconds of a UTC instant (how Spark compares instants zone-free)."""
    return (ts - EPOCH) // pd.Timedelta(microseconds=1)
