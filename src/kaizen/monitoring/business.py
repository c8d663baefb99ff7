"""The business metric: the positive rate, from delayed labels.

A row's label is final at its `final_ts` (the project's label hook says when). The rate of
day D is measured over the rows whose label became final in the `positive_rate_window_days`
ending with D: the newest complete evidence, behind the requests by the label's delay.
Reaching `positive_rate_alert` is a breach.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kaizen.labels import FINAL_TS, LABEL, final_rows
from kaizen.params import MonitorParams
from kaizen.runtime import Runtime
from kaizen.transforms.contract import as_of


def final_labels(rt: Runtime, ds: str) -> pd.DataFrame:
    """Every row whose label is final by the close of `ds` (the label hook's columns)."""
    return final_rows(rt, ds)


def positive_rate(labels: pd.DataFrame, ds: str, p: MonitorParams) -> dict[str, Any]:
    """The positive rate over the labels final in the window ending with `ds`, and its verdict."""
    end = as_of(ds)
    start = end - pd.Timedelta(days=p.positive_rate_window_days)
    recent = labels[(labels[FINAL_TS] > start) & (labels[FINAL_TS] <= end)]
    rows, positives = len(recent), int(recent[LABEL].sum())
    rate = positives / rows if rows else None
    judged = rows >= p.positive_rate_min_labels
    return {
        "window": [str(start.date()), ds],
        "labels": rows,
        "positives": positives,
        "rate": round(rate, 6) if rate is not None else None,
        "threshold": p.positive_rate_alert,
        "judged": judged,
        "reason": "" if judged else f"{rows} final labels < monitor.positive_rate_min_labels",
        "breach": bool(judged and rate is not None and rate >= p.positive_rate_alert),
    }


def daily_positive_rates(labels: pd.DataFrame, ds: str, days: int) -> pd.DataFrame:
    """Per day (when the labels became final) over the last `days`: labels and positive rate."""
    if labels.empty:
        return pd.DataFrame(columns=["day", "labels", "rate"])
    day = (pd.to_datetime(labels[FINAL_TS], utc=True) - pd.Timedelta(microseconds=1)).dt.date
    frame = pd.DataFrame({"day": day.astype(str), LABEL: labels[LABEL].to_numpy()})
    first = (pd.Timestamp(ds) - pd.Timedelta(days=days - 1)).date().isoformat()
    frame = frame[(frame["day"] >= first) & (frame["day"] <= ds)]
    out = frame.groupby("day")[LABEL].agg(labels="count", rate="mean").reset_index()
    return out.sort_values("day").reset_index(drop=True)
