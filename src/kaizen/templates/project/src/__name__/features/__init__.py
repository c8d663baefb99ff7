"""The two feature views, computed by either engine with the same rules and the same values.

* `account_profile`: the account's latest known row as of the day's close, and age in whole days.
* `account_activity`: events over the short and long windows ending at the day's close.

A window of N days is [as_of - N days, as_of): the N calendar days ending with `ds`. Only
events strictly before as_of(ds) count. A account with no event in the long window has
`days_since_last_event` = long_days ("that long or longer"): the history read is no longer,
so a larger number would be made up. Duration sums are rounded to milliseconds before the
average, so both engines divide the same two numbers and agree to the last bit.
"""

from __future__ import annotations

from __name__.params import FeaturizeParams

KEY = "account_id"
STRING = "object"  # what pyarrow and Spark hand back for text columns
ACCOUNT_TIEBREAK = ["updated_at", "signup_ts", "plan", "device", "country"]
PURCHASE = "purchase"


def view_columns(p: FeaturizeParams) -> dict[str, dict[str, str]]:
    """Every view's columns, in order, with their pandas dtypes (the join key first)."""
    s, n = p.windows.short_days, p.windows.long_days
    return {
        "account_profile": {
            KEY: STRING,
            "age_days": "int64",
            "plan": STRING,
            "country": STRING,
            "device": STRING,
        },
        "account_activity": {
            KEY: STRING,
            f"events_{s}d": "int64",
            f"events_{n}d": "int64",
            f"active_days_{n}d": "int64",
            f"avg_duration_{n}d": "float64",
            "days_since_last_event": "int64",
            f"purchases_{n}d": "int64",
        },
    }
