"""The feature views' contract: names, columns and dtypes, and the instant a day closes.

Features for day `ds` are computed as of `as_of(ds)`, the instant the day closed
(ds + 1 day at 00:00 UTC): only events strictly before it are used, and every row's
`event_timestamp` is that instant. Windowed features cover (as_of - N days, as_of).

Column names follow the windows in `params.yaml` (`orders_30d`, `invoices_180d`), so the
contract is computed from the parameters rather than listed a second time. Both engines
return exactly these columns in this order; `conform` casts a frame to them.
"""

from __future__ import annotations

import pandas as pd

from kaizen.interval import day_bounds
from kaizen.params import FeaturizeParams

ENTITY = "customer_id"
EVENT_TIMESTAMP = "event_timestamp"
TIMESTAMP = "datetime64[us, UTC]"  # microseconds, like the lake: Spark cannot read nanoseconds
STRING = "object"  # what pyarrow and Spark hand back for text columns
VIEWS = ("customer_profile", "customer_activity", "customer_payments")
# When two rows of a customer share an `updated_at`, the largest of these wins (any engine).
CUSTOMER_TIEBREAK = ("signup_date", "region", "annual_income", "credit_limit")


def as_of(ds: str) -> pd.Timestamp:
    """The instant day `ds` closed (ds + 1 day, 00:00 UTC); only events before it count."""
    return pd.Timestamp(day_bounds(ds)[1]).as_unit("us")


def view_dtypes(p: FeaturizeParams) -> dict[str, dict[str, str]]:
    """Every view's columns, in order, with their pandas dtypes."""
    key = {ENTITY: "int64", EVENT_TIMESTAMP: TIMESTAMP}
    activity: dict[str, str] = {}
    for n in p.activity_windows_days:
        activity |= {f"orders_{n}d": "int64", f"spend_{n}d": "float64", f"aov_{n}d": "float64"}
    w = p.payments_window_days
    return {
        "customer_profile": key
        | {
            "tenure_days": "int64",
            "credit_limit": "float64",
            "annual_income": "float64",
            "region": STRING,
            "income_band": STRING,
        },
        "customer_activity": key | activity,
        "customer_payments": key
        | {
            f"invoices_{w}d": "int64",
            f"late_count_{w}d": "int64",
            f"late_ratio_{w}d": "float64",
            f"max_days_late_{w}d": "int64",
            "open_balance": "float64",
            "open_balance_ratio": "float64",
        },
    }


def conform(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """`frame` with exactly the contract's columns, in order and dtype, sorted by entity."""
    missing = [c for c in dtypes if c not in frame.columns]
    if missing:
        raise ValueError(f"feature frame lacks contract columns {missing}")
    out = frame[list(dtypes)].copy()
    for column, dtype in dtypes.items():
        if dtype == TIMESTAMP:
            stamps = pd.to_datetime(out[column])
            if stamps.dt.tz is None:
                raise ValueError(f"{column} must be time-zone aware (UTC)")
            out[column] = stamps.dt.tz_convert("UTC").dt.as_unit("us")
        else:
            out[column] = out[column].astype(dtype)
    return out.sort_values(ENTITY, kind="stable").reset_index(drop=True)


def midnight_utc(dates: pd.Series) -> pd.Series:
    """Calendar dates (`datetime.date` objects or datetime64) as their 00:00 UTC instants."""
    stamps = pd.to_datetime(dates)
    if stamps.dt.tz is None:
        return stamps.dt.tz_localize("UTC")
    return stamps.dt.tz_convert("UTC")
