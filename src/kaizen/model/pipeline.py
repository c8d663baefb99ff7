"""The model: one scikit-learn Pipeline with its preprocessing inside, so serving needs nothing else.

Gradient-boosted trees (missing values handled natively), late payers weighted up, then
calibrated on time-ordered folds so a score reads as a probability.
"""

from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from kaizen.model.data import Inputs
from kaizen.params import TrainParams


def build(inputs: Inputs, p: TrainParams, monotone_increasing: list[str] | None = None) -> Pipeline:
    """`monotone_increasing`: inputs whose growth may never lower the risk (a domain rule the
    promotion gate checks); the trees are constrained to respect it."""
    categorical = Pipeline(
        [
            ("fill", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    prepare = ColumnTransformer(
        [
            ("numeric", "passthrough", inputs.numeric),
            ("categorical", categorical, inputs.categorical),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")  # the trees see names, so constraints can name inputs
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
        trees, method=p.calibration, cv=TimeSeriesSplit(n_splits=p.calibration_folds)
    )
    return Pipeline([("prepare", prepare), ("model", model)])
