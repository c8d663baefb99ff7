"""How good the scores are: discrimination, calibration, per slice, and the curves to plot."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

METRICS = ("roc_auc", "pr_auc", "brier", "log_loss")


def _clean(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def score(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """ROC AUC, PR AUC, Brier score and log loss (AUCs are None on a single-class set)."""
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-15, 1 - 1e-15)
    both = len(np.unique(y)) == 2
    return {
        "rows": len(y),
        "positives": int(y.sum()),
        "positive_rate": _clean(y.mean()) if len(y) else None,
        "roc_auc": _clean(roc_auc_score(y, p)) if both else None,
        "pr_auc": _clean(average_precision_score(y, p)) if both else None,
        "brier": _clean(brier_score_loss(y, p)) if len(y) else None,
        "log_loss": _clean(log_loss(y, p, labels=[0, 1])) if len(y) else None,
    }


def by_slice(
    y: np.ndarray, p: np.ndarray, slices: dict[str, pd.Series]
) -> dict[str, dict[str, dict[str, Any]]]:
    """The same metrics for every value of every slice column."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, values in slices.items():
        values = values.fillna("missing").astype(str).to_numpy()
        out[name] = {v: score(y[values == v], p[values == v]) for v in sorted(set(values))}
    return out


def curves(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, list[dict[str, float]]]:
    """ROC, precision-recall and calibration curves as row lists (DVC plots and MLflow)."""
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    step = max(1, len(fpr) // 400)  # keep plot files small
    return {
        "roc": [
            {"fpr": round(a, 5), "tpr": round(b, 5)}
            for a, b in zip(fpr[::step], tpr[::step], strict=True)
        ],
        "precision_recall": [
            {"recall": round(a, 5), "precision": round(b, 5)}
            for a, b in zip(
                recall[:: max(1, len(recall) // 400)],
                precision[:: max(1, len(recall) // 400)],
                strict=True,
            )
        ],
        "calibration": [
            {"predicted": round(a, 5), "observed": round(b, 5)}
            for a, b in zip(predicted, observed, strict=True)
        ],
    }
