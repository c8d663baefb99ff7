"""Why the model scores what it scores: SHAP values of the calibrated probability.

Choice of explainer: shap's model-agnostic permutation explainer over the whole pipeline's
`predict_proba`, with a holdout background sample. TreeExplainer would explain the raw trees'
log-odds before calibration (an average of per-fold calibrators over different trees), which
is not the number a request is judged by. Explaining the served probability keeps SHAP's
additivity honest: base value + contributions = the probability the API returns.

shap masks a numeric matrix, so categorical inputs travel as category codes (NaN = missing)
and are decoded back to the strings the pipeline expects before every model call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kaizen.errors import InputError
from kaizen.model.data import Inputs

UNSEEN = "\x00unseen"  # stands for any category the background never showed
BACKGROUND_ARTIFACT = "explain/background.parquet"


def log_background(background: pd.DataFrame) -> None:
    """Store the background with the active MLflow run, so the API explains a version against
    exactly the rows its report used."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/{BACKGROUND_ARTIFACT.rsplit('/', 1)[1]}"
        background.to_parquet(path, index=False)
        mlflow.log_artifact(path, BACKGROUND_ARTIFACT.rsplit("/", 1)[0])


def load_background(run_id: str) -> pd.DataFrame:
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=BACKGROUND_ARTIFACT)
    except Exception as exc:
        raise InputError(
            f"run {run_id} has no {BACKGROUND_ARTIFACT}: it was not evaluated by `kaizen evaluate`"
            f" ({type(exc).__name__})"
        ) from None
    return pd.read_parquet(path)


@dataclass(frozen=True)
class Encoding:
    """Inputs <-> the float matrix shap masks; categories are those seen in the background."""

    inputs: Inputs
    categories: dict[str, list[str]]

    @classmethod
    def fit(cls, frame: pd.DataFrame, inputs: Inputs) -> Encoding:
        return cls(
            inputs,
            {c: sorted(frame[c].dropna().astype(str).unique()) for c in inputs.categorical},
        )

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(self.inputs.all)), dtype=float)
        for i, c in enumerate(self.inputs.numeric):
            out[:, i] = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
        for j, c in enumerate(self.inputs.categorical, start=len(self.inputs.numeric)):
            lookup = {v: k for k, v in enumerate(self.categories[c])}
            unseen = len(self.categories[c])  # the one-hot encoder ignores any unseen value alike
            out[:, j] = [
                np.nan if pd.isna(v) else lookup.get(str(v), unseen)
                for v in frame[c].astype(object)
            ]
        return out

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(matrix[:, : len(self.inputs.numeric)], columns=self.inputs.numeric)
        for j, c in enumerate(self.inputs.categorical, start=len(self.inputs.numeric)):
            known = [*self.categories[c], UNSEEN]
            frame[c] = pd.Series(
                [np.nan if np.isnan(v) else known[int(v)] for v in matrix[:, j]], dtype=object
            )
        return frame


@dataclass(frozen=True)
class Explained:
    """SHAP values of P(positive) for some rows: `base + values.sum(axis=1) == proba`."""

    features: list[str]
    base: np.ndarray  # (rows,)
    values: np.ndarray  # (rows, features)
    proba: np.ndarray  # (rows,)

    def drivers(self, row: int, top_k: int) -> list[dict[str, float | str]]:
        """One row's contributions, largest magnitude first."""
        order = np.argsort(-np.abs(self.values[row]), kind="stable")[:top_k]
        return [
            {"feature": self.features[i], "contribution": round(float(self.values[row, i]), 6)}
            for i in order
        ]

    def mean_abs(self) -> list[dict[str, float | str]]:
        ranked = np.abs(self.values).mean(axis=0)
        order = np.argsort(-ranked, kind="stable")
        return [
            {"feature": self.features[i], "mean_abs_shap": round(float(ranked[i]), 6)}
            for i in order
        ]


class ProbabilityExplainer:
    """Permutation SHAP of a fitted pipeline's P(positive), against a fixed background sample."""

    def __init__(self, model: Any, background: pd.DataFrame, inputs: Inputs, seed: int) -> None:
        import shap

        if background.empty:
            raise InputError("cannot explain: the background sample is empty")
        self.model, self.inputs, self.seed = model, inputs, seed
        self.encoding = Encoding.fit(background, inputs)
        self._masker = shap.maskers.Independent(
            self.encoding.encode(background), max_samples=len(background)
        )

    def _proba(self, matrix: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(self.encoding.decode(matrix))[:, 1]

    def explain(self, rows: pd.DataFrame) -> Explained:
        import shap

        missing = [c for c in self.inputs.all if c not in rows.columns]
        if missing:
            raise InputError(f"cannot explain: rows lack the model inputs {', '.join(missing)}")
        matrix = self.encoding.encode(rows[self.inputs.all])
        explainer = shap.explainers.Permutation(
            self._proba, self._masker, feature_names=self.inputs.all, seed=self.seed
        )
        found = explainer(matrix, max_evals=2 * len(self.inputs.all) + 1, silent=True)
        return Explained(
            self.inputs.all,
            np.asarray(found.base_values, dtype=float).reshape(len(rows)),
            np.asarray(found.values, dtype=float),
            self._proba(matrix),
        )


def warm_up() -> None:
    """Import shap and compile its numba masking code on a toy problem (~15 s on two busy
    cores, once per process), so the first POST /explain does not pay for it."""
    import shap

    background = np.zeros((2, 2))
    explainer = shap.explainers.Permutation(
        lambda x: x.sum(axis=1), shap.maskers.Independent(background, max_samples=2)
    )
    explainer(np.ones((1, 2)), max_evals=5, silent=True)
