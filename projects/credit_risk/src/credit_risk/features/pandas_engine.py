"""The credit-risk feature views on pandas: vectorised and pure, one day at a time.

Inputs are the silver tables as declared in kaizen.yaml (tz-aware UTC timestamps, dates as
dates); see `kaizen.transforms.contract` for the as-of rule. Money sums
are rounded to cents so every engine, and every rerun, gives the same values whatever order
the rows were added in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from credit_risk.features.schema import CUSTOMER_TIEBREAK, ENTITY
from credit_risk.invoices import invoice_states
from credit_risk.params import CreditRiskParams, FeaturizeParams
from kaizen.transforms.contract import as_of, midnight_utc


def compute_features(
    frames: dict[str, pd.DataFrame], ds: str, params: CreditRiskParams
) -> dict[str, pd.DataFrame]:
    """Every feature view for day `ds`, keyed by view name, one row per known customer."""
    p = params.featurize
    cutoff = as_of(ds)
    known = customers_as_of(frames["customers"], ds)
    return {
        "customer_profile": customer_profile(known, ds, p),
        "customer_activity": customer_activity(known, frames["orders"], cutoff, p),
        "customer_payments": customer_payments(known, frames["payments"], cutoff, p),
    }


def customers_as_of(customers: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Each customer's latest row before as_of(ds), for customers signed up by `ds`."""
    cutoff = as_of(ds)
    rows = customers[customers["updated_at"] < cutoff]
    rows = rows.sort_values(
        [ENTITY, "updated_at", *CUSTOMER_TIEBREAK], na_position="first", kind="stable"
    )
    latest = rows.drop_duplicates(ENTITY, keep="last")
    return latest[midnight_utc(latest["signup_date"]) < cutoff].reset_index(drop=True)


def customer_profile(known: pd.DataFrame, ds: str, p: FeaturizeParams) -> pd.DataFrame:
    day = pd.Timestamp(ds, tz="UTC")
    return pd.DataFrame(
        {
            ENTITY: known[ENTITY],
            "tenure_days": (day - midnight_utc(known["signup_date"])).dt.days,
            "credit_limit": known["credit_limit"],
            "annual_income": known["annual_income"],
            "region": known["region"],
            "income_band": income_band(known["annual_income"], p),
        }
    )


def income_band(income: pd.Series, p: FeaturizeParams) -> pd.Series:
    """The band label of each income: band i is [edge i-1, edge i); a missing income has none."""
    labels = np.asarray(p.income_band_labels, dtype=object)
    position = np.searchsorted(np.asarray(p.income_band_edges), income.to_numpy(float), "right")
    return pd.Series(np.where(income.isna(), None, labels[position]), index=income.index)


def customer_activity(
    known: pd.DataFrame, orders: pd.DataFrame, cutoff: pd.Timestamp, p: FeaturizeParams
) -> pd.DataFrame:
    ids = known[ENTITY]
    longest = pd.Timedelta(days=max(p.activity_windows_days))
    recent = orders[(orders["order_ts"] < cutoff) & (orders["order_ts"] > cutoff - longest)]
    out = {ENTITY: ids.to_numpy()}
    for n in p.activity_windows_days:
        inside = recent[recent["order_ts"] > cutoff - pd.Timedelta(days=n)]
        per = inside.groupby(ENTITY)["amount"].agg(["size", "sum"]).reindex(ids)
        count = per["size"].fillna(0).astype("int64")
        spend = per["sum"].fillna(0.0).round(2)
        out[f"orders_{n}d"] = count.to_numpy()
        out[f"spend_{n}d"] = spend.to_numpy()
        out[f"aov_{n}d"] = (spend / count.where(count > 0)).fillna(0.0).to_numpy()
    return pd.DataFrame(out)


def customer_payments(
    known: pd.DataFrame, payments: pd.DataFrame, cutoff: pd.Timestamp, p: FeaturizeParams
) -> pd.DataFrame:
    ids = known[ENTITY]
    w = p.payments_window_days
    states = invoice_states(payments, cutoff, p.late_after_days)
    inside = states[states["issued_ts"] > cutoff - pd.Timedelta(days=w)]
    per = inside.groupby(ENTITY).agg(
        invoices=("invoice_id", "size"),
        late=("is_late", "sum"),
        resolved=("is_resolved", "sum"),
        max_days_late=("days_late", "max"),
    )
    per = per.reindex(ids).fillna(0).astype("int64")
    open_balance = (
        states[~states["is_paid"]].groupby(ENTITY)["amount"].sum().reindex(ids).fillna(0.0)
    ).round(2)
    limit = known.set_index(ENTITY)["credit_limit"]
    return pd.DataFrame(
        {
            ENTITY: ids.to_numpy(),
            f"invoices_{w}d": per["invoices"].to_numpy(),
            f"late_count_{w}d": per["late"].to_numpy(),
            # No resolved invoice, no ratio: missing, never a made-up 0.
            f"late_ratio_{w}d": (
                per["late"] / per["resolved"].where(per["resolved"] > 0)
            ).to_numpy(),
            f"max_days_late_{w}d": per["max_days_late"].to_numpy(),
            "open_balance": open_balance.to_numpy(),
            "open_balance_ratio": (open_balance / limit.where(limit > 0)).to_numpy(),
        }
    )
