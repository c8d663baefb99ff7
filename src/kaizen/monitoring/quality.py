"""Live model quality: each model version's scores on requests whose label is now final.

Predictions are joined to the delayed labels by the project's row id; every version in the log is
scored on its own requests (served or shadow) with the offline metrics (`model.metrics`).
The production gate compares champion and challenger pairwise on the same requests; this
is the per-version view for the report and its trend.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kaizen.model.metrics import score
from kaizen.params import MonitorParams


def live_quality(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    row_id: str,
    aliases: dict[str, str],
    p: MonitorParams,
) -> dict[str, dict[str, Any]]:
    """Per model version: rows, ROC AUC, Brier, roles, and its current alias (if any)."""
    ok = predictions["probability"].notna() & predictions[row_id].notna()
    scored = predictions[ok].drop_duplicates(["model_version", row_id], keep="last")
    # The log keeps row ids as text (the API's contract); the lake's may be integers.
    scored = scored.assign(**{row_id: scored[row_id].astype(str)})
    final = labels[[row_id, "label"]].assign(**{row_id: labels[row_id].astype(str)})
    joined = scored.merge(final, on=row_id, how="inner")
    by_number = {number: alias for alias, number in aliases.items()}
    out: dict[str, dict[str, Any]] = {}
    joined["model_version"] = joined["model_version"].astype(str)
    for version, rows in joined.groupby("model_version", sort=True):
        metrics = score(rows["label"].to_numpy(), rows["probability"].to_numpy())
        enough = len(rows) >= p.quality_min_labelled
        out[str(version)] = {
            "alias": by_number.get(str(version), ""),
            "roles": sorted(rows["role"].dropna().unique().tolist()),
            "judged": enough,
            **{k: metrics[k] for k in ("rows", "positives", "positive_rate", "roc_auc", "brier")},
        }
    for alias, number in aliases.items():
        out.setdefault(
            number,
            {"alias": alias, "roles": [], "judged": False, "rows": 0, "positives": 0}
            | {"positive_rate": None, "roc_auc": None, "brier": None},
        )
    return out
