"""The prediction log as monitoring reads it: the successful served rows and their features.

The log and its reader are `kaizen.serving.predictions` (one contract, one reader).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from kaizen.serving.predictions import log_schema, read_predictions

__all__ = ["log_schema", "logged_features", "read_predictions", "served"]


def served(predictions: pd.DataFrame) -> pd.DataFrame:
    """Successful predictions that decided a request (not the shadow scores)."""
    ok = predictions["probability"].notna() & predictions["error"].isna()
    return predictions[ok & (predictions["role"] == "served")].reset_index(drop=True)


def logged_features(predictions: pd.DataFrame) -> pd.DataFrame:
    """The model inputs each prediction was made with, one row per prediction (same index)."""
    rows: list[dict[str, Any]] = [
        json.loads(text) if isinstance(text, str) and text else {}
        for text in predictions["features"]
    ]
    return pd.DataFrame(rows, index=predictions.index)
