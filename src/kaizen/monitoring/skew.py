"""Training-serving skew: the features a prediction was made with vs an offline recomputation.

Each logged request (join keys, instant, request fields) is joined point in time again with
the model's feature service, the way training sets are built. Per input the share of
requests whose logged value differs from the recomputed one is reported: numbers differ when
`|a - b| > skew_tolerance * max(1, |b|)`, text when unequal, and a value present on one side
only is a mismatch. A shared cause (a stale online store, a transform that differs between
engines) shows up as one or a few features with a high share.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kaizen.monitoring.predictions import logged_features
from kaizen.monitoring.window import offline_features
from kaizen.params import MonitorParams
from kaizen.runtime import Runtime
from kaizen.transforms.contract import EVENT_TIMESTAMP

MAX_ROWS = 5000  # a day's sample is plenty to see a systematic difference


def mismatches(logged: pd.Series, offline: pd.Series, tolerance: float) -> np.ndarray:
    """True where the two sides differ (both missing is equal)."""
    a_missing, b_missing = logged.isna().to_numpy(), offline.isna().to_numpy()
    a_num = pd.to_numeric(logged, errors="coerce")
    b_num = pd.to_numeric(offline, errors="coerce")
    numeric = (a_num.notna() | logged.isna()).all() and (b_num.notna() | offline.isna()).all()
    if numeric:
        a, b = a_num.to_numpy(dtype=float), b_num.to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            differ = np.abs(a - b) > tolerance * np.maximum(1.0, np.abs(b))
    else:
        differ = logged.astype(str).to_numpy() != offline.astype(str).to_numpy()
    return np.where(a_missing & b_missing, False, np.where(a_missing | b_missing, True, differ))


def skew(
    rt: Runtime, predictions: pd.DataFrame, inputs: list[str], service: str, p: MonitorParams
) -> dict[str, Any]:
    """Mismatch share per input over the logged requests (one row per request)."""
    requests = predictions.drop_duplicates("request_id").head(MAX_ROWS).reset_index(drop=True)
    if requests.empty:
        return {"judged": False, "reason": "no live traffic yet", "rows": 0, "features": {}}
    logged = logged_features(requests)
    asked = [*rt.project.join_keys, *rt.project.request_fields]
    entity = requests[["request_id", *asked]].assign(**{EVENT_TIMESTAMP: requests["ts"]})
    offline = (
        offline_features(rt, entity, service).set_index("request_id").loc[entity["request_id"]]
    )
    features = {}
    for name in inputs:
        if name not in offline.columns:
            continue
        theirs = logged[name] if name in logged.columns else pd.Series(np.nan, index=logged.index)
        differ = mismatches(
            theirs.reset_index(drop=True), offline[name].reset_index(drop=True), p.skew_tolerance
        )
        features[name] = round(float(differ.mean()), 6)
    worst = max(features.values(), default=0.0)
    return {
        "judged": True,
        "rows": len(requests),
        "features": features,
        "max_share": worst,
        "skewed": sorted(k for k, v in features.items() if v > p.skew_alert),
        "breach": worst > p.skew_alert,
    }
