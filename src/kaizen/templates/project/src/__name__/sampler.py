"""Traffic: the requests a load test or replay sends, one per active account-day.

The request is just the join key (no request-time fields); `event_timestamp` is when the
prediction is asked, the active day's close, as in the labelled rows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from __name__.clock import day_start, parse_ds
from __name__.labels import KEY, ROW_ID, active_days, prediction_rows

COLUMNS = [ROW_ID, KEY, "event_timestamp"]


def active_accounts_between(events: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """One request per account active on a day in [start, end), by day then account."""
    days = active_days(events)
    days = days[(days["day"] >= day_start(start)) & (days["day"] < day_start(end))]
    rows = prediction_rows(days).sort_values(["event_timestamp", KEY], kind="stable")
    return rows[COLUMNS].reset_index(drop=True)


def active_accounts(rt: Any, start: str, end: str) -> pd.DataFrame:
    """`active_accounts_between` over the silver events partitions of [start, end)."""
    start, end = parse_ds(start), parse_ds(end)
    dates = [ds for ds in rt.lake.partitions("silver", "events") if start <= ds < end]
    table = rt.lake.read_many("silver", "events", dates, columns=[KEY, "event_ts"])
    if table is None:
        events = pd.DataFrame(
            {KEY: pd.Series(dtype=object), "event_ts": pd.Series(dtype="datetime64[us, UTC]")}
        )
    else:
        events = table.to_pandas()
    return active_accounts_between(events, start, end)
