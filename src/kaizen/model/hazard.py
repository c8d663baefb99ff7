"""Training on censored rows (`train.labels: censored`): a mixture of the label and its delay.

As of the cut-off each labelled row is resolved (its label known `resolved_days` after its
event) or censored (still unresolved after `elapsed_days`). Keeping only final rows makes
the model wait a whole label horizon for a new regime; keeping only resolved rows is
biased, because the label decides how soon a row resolves (one class settles early, the
other at its deadline), so the recent resolved rows are mostly that early class.

Each row is a label Y drawn with P(Y = 1 | x), the model, and a delay until it is known
drawn from its class's delay distribution S_y(t | x) = P(not known by t | x, y). A censored
row says "not known after e days": P(Y = 1 | x, e) = pi S_1(e) / (pi S_1(e) + (1 - pi) S_0(e)),
pi = P(Y = 1 | x). The delays are learned from the rows watched to the horizon, whose labels
are all known: a discrete-time hazard of becoming known, per delay bucket, on the inputs,
the bucket and the label. The model is then fitted by EM: starting from the fit on those
rows, each round gives every censored row that soft label and refits the project's
Pipeline on every row, a censored one twice (positive with weight p, negative with 1 - p).

A censored row so counts for what its wait says. Under a shock, recent rows still unknown
long after their class would usually have been known raise their own soft label: the model
sees the new regime before any of its rows is final.

It assumes: censoring says nothing about the label beyond the inputs and the time watched
(here it is administrative: a row is censored because it is recent); how long each class
takes to become known, given the inputs, is what the rows watched to the horizon show (a
shock may change the mix of labels, not the delays); every label is known by the horizon.

The fitted model is the same scikit-learn Pipeline as with final labels (one P(positive)
per row; skops, MLflow's pyfunc form and ONNX take it unchanged): the delays are a device
of the fit only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from kaizen.errors import InputError
from kaizen.labels import CENSORED, ELAPSED_DAYS, RESOLVED_DAYS, STATE
from kaizen.model.data import LABEL, LABEL_STATE, Inputs
from kaizen.model.pipeline import build, calibration_split, preparation
from kaizen.params import TrainParams

BUCKET = "kaizen_delay_bucket"  # the delay model's own inputs: which bucket a period is ...
CLASS = "kaizen_label_class"  # ... and the label whose delay it is


@dataclass(frozen=True)
class CensoredFit:
    model: Pipeline  # the project's Pipeline, fitted on resolved and soft-labelled rows
    edges: list[float]  # the delay buckets' edges, in days
    censored: int  # rows that entered with a soft label
    pending: np.ndarray = field(repr=False)  # their P(positive | not known yet), last round

    @property
    def pending_positive(self) -> float:
        return round(float(self.pending.mean()), 6) if self.pending.size else 0.0


def delay_edges(resolved_days: np.ndarray, buckets: int) -> np.ndarray:
    """The bucket edges, in days: 0 to the longest delay to a known label (the horizon, as
    the resolved rows show it) in equal steps. Equal, not at quantiles of the delays: one
    class can resolve only at the horizon, and a wide last bucket would blur where in it a
    row still unresolved stands (a day before the horizon it is nearly surely positive)."""
    if resolved_days.size == 0:
        raise InputError("no row is resolved by the cut-off: nothing to learn the delays from")
    return np.linspace(0.0, float(resolved_days.max()), buckets + 1)


def bucket_of(days: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket k holds delays in [edges[k], edges[k + 1]); the last one ends at the horizon."""
    return np.searchsorted(edges[1:-1], days, side="right")


def person_periods(resolved_days: np.ndarray, edges: np.ndarray) -> pd.DataFrame:
    """One row per (row, bucket) each resolved row waited in: `row` (its position), BUCKET,
    and `known` (1 in the bucket its label became known, 0 before)."""
    counts = bucket_of(resolved_days, edges) + 1
    row = np.repeat(np.arange(resolved_days.size), counts)
    starts = np.cumsum(counts) - counts
    bucket = np.arange(counts.sum()) - np.repeat(starts, counts)
    known = np.zeros(row.size, dtype=int)
    known[starts + counts - 1] = 1
    return pd.DataFrame({"row": row, BUCKET: bucket, "known": known})


def delay_model(inputs: Inputs, p: TrainParams) -> Pipeline:
    """P(known in this bucket | not before, inputs, label): the Pipeline's preparation and
    trees, unweighted (the hazards must be probabilities) and uncalibrated."""
    numeric = [*inputs.numeric, BUCKET, CLASS]
    trees = HistGradientBoostingClassifier(
        learning_rate=p.learning_rate,
        max_iter=p.max_iter,
        max_leaf_nodes=p.max_leaf_nodes,
        min_samples_leaf=p.min_samples_leaf,
        l2_regularization=p.l2_regularization,
        early_stopping=False,
        random_state=p.random_state,
    )
    prepare = preparation(Inputs(numeric=numeric, categorical=inputs.categorical))
    return Pipeline([("prepare", prepare), ("hazard", trees)])


def periods_frame(rows: pd.DataFrame, inputs: Inputs, at: np.ndarray, buckets, label):
    frame = rows[inputs.all].iloc[at].reset_index(drop=True)
    frame[BUCKET] = buckets
    frame[CLASS] = label
    return frame


