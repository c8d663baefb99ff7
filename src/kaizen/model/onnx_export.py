"""The model in ONNX form, and the check that it scores like the scikit-learn model.

`export` converts the fitted Pipeline with skl2onnx; `OnnxModel` scores it with ONNX
Runtime behind the same `predict_proba(frame)` the serving path calls on the Pipeline;
`parity` is the largest gap between the two on a frame (the holdout at registration).

Two things skl2onnx 1.20 cannot take as they are, handled here rather than by changing
the model:

* ONNX string tensors have no null, so a missing text input cannot reach the graph. The
  Pipeline's text imputers turn None and NaN into `MISSING_TEXT`; `feed` does the same
  before the graph, and the imputers convert to an identity.
* Its HistGradientBoosting converter writes a Python bool into the integer list
  `nodes_missing_value_tracks_true` for leaves, which protobuf 7 refuses; the converter
  runs with that one attribute cast to ints (the values are unchanged).

Numbers enter the graph as float32 (ONNX's tree ensembles compare in float32), so a value
within float32 rounding of a split threshold can take the other branch: `parity` measures
what that costs on real rows, and registration refuses a model whose gap passes its
tolerance (`register.onnx.parity_atol`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kaizen.model.data import Inputs
from kaizen.model.pipeline import MISSING_TEXT

OPSET = {"": 18, "ai.onnx.ml": 3}


def _text_imputer(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    imputer = operator.raw_operator
    text = isinstance(operator.inputs[0].type, StringTensorType)
    if text and imputer.strategy == "constant" and imputer.fill_value == MISSING_TEXT:
        joined = concatenate_variables(scope, operator.inputs, container)
        container.add_node(
            "Identity",
            [joined],
            [operator.outputs[0].full_name],
            name=scope.get_unique_operator_name("FilledByFeed"),
        )
        return
    convert_sklearn_imputer(scope, operator, container)


def _trees(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
    )

    add_node = container.add_node

    def with_int_flags(*args: Any, **attrs: Any) -> Any:
        flags = attrs.get("nodes_missing_value_tracks_true")
        if flags is not None:
            attrs["nodes_missing_value_tracks_true"] = [int(flag) for flag in flags]
        return add_node(*args, **attrs)

    container.add_node = with_int_flags
    try:
        convert_sklearn_random_forest_classifier(scope, operator, container)
    finally:
        del container.add_node  # the class's method again


def export(model: Any, inputs: Inputs) -> bytes:
    """The fitted Pipeline as a serialized ONNX model: one input per model input, named as
    the column; outputs `label` and `probabilities` (n x 2)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer

    initial = [(c, FloatTensorType([None, 1])) for c in inputs.numeric] + [
        (c, StringTensorType([None, 1])) for c in inputs.categorical
    ]
    onx = convert_sklearn(
        model,
        initial_types=initial,
        target_opset=OPSET,
        options={id(model): {"zipmap": False}},
        custom_conversion_functions={
            SimpleImputer: _text_imputer,
            HistGradientBoostingClassifier: _trees,
        },
    )
    return onx.SerializeToString()


def feed(frame: pd.DataFrame, inputs: Inputs) -> dict[str, np.ndarray]:
    """The graph's inputs for `frame`: numbers as float32 (NaN kept: the trees route it),
    text with None and NaN as MISSING_TEXT, as the Pipeline's imputers make them."""
    out: dict[str, np.ndarray] = {}
    for column in inputs.numeric:
        values = pd.to_numeric(frame[column], errors="raise").to_numpy(dtype=np.float32)
        out[column] = values.reshape(-1, 1)
    for column in inputs.categorical:
        text = frame[column].astype(object)
        text = text.where(text.notna(), MISSING_TEXT).map(str)
        out[column] = text.to_numpy(dtype=object).reshape(-1, 1)
    return out


class OnnxModel:
    """ONNX Runtime behind the Pipeline's `predict_proba(frame)`."""

    def __init__(self, serialized: bytes, inputs: Inputs, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # A request scores a handful of rows: threads would only wait for each other.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
        self.inputs = inputs
        names = [o.name for o in self.session.get_outputs()]
        self._probabilities = names.index("probabilities")

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        outputs = self.session.run(None, feed(frame, self.inputs))
        return np.asarray(outputs[self._probabilities], dtype=np.float64)


def parity(model: Any, onnx_model: OnnxModel, frame: pd.DataFrame) -> float:
    """The largest |P from ONNX Runtime - P from scikit-learn| over `frame`."""
    if frame.empty:
        return 0.0
    ours = model.predict_proba(frame[onnx_model.inputs.all])[:, 1]
    theirs = onnx_model.predict_proba(frame)[:, 1]
    return float(np.max(np.abs(ours - theirs)))
