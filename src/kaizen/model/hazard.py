"""Training on censored rows (`train.labels: censored`): a delay-bucket hazard, then soft labels.

As of the cut-off each labelled row is resolved (its label known `resolved_days` after its
event) or censored (still unresolved after `elapsed_days`). Keeping only final rows makes
the model wait a whole label horizon for a new regime; keeping only resolved rows is
biased, because the label decides how soon a row resolves (one class settles early, the
other at its deadline), so the recent resolved rows are mostly that early class.

Here the time to resolution is cut into delay buckets (`delay_edges`). In each bucket a
watched row stays unresolved, resolves negative or resolves positive; a multinomial
classifier of that outcome on the inputs and the bucket, a discrete-time competing-risks
hazard, is fitted on every bucket each row was watched through to its end: resolved rows up
to the bucket they resolved in, censored rows up to the last bucket they were watched
through. A censored row so tells what it can (it was not resolved for `elapsed_days`) and
nothing more. From the hazards, each censored row gets P(positive | inputs, unresolved
after its elapsed days); the project's Pipeline is then fitted on every row, a censored one
twice: positive with that weight, negative with the rest. Resolved rows keep their label.

The fitted model is the same scikit-learn Pipeline as with final labels (one P(positive)
per row; skops, MLflow's pyfunc form and ONNX take it unchanged): the hazard is a device
of the fit only. It assumes censoring says nothing about the label beyond the inputs and
the time watched (here censoring is administrative: a row is censored because it is
recent), and that the inputs and the bucket explain the hazards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from kaizen.errors import InputError
from kaizen.labels import CENSORED, ELAPSED_DAYS, RESOLVED_DAYS, STATE
from kaizen.model.data import LABEL, LABEL_STATE, Inputs
from kaizen.model.pipeline import build, calibration_split, preparation
from kaizen.params import TrainParams

BUCKET = "kaizen_delay_bucket"  # the hazard's own input: which delay bucket a period is
STAYS, RESOLVES_NEGATIVE, RESOLVES_POSITIVE = 0, 1, 2  # a watched bucket's outcome


@dataclass(frozen=True)
class CensoredFit:
    model: Pipeline  # the project's Pipeline, fitted on resolved and soft-labelled rows
    edges: list[float]  # inner delay-bucket edges, in days
    censored: int  # rows that entered with a soft label
    pending_positive: float  # their mean P(positive | unresolved so far)


def delay_edges(resolved_days: np.ndarray, buckets: int) -> np.ndarray:
    """Inner bucket edges at quantiles of the delays to resolution: every bucket holds some
    resolutions, however the delays bunch (ties merge buckets)."""
    if resolved_days.size == 0:
        raise InputError("no row is resolved by the cut-off: nothing to learn the delays from")
    edges = np.quantile(resolved_days, np.linspace(0, 1, buckets + 1)[1:-1])
    return np.unique(edges[edges > 0])


def bucket_of(days: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket k holds delays in [edges[k-1], edges[k]) (0 from 0, the last to no end)."""
    return np.searchsorted(edges, days, side="right")


def person_periods(states: pd.DataFrame, edges: np.ndarray) -> pd.DataFrame:
    """One row per (row, bucket) watched to its end: `row` (position in `states`), BUCKET and
    the bucket's outcome. A resolved row is watched up to the bucket it resolved in; a
    censored one through the buckets that ended before its elapsed time."""
    censored = (states[STATE] == CENSORED).to_numpy()
    resolved_in = bucket_of(states[RESOLVED_DAYS].fillna(0).to_numpy(float), edges)
    watched_through = bucket_of(states[ELAPSED_DAYS].to_numpy(float), edges)
    counts = np.where(censored, watched_through, resolved_in + 1)
    row = np.repeat(np.arange(len(states)), counts)
    starts = np.cumsum(counts) - counts
    bucket = np.arange(counts.sum()) - np.repeat(starts, counts)
    outcome = np.full(row.size, STAYS)
    last = (starts + counts - 1)[~censored]  # a resolved row's bucket it resolved in
    positive = states[LABEL].to_numpy()[~censored] == 1
    outcome[last] = np.where(positive, RESOLVES_POSITIVE, RESOLVES_NEGATIVE)
    return pd.DataFrame({"row": row, BUCKET: bucket, "outcome": outcome})


def hazard_model(inputs: Inputs, p: TrainParams) -> Pipeline:
    """The per-bucket outcome on the inputs and the bucket: the Pipeline's preparation and
    trees, unweighted (the hazards must be probabilities) and uncalibrated."""
    prepare = preparation(Inputs(numeric=[*inputs.numeric, BUCKET], categorical=inputs.categorical))
    trees = HistGradientBoostingClassifier(
        learning_rate=p.learning_rate,
        max_iter=p.max_iter,
        max_leaf_nodes=p.max_leaf_nodes,
        min_samples_leaf=p.min_samples_leaf,
        l2_regularization=p.l2_regularization,
        early_stopping=False,
        random_state=p.random_state,
    )
    return Pipeline([("prepare", prepare), ("hazard", trees)])


