"""An invoice's state and late label as of an instant: one definition for features and labels.

The payments source is change data: an invoice has a row when it is issued and another when
it is paid, so its state as of T is its latest row with `updated_at < T` (when two rows share
an `updated_at`, the settled one wins). With a threshold of L days (`late_after_days`):

* late:     paid with `paid_ts - due_date >= L days`, or still open at T with `T >= due + L days`;
* resolved: paid, or still open at T with `T >= due + L days` (its label can no longer change);
* days late: whole days from the due date to `paid_ts` (paid) or to T (open), never below 0.

Due dates are calendar dates; they mean 00:00 UTC of that day.
"""

from __future__ import annotations

import pandas as pd

from kaizen.transforms.contract import midnight_utc

DAY = pd.Timedelta(days=1)


def invoice_states(
    payments: pd.DataFrame, as_of: pd.Timestamp, late_after_days: int
) -> pd.DataFrame:
    """One row per invoice issued before `as_of`: its latest known row, labelled as of `as_of`.

    Returns the payments columns plus `is_paid`, `is_late`, `is_resolved` (bool) and
    `days_late` (int64), in invoice order. `as_of` must be time-zone aware.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be time-zone aware (UTC)")
    known = payments[payments["updated_at"] < as_of]
    known = known.sort_values(
        ["invoice_id", "updated_at", "paid_ts"], na_position="first", kind="stable"
    )
    latest = known.drop_duplicates("invoice_id", keep="last")
    latest = latest[latest["issued_ts"] < as_of].reset_index(drop=True)

    due = midnight_utc(latest["due_date"])
    is_paid = latest["paid_ts"].notna()
    # Time past due: to the payment when paid, to the as-of instant while open.
    past_due = (latest["paid_ts"] - due).where(is_paid, as_of - due)
    threshold = pd.Timedelta(days=late_after_days)
    is_late = past_due >= threshold
    return latest.assign(
        is_paid=is_paid,
        is_late=is_late,
        is_resolved=is_paid | is_late,
        days_late=(past_due // DAY).clip(lower=0).astype("int64"),
    )
