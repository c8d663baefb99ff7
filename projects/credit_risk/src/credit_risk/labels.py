"""The label hook: every invoice issued before an instant, with its late label as known then.

An invoice is asked about when it is issued (the customer asks to buy `requested_amount` on
credit). Its label is final at its due date + `late_after_days`: by then it is either paid
(late or not) or late for good. A payment in time settles it earlier: the invoice is a known
negative from the instant the lake holds that payment (its row's `updated_at`).
"""

from __future__ import annotations

import pandas as pd

from credit_risk.invoices import invoice_states
from credit_risk.params import CreditRiskParams
from kaizen.transforms.contract import TIMESTAMP, midnight_utc


def invoice_labels(
    frames: dict[str, pd.DataFrame], as_of: pd.Timestamp, params: CreditRiskParams
) -> pd.DataFrame:
    """invoice_id, customer_id, event_timestamp (issued), requested_amount, label, final_ts,
    known_ts."""
    late_after = params.featurize.late_after_days
    states = invoice_states(frames["payments"], as_of, late_after)
    final_ts = midnight_utc(states["due_date"]) + pd.Timedelta(days=late_after)
    paid_in_time = states["is_paid"] & ~states["is_late"]
    known_ts = states["updated_at"].where(paid_in_time, final_ts).clip(upper=final_ts)
    return pd.DataFrame(
        {
            "invoice_id": states["invoice_id"],
            "customer_id": states["customer_id"],
            "event_timestamp": states["issued_ts"].astype(TIMESTAMP),
            "requested_amount": states["amount"],
            "label": states["is_late"].astype("int64"),
            "final_ts": final_ts.astype(TIMESTAMP),
            "known_ts": known_ts.astype(TIMESTAMP),
        }
    ).reset_index(drop=True)
