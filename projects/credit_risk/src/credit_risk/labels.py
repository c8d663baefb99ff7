"""The label hook: every invoice issued before an instant, with its late label as known then.

An invoice is asked about when it is issued (the customer asks to buy `requested_amount` on
credit). Its label is final at its due date + `late_after_days`: by then it is either paid
(late or not) or late for good.
"""

from __future__ import annotations

import pandas as pd

from credit_risk.invoices import invoice_states
from credit_risk.params import CreditRiskParams
from kaizen.transforms.contract import midnight_utc


def invoice_labels(
    frames: dict[str, pd.DataFrame], as_of: pd.Timestamp, params: CreditRiskParams
) -> pd.DataFrame:
    """invoice_id, customer_id, event_timestamp (issued), requested_amount, label, final_ts."""
    late_after = params.featurize.late_after_days
    states = invoice_states(frames["payments"], as_of, late_after)
    final_ts = midnight_utc(states["due_date"]) + pd.Timedelta(days=late_after)
    return pd.DataFrame(
        {
            "invoice_id": states["invoice_id"].to_numpy(),
            "customer_id": states["customer_id"].to_numpy(),
            "event_timestamp": states["issued_ts"].to_numpy(),
            "requested_amount": states["amount"].to_numpy(),
            "label": states["is_late"].astype("int64").to_numpy(),
            "final_ts": final_ts.to_numpy(),
        }
    )