def periods_frame(states: pd.DataFrame, inputs: Inputs, rows: np.ndarray, buckets: np.ndarray):
    frame = states[inputs.all].iloc[rows].reset_index(drop=True)
    frame[BUCKET] = buckets
    return frame


def fit_hazard(states: pd.DataFrame, inputs: Inputs, edges: np.ndarray, p: TrainParams):
    periods = person_periods(states, edges)
    frame = periods_frame(states, inputs, periods["row"].to_numpy(), periods[BUCKET].to_numpy())
    return hazard_model(inputs, p).fit(frame, periods["outcome"])


def pending_positive(
    hazard: Pipeline, censored: pd.DataFrame, inputs: Inputs, edges: np.ndarray
) -> np.ndarray:
    """P(positive | inputs, unresolved after ELAPSED_DAYS) per censored row: the chance to
    resolve positive before negative from its elapsed time on. Within a bucket the hazard is
    taken as constant in time, so a row part-way through one faces the rest of it only."""
    n, width = len(censored), len(edges) + 1
    if n == 0:
        return np.zeros(0)
    rows, buckets = np.repeat(np.arange(n), width), np.tile(np.arange(width), n)
    proba = hazard.predict_proba(periods_frame(censored, inputs, rows, buckets))
    classes = list(hazard.classes_)

    def column(outcome: int) -> np.ndarray:
        got = proba[:, classes.index(outcome)] if outcome in classes else np.zeros(len(proba))
        return got.reshape(n, width)

    h_neg, h_pos = column(RESOLVES_NEGATIVE), column(RESOLVES_POSITIVE)
    h_any = np.clip(h_neg + h_pos, 1e-12, 1.0)
    elapsed = censored[ELAPSED_DAYS].to_numpy(float)
    current = bucket_of(elapsed, edges)
    lo = np.concatenate([[0.0], edges])
    hi = np.concatenate([edges, [np.inf]])
    # The share of each bucket still ahead: none before the current one, all after it.
    ahead = (np.arange(width)[None, :] > current[:, None]).astype(float)
    here = np.where(
        np.isfinite(hi[current]), (hi[current] - elapsed) / (hi[current] - lo[current]), 1.0
    )
    ahead[np.arange(n), current] = here
    stay = (1.0 - h_any) ** ahead
    reach = np.cumprod(np.hstack([np.ones((n, 1)), stay[:, :-1]]), axis=1)
    resolves = reach * (1.0 - stay)
    positive = (resolves * h_pos / h_any).sum(axis=1)
    negative = (resolves * h_neg / h_any).sum(axis=1)
    return positive / np.maximum(positive + negative, 1e-12)


def soft_labelled(states: pd.DataFrame, pending: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Every row in its order, a censored one twice (positive with weight `pending`,
    negative with the rest), and the weights."""
    censored = (states[STATE] == CENSORED).to_numpy()
    copies = np.where(censored, 2, 1)
    position = np.repeat(np.arange(len(states)), copies)
    frame = states.iloc[position].reset_index(drop=True)
    first = np.r_[True, position[1:] != position[:-1]]  # the first copy of each row
    is_censored = censored[position]
    p_row = np.zeros(len(states))
    p_row[censored] = pending
    label = np.where(is_censored, first.astype(int), frame[LABEL].to_numpy())
    weight = np.where(is_censored, np.where(first, p_row[position], 1 - p_row[position]), 1.0)
    frame[LABEL] = label
    keep = weight > 0
    return frame[keep].reset_index(drop=True), weight[keep]


def fit_censored(
    states: pd.DataFrame, inputs: Inputs, p: TrainParams, monotone: list[str] | None = None
) -> CensoredFit:
    """The project's Pipeline fitted on resolved and censored rows (`states` in time order,
    with LABEL_STATE): see the module's docstring."""
    missing = [c for c in LABEL_STATE if c not in states.columns]
    if missing:
        raise InputError(f"the training set has no {', '.join(missing)}: rebuild it")
    states = states.reset_index(drop=True)
    censored = (states[STATE] == CENSORED).to_numpy()
    resolved_days = states.loc[~censored, RESOLVED_DAYS].to_numpy(float)
    edges = delay_edges(resolved_days, p.delay_buckets)
    pending = np.zeros(0)
    if censored.any():  # nothing to impute otherwise: the fit is the plain one, weighted 1
        hazard = fit_hazard(states, inputs, edges, p)
        pending = pending_positive(hazard, states[censored], inputs, edges)
    frame, weight = soft_labelled(states, pending)
    cv = calibration_split(frame, inputs, p.calibration_folds)
    model = build(inputs, p, monotone, cv).fit(
        frame[inputs.all], frame[LABEL], model__sample_weight=weight
    )
    return CensoredFit(
        model=model,
        edges=[round(float(e), 4) for e in edges],
        censored=int(censored.sum()),
        pending_positive=round(float(pending.mean()), 6) if pending.size else 0.0,
    )
