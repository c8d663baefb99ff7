"""The business metric: the 30-day late rate, from delayed labels.

An invoice's label (paid `late_after_days` or more after its due date, or not) is final once
due date + `late_after_days` has passed. The late rate of day D is measured over the invoices
whose label became final in the `late_rate_window_days` ending with D: the newest complete
evidence, about 30 days behind the requests themselves. Reaching `late_rate_alert` (10%,
twice the normal 5%) is a breach.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kaizen.params import MonitorParams
from kaizen.runtime import Runtime
from kaizen.transforms.invoices import invoice_states
from kaizen.transforms.views import as_of, midnight_utc


def final_labels(rt: Runtime, ds: str) -> pd.DataFrame:
    """Every invoice whose label is final by the close of `ds`: invoice_id, customer_id,
    issued_ts, final_ts (when the label became final), label (1 = late)."""
    late_after = rt.params.featurize.late_after_days
    dates = [d for d in rt.lake.partitions("silver", "payments") if d <= ds]
    table = rt.lake.read_many("silver", "payments", dates)
    columns = ["invoice_id", "customer_id", "issued_ts", "final_ts", "label"]
    if table is None:
        return pd.DataFrame(columns=columns)
    cutoff = as_of(ds)
    states = invoice_states(table.to_pandas(), cutoff, late_after)
    final_ts = midnight_utc(states["due_date"]) + pd.Timedelta(days=late_after)
    # The same rule as the training set's labels: final once due + late_after_days passed
    # (counting a punctual payer earlier would bias recent days towards "on time").
    done = final_ts <= cutoff
    return pd.DataFrame(
        {
            "invoice_id": states["invoice_id"][done].to_numpy(),
            "customer_id": states["customer_id"][done].to_numpy(),
            "issued_ts": states["issued_ts"][done].to_numpy(),
            "final_ts": final_ts[done].to_numpy(),
            "label": states["is_late"][done].astype("int64").to_numpy(),
        }
    )


def late_rate(labels: pd.DataFrame, ds: str, p: MonitorParams) -> dict[str, Any]:
    """The late rate over the labels final in the window ending with `ds`, and its verdict."""
    end = as_of(ds)
    start = end - pd.Timedelta(days=p.late_rate_window_days)
    recent = labels[(labels["final_ts"] > start) & (labels["final_ts"] <= end)]
    rows, late = len(recent), int(recent["label"].sum())
    rate = late / rows if rows else None
    judged = rows >= p.late_rate_min_labels
    return {
        "window": [str(start.date()), ds],
        "labels": rows,
        "late": late,
        "rate": round(rate, 6) if rate is not None else None,
        "threshold": p.late_rate_alert,
        "judged": judged,
        "reason": "" if judged else f"{rows} final labels < monitor.late_rate_min_labels",
        "breach": bool(judged and rate is not None and rate >= p.late_rate_alert),
    }


def daily_late_rates(labels: pd.DataFrame, ds: str, days: int) -> pd.DataFrame:
    """Per day (when the labels became final) over the last `days`: labels and late rate."""
    if labels.empty:
        return pd.DataFrame(columns=["day", "labels", "rate"])
    day = (pd.to_datetime(labels["final_ts"], utc=True) - pd.Timedelta(microseconds=1)).dt.date
    frame = pd.DataFrame({"day": day.astype(str), "label": labels["label"].to_numpy()})
    first = (pd.Timestamp(ds) - pd.Timedelta(days=days - 1)).date().isoformat()
    frame = frame[(frame["day"] >= first) & (frame["day"] <= ds)]
    out = frame.groupby("day")["label"].agg(labels="count", rate="mean").reset_index()
    return out.sort_values("day").reset_index(drop=True)
