"""The training set's shape as the model sees it: inputs, label, time split and slices."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kaizen.errors import InputError
from kaizen.params import TrainParams

KEYS = ("invoice_id", "customer_id", "event_timestamp")
LABEL = "label"


@dataclass(frozen=True)
class Inputs:
    numeric: list[str]
    categorical: list[str]

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def model_inputs(frame: pd.DataFrame) -> Inputs:
    """Every column but the keys and the label; text columns are categorical."""
    columns = [c for c in frame.columns if c not in (*KEYS, LABEL)]
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
            f"{what} is too small: {len(frame)} rows with {positives} late (train.min_rows={p.min_rows}, "
            f"train.min_positives={p.min_positives})"
        )


def split_by_time(frame: pd.DataFrame, holdout_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on the past, hold out the latest `holdout_days` issue dates: no overlap in time."""
    frame = frame.sort_values(["event_timestamp", "invoice_id"], kind="stable").reset_index(
        drop=True
    )
    days = frame["event_timestamp"].dt.floor("D")
    first_holdout = days.max() - pd.Timedelta(days=holdout_days - 1)
    held = days >= first_holdout
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)


def tenure_band(tenure_days: pd.Series, edges: list[int]) -> pd.Series:
    labels = [
        f"<{edges[0]}d",
        *[f"{a}-{b}d" for a, b in itertools.pairwise(edges)],
        f"{edges[-1]}d+",
    ]
    index = np.searchsorted(np.asarray(edges), tenure_days.fillna(0).to_numpy(), side="right")
    return pd.Series(np.asarray(labels, dtype=object)[index], index=tenure_days.index)
