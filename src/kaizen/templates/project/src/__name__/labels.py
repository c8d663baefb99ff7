"""The label: does an active account go quiet, no event at all, in the 7 days after a day?

A labelled row is one active account-day (at least one event that day). The prediction is
asked at the day's close, E = ds + 1 day 00:00 UTC; the label is 1 when the account has no
event in [E, E + 7 days) and is final at E + 7 days. Before then a row already says 0 once
a later event has been seen, else 1 provisionally: the platform keeps what is final.
"""

from __future__ import annotations

import pandas as pd

from __name__.clock import DAY

KEY = "account_id"
ROW_ID = "visit_id"
HORIZON_DAYS = 7  # kaizen.yaml's label.max_delay_days must say the same
TIMESTAMP = "datetime64[us, UTC]"
COLUMNS = [ROW_ID, KEY, "event_timestamp", "label", "final_ts"]


def active_days(events: pd.DataFrame, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per (account, UTC day) with an event before `until`: account_id, day (00:00 UTC)."""
    rows = events[events[KEY].notna()]
    if until is not None:
        rows = rows[rows["event_ts"] < until]
    days = pd.DataFrame(
        {KEY: rows[KEY].astype(str), "day": rows["event_ts"].dt.floor("D").astype(TIMESTAMP)}
    )
    return days.drop_duplicates().sort_values([KEY, "day"], kind="stable").reset_index(drop=True)


def prediction_rows(days: pd.DataFrame) -> pd.DataFrame:
    """The row id and prediction instant (the day's close) of each active account-day."""
    return pd.DataFrame(
        {
            ROW_ID: days[KEY] + ":" + days["day"].dt.strftime("%Y-%m-%d"),
            KEY: days[KEY],
            "event_timestamp": (days["day"] + DAY).astype(TIMESTAMP),
        }
    )


def no_event_within(
    frames: dict[str, pd.DataFrame], as_of: pd.Timestamp, params: object = None
) -> pd.DataFrame:
    """Every active account-day whose prediction instant is at or before `as_of`, labelled
    from the events known then (those strictly before `as_of`)."""
    as_of = pd.Timestamp(as_of)
    as_of = (as_of.tz_localize("UTC") if as_of.tz is None else as_of.tz_convert("UTC")).as_unit(
        "us"
    )
    days = active_days(frames["events"], until=as_of)
    rows = prediction_rows(days)
    # The next active day comes within the horizon iff some event lands in [E, E + 7 days).
    next_day = days.groupby(KEY)["day"].shift(-1)
    returned = (next_day - days["day"]) <= HORIZON_DAYS * DAY
    rows["label"] = (~returned).astype("int64")
    rows["final_ts"] = (rows["event_timestamp"] + HORIZON_DAYS * DAY).astype(TIMESTAMP)
    return rows[rows["event_timestamp"] <= as_of][COLUMNS].reset_index(drop=True)
