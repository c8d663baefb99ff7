"""The training set's shape as the model sees it: inputs, label, time split and slices."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kaizen.errors import InputError
from kaizen.labels import ELAPSED_DAYS, RESOLVED_DAYS, STATE
from kaizen.params import TrainParams
from kaizen.project.declaration import Slice
from kaizen.project.project import EVENT_TIMESTAMP, LABEL

__all__ = [
    "LABEL",
    "LABEL_STATE",
    "Inputs",
    "check_trainable",
    "holdout_of",
    "model_inputs",
    "slice_values",
    "split_by_time",
    "trained",
    "trained_inputs",
]


@dataclass(frozen=True)
class Inputs:
    numeric: list[str]
    categorical: list[str]

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def trained(model_dir: Path) -> dict[str, Any]:
    """What train recorded beside the model: its inputs, keys and holdout split."""
    return json.loads((Path(model_dir) / "train.json").read_text())


def trained_inputs(info: dict[str, Any]) -> Inputs:
    return Inputs(
        numeric=list(info["inputs"]["numeric"]), categorical=list(info["inputs"]["categorical"])
    )


def holdout_of(frame: pd.DataFrame, info: dict[str, Any]) -> pd.DataFrame:
    """The rows train held out of `frame` (its training set): the latest event days."""
    return split_by_time(frame, info["holdout_days"], info["row_id"])[1]


# What is known of a row's label at the cut-off: how the fit treats the row, never an input.
LABEL_STATE = [STATE, ELAPSED_DAYS, RESOLVED_DAYS]


def model_inputs(frame: pd.DataFrame, keys: list[str]) -> Inputs:
    """Every column but the keys (row id, join keys, event time), the label and its state:
    neither is ever a model input. Text columns are categorical."""
    columns = [c for c in frame.columns if c not in (*keys, LABEL, *LABEL_STATE)]
    categorical = sorted(
        c for c in columns if frame[c].dtype == object or isinstance(frame[c].dtype, pd.StringDtype)
    )
    numeric = sorted(c for c in columns if c not in categorical)
    return Inputs(numeric=numeric, categorical=categorical)


def check_trainable(frame: pd.DataFrame, p: TrainParams, what: str) -> None:
    """Refuse, in one line, a set no model should be trained on."""
    if frame.empty:
        raise InputError(
            f"{what} is empty: nothing to train on (are labels final yet? see training_set.cutoff)"
        )
    positives = int(frame[LABEL].sum())
    if frame[LABEL].nunique() < 2:
        raise InputError(
            f"{what} has a single class ({len(frame)} rows, all label={int(frame[LABEL].iloc[0])}): cannot train"
        )
    if len(frame) < p.min_rows or positives < p.min_positives:
        raise InputError(
            f"{what} is too small: {len(frame)} rows with {positives} positive (train.min_rows={p.min_rows}, "
            f"train.min_positives={p.min_positives})"
        )


def split_by_time(
    frame: pd.DataFrame, holdout_days: int, row_id: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on the past, hold out the latest `holdout_days` event dates: no overlap in time."""
    frame = frame.sort_values([EVENT_TIMESTAMP, row_id], kind="stable").reset_index(drop=True)
    days = frame[EVENT_TIMESTAMP].dt.floor("D")
    first_holdout = days.max() - pd.Timedelta(days=holdout_days - 1)
    held = days >= first_holdout
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)


def bands(values: pd.Series, edges: list[float], unit: str = "") -> pd.Series:
    """Numeric values as band names: `<a`, `a-b`, ..., `z+` (missing values in the first)."""

    def num(x: float) -> str:
        return f"{x:g}{unit}"

    labels = [
        f"<{num(edges[0])}",
        *[f"{num(a)}-{num(b)}" for a, b in itertools.pairwise(edges)],
        f"{num(edges[-1])}+",
    ]
    index = np.searchsorted(np.asarray(edges), values.fillna(0).to_numpy(float), side="right")
    return pd.Series(np.asarray(labels, dtype=object)[index], index=values.index)


def slice_values(frame: pd.DataFrame, slices: dict[str, Slice]) -> dict[str, pd.Series]:
    """Each declared slice's value per row: the category, or the numeric band."""
    out = {}
    for name, spec in slices.items():
        if spec.column not in frame.columns:
            raise InputError(f"slice {name}: column {spec.column!r} is not in the training set")
        column = frame[spec.column]
        if spec.edges is None:
            out[name] = column.astype(object).where(column.notna(), "missing").astype(str)
        else:
            out[name] = bands(column, spec.edges, spec.unit)
    return out
