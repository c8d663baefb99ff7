"""Calibration folds on a young history (no services, no lake)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kaizen.errors import InputError
from kaizen.model.data import Inputs
from kaizen.model.pipeline import calibration_split

INPUTS = Inputs(numeric=["late_ratio_180d", "tenure_days"], categorical=[])


def _frame(n: int, missing_until: int) -> pd.DataFrame:
    ratio = np.linspace(0, 1, n)
    ratio[:missing_until] = np.nan  # nobody has a resolved invoice yet
    return pd.DataFrame({"late_ratio_180d": ratio, "tenure_days": np.arange(n, dtype=float)})


def test_healthy_history_keeps_equal_time_ordered_folds() -> None:
    cv = calibration_split(_frame(1000, 0), INPUTS, 3)
    assert cv.test_size == 250  # TimeSeriesSplit's own default for 1000 rows and 3 folds
    assert [len(train) for train, _ in cv.split(np.zeros(1000))] == [250, 500, 750]


def test_the_first_cut_moves_past_a_column_missing_for_everyone_early() -> None:
    frame = _frame(1000, 320)
    cv = calibration_split(frame, INPUTS, 3)
    first_train, _ = next(iter(cv.split(frame)))
    assert frame["late_ratio_180d"].iloc[first_train].notna().any()
    assert all(len(test) == cv.test_size for _, test in cv.split(frame))


def test_a_column_never_seen_is_one_clear_error() -> None:
    with pytest.raises(
        InputError, match="late_ratio_180d has no value in the whole training window"
    ):
        calibration_split(_frame(1000, 1000), INPUTS, 3)
    with pytest.raises(InputError, match="late_ratio_180d has no value in its earliest rows"):
        calibration_split(_frame(1000, 990), INPUTS, 3)
