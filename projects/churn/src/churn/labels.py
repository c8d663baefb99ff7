"""The label: does an active user go quiet, no event at all, in the 7 days after a day?

A labelled row is one active user-day (at least one event that day). The prediction is
asked at the day's close, E = ds + 1 day 00:00 UTC; the label is 1 when the user has no
event in [E, E + 7 days) and is final at E + 7 days. Before then a row already says 0 once
a later event has been seen, else 1 provisionally: the platform keeps what is final. That 0
is known at the first event of the user's next active day (`known_ts`); a 1 only at E + 7 days.
"""

from __future__ import annotations

import pandas as pd

from churn.clock import DAY

KEY = "user_id"
ROW_ID = "activity_id"
HORIZON_DAYS = 7  # kaizen.yaml's label.max_delay_days must say the same
TIMESTAMP = "datetime64[us, UTC]"
COLUMNS = [ROW_ID, KEY, "event_timestamp", "label", "final_ts", "known_ts"]


def active_days(events: pd.DataFrame, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per (user, UTC day) with an event before `until`: user_id, day (00:00 UTC),
    first (the day's first event)."""
    rows = events[events[KEY].notna()]
    if until is not None:
        rows = rows[rows["event_ts"] < until]
    stamps = rows["event_ts"].astype(TIMESTAMP)
    days = pd.DataFrame({KEY: rows[KEY].astype(str), "day": stamps.dt.floor("D"), "first": stamps})
    days = days.groupby([KEY, "day"], as_index=False, sort=True)["first"].min()
    return days.sort_values([KEY, "day"], kind="stable").reset_index(drop=True)


def prediction_rows(days: pd.DataFrame) -> pd.DataFrame:
    """The row id and prediction instant (the day's close) of each active user-day."""
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
    """Every active user-day whose prediction instant is at or before `as_of`, labelled
    from the events known then (those strictly before `as_of`)."""
    as_of = pd.Timestamp(as_of)
    as_of = (as_of.tz_localize("UTC") if as_of.tz is None else as_of.tz_convert("UTC")).as_unit(
        "us"
    )
    days = active_days(frames["events"], until=as_of)
    rows = prediction_rows(days)
    # The next active day comes within the horizon iff some event lands in [E, E + 7 days).
    following = days.groupby(KEY)
    next_day, next_first = following["day"].shift(-1), following["first"].shift(-1)
    returned = (next_day - days["day"]) <= HORIZON_DAYS * DAY
    rows["label"] = (~returned).astype("int64")
    rows["final_ts"] = (rows["event_timestamp"] + HORIZON_DAYS * DAY).astype(TIMESTAMP)
    rows["known_ts"] = next_first.where(returned, rows["final_ts"]).astype(TIMESTAMP)
    return rows[rows["event_timestamp"] <= as_of][COLUMNS].reset_index(drop=True)