def fit_delays(watched: pd.DataFrame, inputs: Inputs, edges: np.ndarray, p: TrainParams):
    """The delay model, on rows watched to the horizon (every label known, so the delays of
    both classes are seen whole)."""
    periods = person_periods(watched[RESOLVED_DAYS].to_numpy(float), edges)
    at = periods["row"].to_numpy()
    frame = periods_frame(watched, inputs, at, periods[BUCKET], watched[LABEL].to_numpy()[at])
    return delay_model(inputs, p).fit(frame, periods["known"])


def still_unknown(
    delays: Pipeline, rows: pd.DataFrame, inputs: Inputs, edges: np.ndarray, label: int
) -> np.ndarray:
    """S_label(ELAPSED_DAYS | inputs) per row: the chance a row of that label is not known
    yet. Within a bucket the hazard is taken as constant in time, so a row part-way
    through one has faced that part of it."""
    n, width = len(rows), len(edges) - 1
    if n == 0:
        return np.zeros(0)
    at, buckets = np.repeat(np.arange(n), width), np.tile(np.arange(width), n)
    hazard = delays.predict_proba(periods_frame(rows, inputs, at, buckets, label))[:, 1]
    hazard = hazard.reshape(n, width)
    elapsed = rows[ELAPSED_DAYS].to_numpy(float)
    current = bucket_of(elapsed, edges)
    lo, hi = edges[current], edges[current + 1]
    faced = (np.arange(width)[None, :] < current[:, None]).astype(float)
    faced[np.arange(n), current] = np.clip((elapsed - lo) / np.maximum(hi - lo, 1e-9), 0, 1)
    return np.prod((1.0 - hazard) ** faced, axis=1)


def pending_positive(prior: np.ndarray, unknown_1: np.ndarray, unknown_0: np.ndarray):
    """P(positive | inputs, not known yet) from P(positive | inputs) and each class's chance
    to be still unknown after that long (Bayes)."""
    positive, negative = prior * unknown_1, (1.0 - prior) * unknown_0
    return positive / np.maximum(positive + negative, 1e-12)


def soft_labelled(states: pd.DataFrame, pending: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Every row in its order, a censored one twice (positive with weight `pending`,
    negative with the rest), and the weights."""
    censored = (states[STATE] == CENSORED).to_numpy()
    position = np.repeat(np.arange(len(states)), np.where(censored, 2, 1))
    frame = states.iloc[position].reset_index(drop=True)
    first = np.r_[True, position[1:] != position[:-1]]  # the first copy of each row
    soft = np.zeros(len(states))
    soft[censored] = pending
    is_censored = censored[position]
    frame[LABEL] = np.where(is_censored, first.astype(int), frame[LABEL].to_numpy())
    weight = np.where(is_censored, np.where(first, soft[position], 1 - soft[position]), 1.0)
    keep = weight > 0
    return frame[keep].reset_index(drop=True), weight[keep]


def fit_pipeline(frame: pd.DataFrame, inputs: Inputs, p: TrainParams, monotone, weight=None):
    cv = calibration_split(frame, inputs, p.calibration_folds)
    fit = {} if weight is None else {"model__sample_weight": weight}
    return build(inputs, p, monotone, cv).fit(frame[inputs.all], frame[LABEL], **fit)


def fit_censored(
    states: pd.DataFrame, inputs: Inputs, p: TrainParams, monotone: list[str] | None = None
) -> CensoredFit:
    """The project's Pipeline fitted on resolved and censored rows (`states` in time order,
    with LABEL_STATE), by `p.censored_rounds` rounds of EM: see the module's docstring."""
    missing = [c for c in LABEL_STATE if c not in states.columns]
    if missing:
        raise InputError(f"the training set has no {', '.join(missing)}: rebuild it")
    states = states.reset_index(drop=True)
    censored = (states[STATE] == CENSORED).to_numpy()
    edges = delay_edges(states.loc[~censored, RESOLVED_DAYS].to_numpy(float), p.delay_buckets)
    if not censored.any():  # nothing to impute: the plain fit, each row weighted 1
        model = fit_pipeline(states, inputs, p, monotone, np.ones(len(states)))
        return CensoredFit(model, edges.round(4).tolist(), 0, np.zeros(0))
    watched = states[~censored & (states[ELAPSED_DAYS] >= edges[-1]).to_numpy()]
    watched = watched.reset_index(drop=True)
    delays = fit_delays(watched, inputs, edges, p)
    pending_rows = states[censored].reset_index(drop=True)
    unknown_1 = still_unknown(delays, pending_rows, inputs, edges, 1)
    unknown_0 = still_unknown(delays, pending_rows, inputs, edges, 0)
    model = fit_pipeline(watched, inputs, p, monotone)  # the start: rows watched to the end
    for _ in range(p.censored_rounds):
        prior = model.predict_proba(pending_rows[inputs.all])[:, 1]
        pending = pending_positive(prior, unknown_1, unknown_0)
        frame, weight = soft_labelled(states, pending)
        model = fit_pipeline(frame, inputs, p, monotone, weight)
    return CensoredFit(model, edges.round(4).tolist(), int(censored.sum()), pending)
