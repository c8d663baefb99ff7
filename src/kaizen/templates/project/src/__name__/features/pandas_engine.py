"""The __name__ feature views on pandas: vectorised and pure, one day at a time."""

from __future__ import annotations

import pandas as pd

from __name__.clock import DAY, as_of
from __name__.features import ACCOUNT_TIEBREAK, KEY, PURCHASE, view_columns
from __name__.params import FeaturizeParams, ProjectParams


def compute_features(
    frames: dict[str, pd.DataFrame], ds: str, params: ProjectParams
) -> dict[str, pd.DataFrame]:
    """Both views for day `ds`, one row per account signed up before as_of(ds), by account_id."""
    p = params.featurize
    cutoff = as_of(ds)
    known = accounts_as_of(frames["accounts"], cutoff)
    views = {
        "account_profile": account_profile(known, cutoff),
        "account_activity": account_activity(known, frames["events"], cutoff, p),
    }
    return {
        name: views[name][list(dtypes)].astype(dtypes).reset_index(drop=True)
        for name, dtypes in view_columns(p).items()
    }


def accounts_as_of(accounts: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Each account's latest row changed before `cutoff`, for accounts signed up before it."""
    rows = accounts[accounts[KEY].notna() & (accounts["updated_at"] < cutoff)]
    rows = rows.sort_values([KEY, *ACCOUNT_TIEBREAK], kind="stable")
    latest = rows.drop_duplicates(KEY, keep="last")
    return latest[latest["signup_ts"] < cutoff].reset_index(drop=True)


def account_profile(known: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        {
            KEY: known[KEY],
            "age_days": (cutoff - known["signup_ts"]) // DAY,
            "plan": known["plan"],
            "country": known["country"],
            "device": known["device"],
        }
    )


def account_activity(
    known: pd.DataFrame, events: pd.DataFrame, cutoff: pd.Timestamp, p: FeaturizeParams
) -> pd.DataFrame:
    s, n = p.windows.short_days, p.windows.long_days
    ids = known[KEY]
    ts = events["event_ts"]
    recent = events[(ts < cutoff) & (ts >= cutoff - n * DAY) & events[KEY].isin(ids)]
    ts = recent["event_ts"]
    by_account = recent.groupby(KEY)
    count = by_account.size().reindex(ids, fill_value=0)
    short = recent[ts >= cutoff - s * DAY].groupby(KEY).size().reindex(ids, fill_value=0)
    active_days = ts.dt.floor("D").groupby(recent[KEY]).nunique().reindex(ids, fill_value=0)
    purchases = (recent["kind"] == PURCHASE).groupby(recent[KEY]).sum().reindex(ids, fill_value=0)
    duration = by_account["duration_s"].sum().round(3).reindex(ids)
    since = ((cutoff - by_account["event_ts"].max()) // DAY).reindex(ids).fillna(n)
    return pd.DataFrame(
        {
            KEY: ids.to_numpy(),
            f"events_{s}d": short.to_numpy(),
            f"events_{n}d": count.to_numpy(),
            f"active_days_{n}d": active_days.to_numpy(),
            # No event in the window, no average: missing, never a made-up 0.
            f"avg_duration_{n}d": (duration / count.where(count > 0)).to_numpy(),
            "days_since_last_event": since.to_numpy(),
            f"purchases_{n}d": purchases.to_numpy(),
        }
    )
