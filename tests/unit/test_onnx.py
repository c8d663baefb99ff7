"""The ONNX form scores like the scikit-learn model, or registration refuses it.

Small synthetic models of the production Pipeline (`kaizen.model.pipeline.build`): missing
numbers, missing text as None and as NaN, a category never seen in training, a monotone
constraint, both calibration methods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kaizen.errors import ModelRefused
from kaizen.model.data import Inputs
from kaizen.model.onnx_export import OnnxModel, export, feed, parity
from kaizen.model.pipeline import build
from kaizen.params import OnnxParams, TrainParams
from kaizen.stages.register import onnx_form

INPUTS = Inputs(numeric=["amount", "late_ratio", "orders"], categorical=["band", "region"])


def world(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.exponential(500, n),
            "late_ratio": rng.beta(1, 8, n),
            "orders": rng.integers(0, 12, n).astype(float),
            "band": rng.choice(["low", "mid", "high"], n).astype(object),
            "region": rng.choice(["north", "south", "east", None], n).astype(object),
        }
    )
    frame.loc[rng.random(n) < 0.1, "late_ratio"] = np.nan
    frame.loc[rng.random(n) < 0.05, "region"] = np.nan  # the other way text goes missing
    risk = (
        frame["late_ratio"].fillna(0.3) * 6 + (frame["region"] == "north") + frame["amount"] / 900
    )
    label = (risk + rng.normal(0, 0.6, n) > 1.6).astype(int)
    return frame, label


def fitted(calibration: str) -> tuple[object, pd.DataFrame]:
    frame, label = world(3000, 1)
    params = TrainParams(
        learning_rate=0.1,
        max_iter=60,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        l2_regularization=1.0,
        class_weight="balanced",
        calibration=calibration,
        calibration_folds=3,
        random_state=7,
        min_rows=10,
        min_positives=2,
        retrain_min_new_labels=1,
        holdout_days=7,
        monotone_increasing=[],
    )
    model = build(INPUTS, params, monotone_increasing=["late_ratio"])
    return model.fit(frame[INPUTS.all], label), world(2000, 2)[0]


@pytest.fixture(scope="module")
def sigmoid() -> tuple[object, pd.DataFrame]:
    return fitted("sigmoid")


def test_the_onnx_form_scores_like_scikit_learn(sigmoid: tuple[object, pd.DataFrame]) -> None:
    model, holdout = sigmoid
    onnx = OnnxModel(export(model, INPUTS), INPUTS)
    assert parity(model, onnx, holdout) < 1e-5
    odd = holdout.head(40).copy()
    odd.loc[:9, "region"] = "atlantis"  # never seen in training: ignored by both
    odd.loc[10:19, "amount"] = np.nan  # a number never missing in training
    odd.loc[20:29, "band"] = None
    assert parity(model, onnx, odd) < 1e-5


def test_missing_text_as_none_or_nan_scores_the_same(sigmoid: tuple[object, pd.DataFrame]) -> None:
    model, holdout = sigmoid
    row = holdout.head(1).copy()
    as_none, as_nan, as_word = row.copy(), row.copy(), row.copy()
    as_none["region"], as_nan["region"], as_word["region"] = None, np.nan, "missing"
    scores = [model.predict_proba(r[INPUTS.all])[0, 1] for r in (as_none, as_nan, as_word)]
    assert scores[0] == scores[1] == scores[2]
    assert feed(as_none, INPUTS)["region"][0, 0] == feed(as_nan, INPUTS)["region"][0, 0]


def test_registration_keeps_a_form_within_tolerance_and_says_what_it_saves(
    sigmoid: tuple[object, pd.DataFrame],
) -> None:
    model, holdout = sigmoid
    form = onnx_form(model, INPUTS, holdout, OnnxParams(enabled=True, parity_atol=1e-4))
    assert form.metrics["onnx_parity_max_abs_diff"] < 1e-4
    assert form.metrics["onnx_predict_ms_one_row"] > 0
    assert form.metrics["sklearn_predict_ms_one_row"] > 0
    again = OnnxModel(form.serialized, INPUTS)
    assert parity(model, again, holdout) == form.metrics["onnx_parity_max_abs_diff"]


def test_a_form_that_diverges_is_refused_in_one_line() -> None:
    # skl2onnx converts isotonic calibration to a nearest-step lookup, not scikit-learn's
    # interpolation: a real divergence the check must catch.
    model, holdout = fitted("isotonic")
    with pytest.raises(ModelRefused, match=r"max \|P ONNX - scikit-learn\| .* > "):
        onnx_form(model, INPUTS, holdout, OnnxParams(enabled=True, parity_atol=1e-4))


def test_a_tampered_graph_is_caught_by_parity(sigmoid: tuple[object, pd.DataFrame]) -> None:
    import onnx

    model, holdout = sigmoid
    graph = onnx.load_from_string(export(model, INPUTS))
    for node in graph.graph.node:
        if node.op_type == "TreeEnsembleClassifier":
            for attr in node.attribute:
                if attr.name == "class_weights":
                    attr.floats[:] = [w * 1.5 for w in attr.floats]
    tampered = OnnxModel(graph.SerializeToString(), INPUTS)
    assert parity(model, tampered, holdout) > 1e-2
