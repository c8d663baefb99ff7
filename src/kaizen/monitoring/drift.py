"""Data drift per model input and prediction drift, with evidently's statistics.

Per column two of evidently's drift statistics run on the same data: PSI (how much the
distribution moved) and a test (KS for numbers, chi-squared for categories: is the move more
than sampling noise). They are evidently's own stat tests, called as its `ValueDrift` metric
calls them (infinities and missing values dropped first), without the Report around them: a
Report renders a plotly widget and copies the whole frame for every metric, which was about
two thirds of a monitor run (`tests/test_monitoring.py` checks both give the same numbers). A column drifts when both say so: PSI above `psi_threshold` *and* the
p-value below `p_value`. Large windows make any test significant and tiny windows make any
PSI noisy; requiring both keeps a stable world quiet. A missing category value is a category
of its own ("missing"), so a feature going missing is drift too.

The data drift breach is the share of drifted inputs above `drift_share`; prediction drift
compares the champion's served scores with its scores on its holdout.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from kaizen.params import MonitorParams

MISSING = "missing"


def _clean(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else round(value, 6)


def column_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    p: MonitorParams,
) -> list[dict[str, Any]]:
    """PSI and the KS / chi-squared p-value of every column, with its verdict."""
    columns = [*numeric, *categorical]
    # An input the current rows lack (an older log) is all missing there: drift, not a crash.
    ref, cur = reference.reindex(columns=columns), current.reindex(columns=columns)
    for frame in (ref, cur):
        for c in categorical:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), MISSING).astype(str)
        for c in numeric:
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    # A numeric column empty on either side cannot be compared: reported, never judged.
    judged = [c for c in numeric if ref[c].notna().any() and cur[c].notna().any()]
    judged += categorical
    values: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in judged:
            kind = "cat" if c in categorical else "num"
            test = "chisquare" if c in categorical else "ks"
            values += [_score(ref[c], cur[c], kind, "psi"), _score(ref[c], cur[c], kind, test)]
    out = []
    for i, c in enumerate(judged):
        psi, pvalue = _clean(values[2 * i]), _clean(values[2 * i + 1])
        drifted = psi is not None and pvalue is not None
        drifted = drifted and psi > p.psi_threshold and pvalue < p.p_value
        out.append(
            {
                "feature": c,
                "kind": "categorical" if c in categorical else "numeric",
                "psi": psi,
                "test": "chisquare" if c in categorical else "ks",
                "p_value": pvalue,
                "drifted": bool(drifted),
                "reference_mean": _mean(ref[c]) if c in numeric else None,
                "current_mean": _mean(cur[c]) if c in numeric else None,
            }
        )
    for c in numeric:
        if c not in judged:
            out.append(
                {"feature": c, "kind": "numeric", "psi": None, "test": "ks", "p_value": None}
                | {"drifted": False, "reference_mean": None, "current_mean": None}
            )
    return out


def _score(reference: pd.Series, current: pd.Series, kind: str, method: str) -> float:
    """evidently's `method` drift score of one column, on the values its ValueDrift judges."""
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    ref = reference.replace([-np.inf, np.inf], np.nan).dropna()
    cur = current.replace([-np.inf, np.inf], np.nan).dropna()
    column_type = ColumnType(
        kind
    )  # an enum: the tests compare it, a plain "num" reads as a category
    return get_stattest(ref, cur, column_type, method)(ref, cur, column_type, None).drift_score


def _mean(values: pd.Series) -> float | None:
    return _clean(values.mean()) if values.notna().any() else None


def data_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    p: MonitorParams,
) -> dict[str, Any]:
    """Every input's drift and the verdict: breach when the drifted share exceeds drift_share."""
    base = {"reference_rows": len(reference), "current_rows": len(current)}
    if len(current) < p.min_rows:
        return base | {
            "judged": False,
            "reason": f"{len(current)} current rows < monitor.min_rows={p.min_rows}",
            "features": [],
            "drifted": [],
            "share": None,
            "breach": False,
        }
    features = column_drift(reference, current, numeric, categorical, p)
    drifted = [f["feature"] for f in features if f["drifted"]]
    share = len(drifted) / len(features) if features else 0.0
    return base | {
        "judged": True,
        "features": features,
        "drifted": drifted,
        "share": round(share, 6),
        "breach": share > p.drift_share,
    }


def prediction_drift(
    reference_scores: np.ndarray, current_scores: np.ndarray, p: MonitorParams
) -> dict[str, Any]:
    """Served champion scores vs its holdout scores: PSI and KS; breach on PSI and p-value."""
    base = {"reference_rows": len(reference_scores), "current_rows": len(current_scores)}
    if len(current_scores) < p.min_rows:
        return base | {
            "judged": False,
            "reason": f"{len(current_scores)} served scores < monitor.min_rows={p.min_rows}",
            "breach": False,
        }
    ref = pd.DataFrame({"probability": np.asarray(reference_scores, dtype=float)})
    cur = pd.DataFrame({"probability": np.asarray(current_scores, dtype=float)})
    strict = p.model_copy(update={"psi_threshold": p.prediction_psi_threshold})
    (row,) = column_drift(ref, cur, ["probability"], [], strict)
    return base | {
        "judged": True,
        "psi": row["psi"],
        "p_value": row["p_value"],
        "reference_mean": row["reference_mean"],
        "current_mean": row["current_mean"],
        "breach": row["drifted"],
    }
