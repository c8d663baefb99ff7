"""The model: one scikit-learn Pipeline with its preprocessing inside, so serving needs nothing else.

Gradient-boosted trees (missing values handled natively), the rare class weighted up, then
calibrated on time-ordered folds so a score reads as a probability.
"""

from __future__ import annotations

import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from kaizen.errors import InputError
from kaizen.model.data import Inputs
from kaizen.params import TrainParams

MISSING_TEXT = "missing"  # what a missing categorical input is encoded as


def calibration_split(frame: pd.DataFrame, inputs: Inputs, folds: int) -> TimeSeriesSplit:
    """Time-ordered calibration folds whose first training part has a value of every numeric
    input. In a young history a ratio can be missing for everyone in the earliest rows (no
    outcome known yet), and the trees cannot bin a column with no value at all; shrinking
    the test folds moves the first cut later. Refuses, in one line, when no cut works."""
    n = len(frame)
    seen = frame[inputs.numeric].notna().to_numpy().cumsum(axis=0) > 0  # row i: seen by then
    smallest = max(folds * 2, n // (folds * 8))  # test folds stay big enough to calibrate on
    for test_size in range(n // (folds + 1), smallest - 1, -max(1, n // 200)):
        first_cut = n - folds * test_size
        if first_cut > 0 and seen[first_cut - 1].all():
            return TimeSeriesSplit(n_splits=folds, test_size=test_size)
    never = [c for c, ok in zip(inputs.numeric, seen[-1], strict=True) if not ok]
    latest_cut = max(n - folds * smallest, 1)
    early = [c for c, ok in zip(inputs.numeric, seen[latest_cut - 1], strict=True) if not ok]
    raise InputError(
        f"cannot calibrate: {', '.join(never or early)} has no value in "
        f"{'the whole training window' if never else 'its earliest rows'}; wait for more history"
    )


def preparation(inputs: Inputs) -> ColumnTransformer:
    """The inputs as the trees see them: numbers as they are, text one-hot encoded."""
    # A missing text value arrives as None (parquet, Feast) or NaN (pandas joins). The
    # default imputer catches NaN only, and the encoder then learns None as a category of
    # its own: the same gap would encode two ways. Both become MISSING_TEXT.
    categorical = Pipeline(
        [
            ("fill_nan", SimpleImputer(strategy="constant", fill_value=MISSING_TEXT)),
            (
                "fill_none",
                SimpleImputer(missing_values=None, strategy="constant", fill_value=MISSING_TEXT),
            ),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", "passthrough", inputs.numeric),
            ("categorical", categorical, inputs.categorical),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")  # the trees see names, so constraints can name inputs


def build(
    inputs: Inputs,
    p: TrainParams,
    monotone_increasing: list[str] | None = None,
    cv: TimeSeriesSplit | None = None,
) -> Pipeline:
    """`monotone_increasing`: inputs whose growth may never lower the risk (a domain rule the
    promotion gate checks); the trees are constrained to respect it. `cv`: the calibration
    folds (`calibration_split`), by default `calibration_folds` equal time-ordered folds."""
    prepare = preparation(inputs)
    trees = HistGradientBoostingClassifier(
        learning_rate=p.learning_rate,
        max_iter=p.max_iter,
        max_leaf_nodes=p.max_leaf_nodes,
        min_samples_leaf=p.min_samples_leaf,
        l2_regularization=p.l2_regularization,
        class_weight=p.class_weight,
        monotonic_cst={name: 1 for name in monotone_increasing or [] if name in inputs.numeric}
        or None,
        early_stopping=False,  # deterministic: the same data and params give the same model
        random_state=p.random_state,
    )
    # Rows arrive in issue order, so each calibration fold is fitted on the past only.
    model = CalibratedClassifierCV(
        trees, method=p.calibration, cv=cv or TimeSeriesSplit(n_splits=p.calibration_folds)
    )
    return Pipeline([("prepare", prepare), ("model", model)])
