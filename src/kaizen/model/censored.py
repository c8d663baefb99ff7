"""ROC AUC and Brier score under label lag, from rows that are resolved or still censored.

The estimand. Take a set of rows (the target: say the newest holdout rows) and a model's
scores. Each row has a FINAL label y, the one it has once its label can no longer change.
The estimand is the ROC AUC and the Brier score the model would have on those final labels
of those same rows: what hindsight will report. As of an instant only some labels are
known: each row is resolved (its label known, and final) or censored, and we know how long
it has been watched (`elapsed`) and, once resolved, how long that took (`delay`).

Why not the resolved rows alone. Censoring depends on the label: a class that can settle
early (settled before its deadline) fills the young resolved rows, the other (known only at a
deadline) is missing from them. Metrics of the resolved rows, or of provisional labels, are
biased, most on the newest rows, exactly where a shift shows first.

The censoring model. G_k(t | b) = P(a row of label k is resolved within t of its event |
bucket b): each label's resolution curve, the survival of its censoring, learned from the
complete cohorts (rows older than every censored row, so every label in them is known and
the empirical curve is the Kaplan-Meier curve without censoring). The buckets are quantiles
of `States.strata`, a row attribute that predicts how fast labels settle (`delay_strata`
learns one from features), or of the score when none is given.

Why not plain inverse weighting. Weighting resolved rows by 1 / G_k(age) needs G_k > 0; a
label known only at a horizon has G = 0 before it, so rows younger than that carry no
positive of that label and IPCW cannot see them (positivity fails). Weighting only the
early label and taking the other as the complement is unbiased in theory but, measured on
the worked example's simulator after a shock (positive rate 5% -> 10%, rows 7..28 days
old), its estimated positive mass is a small difference of large weighted counts: ROC AUC
off by +0.10..+0.38 on average, intervals [0.8, 2.6]. Restricting to rows older than the horizon would leave no
recent row at all. So the censored rows' label is modelled instead (the delayed-feedback
likelihood of Chapelle 2014, with the delay curves given):

    P(y = 1 | row) = pi = sigmoid(a + b * logit(score))          (a, b free: the target's
                                                                 own rate and slope)
    likelihood:  resolved 1: pi G1(age);  resolved 0: (1 - pi) G0(age);
                 censored:   pi (1 - G1(age)) + (1 - pi)(1 - G0(age))

(a, b) by maximum likelihood on the target rows; then every resolved row counts with its
label and every censored row with its posterior P(y = 1 | still censored at its age), and

    Brier = mean_i( p_i (1 - s_i)^2 + (1 - p_i) s_i^2 )
    AUC   = sum_{i != j} p_i (1 - p_j) [s_i > s_j] (+1/2 on ties) / sum_{i != j} p_i (1 - p_j)

With no censoring every p_i is the label and both are scikit-learn's `brier_score_loss` and
`roc_auc_score` exactly. The functions keep the `ipcw_` names of the issue that asked for
them: the censoring probabilities G enter through the likelihood, not as 1 / G weights.

The assumptions. (1) Censoring is independent of the label given (label, elapsed time,
stratum): within a bucket, how long a label of each kind takes to be known is what it was
in the complete cohorts (stable over time), even if the label rate moves. (2) The final
label's log-odds are linear in the score's logit on the target rows (Platt's form): the
rate and the sharpness may shift, the shape not. Measured on the simulator (10 seeds, a
shock doubling the positive rate, rows 7..28 days after it): ROC AUC error +0.001 (sd 0.010),
the true value inside the 95% interval for 10 of 10 with delay strata; conditioned on the
score alone, +0.03 and 9 of 10 (the shock moves which rows share a score). The Brier score
rests on the LEVEL of the positive rate and (2) is where it shows: it runs high after that
shock (estimated positives ~1.4x the true count; 5 of 10 intervals cover), so read it
as an upper bound there until the recalibration is richer than two parameters.

It refuses (InputError, one line) rather than guess when: there is no target row; no row is
older than every censored row (no complete cohort to learn a curve from); a label has fewer
than `min_class_rows` complete-cohort rows (with fewer in a bucket, its curve is pooled);
some target row is of an age at which neither label resolves with probability
`min_resolved_share`; fewer than `min_class_rows` target rows are resolved; or the target
holds an estimated mass of either label below `min_class_rows`. Intervals are percentile
bootstraps that resample every row (target and complete cohorts: the curves' noise is in
them) and refit the likelihood each time, seeded by `seed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit

from kaizen.errors import InputError
from kaizen.params import CensoredParams

__all__ = [
    "Interval",
    "States",
    "bootstrap_ci",
    "censored_report",
    "delay_strata",
    "ipcw_brier",
    "ipcw_roc_auc",
    "paired_difference",
]

# A bootstrap with more failed resamples than this (a class vanished from one) is refused.
MAX_FAILED_SHARE = 0.05
EPS = 1e-12


@dataclass(frozen=True)
class States:
    """Rows' label states as of one instant (see kaizen.labels.states_as_of)."""

    resolved: np.ndarray  # bool: label known by the instant
    label: np.ndarray  # 0/1: meaningful only where resolved
    elapsed: np.ndarray  # days from the event to the instant
    delay: np.ndarray  # days from the event until the label was known; NaN while censored
    # What the resolution curves are conditioned on (buckets of it); None: the model's score.
    strata: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.resolved)
        if not len(self.label) == len(self.elapsed) == len(self.delay) == n:
            raise InputError("label states: resolved, label, elapsed and delay differ in length")
        if np.isnan(self.elapsed).any():
            raise InputError("label states: elapsed days must be set on every row")
        if np.isnan(self.delay[self.resolved]).any():
            raise InputError("label states: a resolved row must say how long it took")

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> States:
        """From the columns `states_as_of` writes (state, elapsed_days, resolved_days, label)."""
        from kaizen.labels import CENSORED, ELAPSED_DAYS, LABEL, RESOLVED_DAYS, STATE

        missing = [c for c in (STATE, ELAPSED_DAYS, RESOLVED_DAYS, LABEL) if c not in frame]
        if missing:
            raise InputError(f"label states: the rows lack the columns {missing}")
        resolved = (frame[STATE] != CENSORED).to_numpy()
        return cls(
            resolved=resolved,
            label=frame[LABEL].to_numpy().astype(np.int8),
            elapsed=frame[ELAPSED_DAYS].to_numpy(dtype=float),
            delay=frame[RESOLVED_DAYS].to_numpy(dtype=float),
        )

    @classmethod
    def final(cls, label: np.ndarray) -> States:
        """Every label known: no censoring (then the estimators are the plain metrics)."""
        n = len(label)
        return cls(np.ones(n, bool), np.asarray(label), np.ones(n), np.zeros(n))


def delay_strata(features: np.ndarray, states: States, seed: int = 0) -> np.ndarray:
    """How soon each row's label is expected to be known, from its features: a regression of
    the resolution delay on the complete cohorts' rows of the label whose delay varies most.
    Conditioning the curves on it (`States.strata`) keeps them right when the mix of rows
    moves: the same score may stand for rows that settle sooner after a shift."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold, cross_val_predict

    ref = _reference(states)
    delays = [states.delay[ref][states.label[ref] == k] for k in (0, 1)]
    spread = [d.std() if len(d) else 0.0 for d in delays]
    rows = ref[states.label[ref] == int(np.argmax(spread))]
    if len(rows) < 2:
        raise InputError("too few complete-cohort rows to learn how soon labels are known")
    features = np.asarray(features)
    model = HistGradientBoostingRegressor(max_iter=50, random_state=seed)
    out = model.fit(features[rows], states.delay[rows]).predict(features)
    # The rows it learned from get out-of-fold predictions: in-sample ones would sort them by
    # their own noise, and curves per bucket would be sharper than any new row's.
    folds = KFold(5, shuffle=True, random_state=seed)
    out[rows] = cross_val_predict(model, features[rows], states.delay[rows], cv=folds)
    return out


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float

    def as_dict(self) -> dict[str, float]:
        return {
            "estimate": round(self.estimate, 6),
            "low": round(self.low, 6),
            "high": round(self.high, 6),
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class _Curve:
    """One class's resolution curve, read at each target row's age: the reference rows of
    the class sorted by (bucket, delay), each target row's bucket span in that order and
    how many in it had resolved by the row's age. Weights reweigh it for a resample."""

    rows: np.ndarray
    start: np.ndarray
    end: np.ndarray
    upto: np.ndarray

    def at(self, weights: np.ndarray) -> np.ndarray | None:
        cum = np.concatenate([[0.0], np.cumsum(weights[self.rows])])
        total = cum[self.end] - cum[self.start]
        if (total <= 0).any():
            return None  # the resample lost a bucket's reference rows
        return (cum[self.start + self.upto] - cum[self.start]) / total


@dataclass(frozen=True)
class _Plan:
    """Everything about one model's scores on the rows that does not change in a resample."""

    target: np.ndarray  # indices of the target rows
    score: np.ndarray  # the target rows' scores
    logit: np.ndarray  # ... on the logit scale: the recalibration's input
    resolved: np.ndarray  # the target rows' states
    label: np.ndarray
    curves: tuple[_Curve, _Curve]  # class 0's and class 1's
    # Ties and order of the target's scores, for the AUC's sums.
    groups: np.ndarray
    n_groups: int
    start: tuple[float, float] = (0.0, 1.0)  # where the likelihood's search starts


def _reference(states: States) -> np.ndarray:
    """Rows older than every censored row: complete cohorts, every label in them known."""
    censored = ~states.resolved
    oldest = states.elapsed[censored].max() if censored.any() else -np.inf
    return np.flatnonzero(states.resolved & (states.elapsed > oldest))


def _curve(
    states: States, bucket: np.ndarray, buckets: int, ref: np.ndarray, target: np.ndarray, k: int
) -> _Curve:
    """Class k's resolution curve per bucket, read at each target row's age."""
    rows = ref[states.label[ref] == k]
    rows = rows[np.lexsort((states.delay[rows], bucket[rows]))]
    edges = np.searchsorted(bucket[rows], np.arange(buckets + 1))
    b = bucket[target]
    start, end = edges[b], edges[b + 1]
    upto = np.empty(len(target), dtype=np.int64)
    delays = states.delay[rows]
    for value in np.unique(b):  # per bucket: how many resolved within each target row's age
        here = b == value
        upto[here] = np.searchsorted(
            delays[start[here][0] : end[here][0]], states.elapsed[target][here], side="right"
        )
    return _Curve(rows, start, end, upto)


def _plan(score: np.ndarray, states: States, target: np.ndarray, p: CensoredParams) -> _Plan:
    score = np.asarray(score, dtype=float)
    if len(score) != len(states.resolved):
        raise InputError(f"{len(score)} scores for {len(states.resolved)} rows")
    target = np.flatnonzero(target) if target.dtype == bool else np.asarray(target)
    if not len(target):
        raise InputError("no rows to estimate on (the target is empty)")
    ref = _reference(states)
    if not len(ref):
        raise InputError(
            "no row is older than every censored row: no complete cohort to learn how labels resolve"
        )
    # Buckets: quantiles of the reference rows' strata, so each holds as many of them.
    by = score if states.strata is None else np.asarray(states.strata, dtype=float)
    cuts = np.unique(np.quantile(by[ref], np.linspace(0, 1, p.score_buckets + 1)[1:-1]))
    bucketed = np.searchsorted(cuts, by, side="right")
    curves = []
    for k in (0, 1):
        per_bucket = np.bincount(bucketed[ref][states.label[ref] == k], minlength=len(cuts) + 1)
        if per_bucket.sum() < p.min_class_rows:
            raise InputError(
                f"the complete cohorts hold {per_bucket.sum()} rows of label {k}"
                f" (fewer than {p.min_class_rows}): too few to learn how its labels resolve"
            )
        if per_bucket.min() < p.min_class_rows:  # too few in a bucket: one curve for the class
            curves.append(_curve(states, np.zeros_like(bucketed), 1, ref, target, k))
        else:
            curves.append(_curve(states, bucketed, len(cuts) + 1, ref, target, k))
    ones = np.ones(len(states.resolved))
    seen = np.maximum(*(c.at(ones) for c in curves))
    if seen.min() < p.min_resolved_share:
        young = states.elapsed[target][seen < p.min_resolved_share].min()
        raise InputError(
            f"rows {young:.1f} days old resolve (either label) with probability below"
            f" {p.min_resolved_share}: too little is known of them yet; leave younger rows out or wait"
        )
    resolved = states.resolved[target]
    if resolved.sum() < p.min_class_rows:
        raise InputError(
            f"only {int(resolved.sum())} target rows are resolved (fewer than"
            f" {p.min_class_rows}): too few to estimate"
        )
    _, groups = np.unique(score[target], return_inverse=True)
    plan = _Plan(
        target=target,
        score=score[target],
        logit=np.log(np.clip(score[target], EPS, 1 - EPS) / np.clip(1 - score[target], EPS, 1)),
        resolved=resolved,
        label=states.label[target].astype(int),
        curves=(curves[0], curves[1]),
        groups=groups,
        n_groups=int(groups.max()) + 1,
    )
    positive = _positives(plan, ones)
    assert positive is not None  # the curves were read above with these weights
    # Resamples start from the point estimate's fit: a few steps instead of a search.
    plan = replace(plan, start=tuple(_fit(plan, *(c.at(ones) for c in curves), ones[target])))
    for k, mass in ((1, positive.sum()), (0, (1 - positive).sum())):
        if mass < p.min_class_rows:
            raise InputError(
                f"the target holds an estimated {mass:.1f} rows of label {k}"
                f" (fewer than {p.min_class_rows}): too few to estimate"
            )
    return plan


def _fit(plan: _Plan, g0: np.ndarray, g1: np.ndarray, count: np.ndarray) -> np.ndarray:
    """(a, b) of P(final label 1) = sigmoid(a + b * logit(score)), by maximum likelihood on
    the target rows' states. A row resolved with label 1 has likelihood pi * G1(age), one
    resolved with 0 (1 - pi) * G0(age), a censored one pi (1 - G1) + (1 - pi)(1 - G0)."""
    x, pos = plan.logit, plan.resolved & (plan.label == 1)
    neg = plan.resolved & (plan.label == 0)
    cen = ~plan.resolved
    gap = g0 - g1  # the censored likelihood is (1 - G0) + pi * gap

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = theta[0] + theta[1] * x
        pi = expit(eta)
        lik_c = np.clip((1 - g0) + pi * gap, EPS, None)
        ll = np.where(pos, -np.logaddexp(0, -eta), 0.0) + np.where(neg, -np.logaddexp(0, eta), 0.0)
        ll = ll + np.where(cen, np.log(lik_c), 0.0)
        slope = np.where(pos, 1 - pi, 0.0) - np.where(neg, pi, 0.0)
        slope = slope + np.where(cen, gap * pi * (1 - pi) / lik_c, 0.0)
        grad = np.array([(count * slope).sum(), (count * slope * x).sum()])
        return -float((count * ll).sum()), -grad

    return minimize(loss, np.array(plan.start), jac=True, method="BFGS").x


def _positives(plan: _Plan, weights: np.ndarray) -> np.ndarray | None:
    """Each target row's positive mass under row weights: its label once resolved, else its
    probability of a final 1 given that it is still unresolved at its age (None: a resample
    lost a bucket's reference)."""
    g0, g1 = (c.at(weights) for c in plan.curves)
    if g0 is None or g1 is None:
        return None
    a, b = _fit(plan, g0, g1, weights[plan.target])
    pi = expit(a + b * plan.logit)
    waiting_1, waiting_0 = pi * (1 - g1), (1 - pi) * (1 - g0)
    total = waiting_1 + waiting_0
    # Both curves say such a row is always known by now: nothing to tell, the model's pi.
    q = np.where(total > EPS, waiting_1 / np.maximum(total, EPS), pi)
    return np.where(plan.resolved, plan.label, q).astype(float)


def _auc(plan: _Plan, pos: np.ndarray, count: np.ndarray) -> float:
    a, b = count * pos, count * (1.0 - pos)
    a_g = np.bincount(plan.groups, a, plan.n_groups)
    b_g = np.bincount(plan.groups, b, plan.n_groups)
    below = np.cumsum(b_g) - b_g  # negative mass strictly below each score
    self_pairs = (count * pos * (1.0 - pos)).sum()  # a row paired with itself: left out
    den = a_g.sum() * b_g.sum() - self_pairs
    if den <= 0:
        return float("nan")
    return float(((a_g * below).sum() + 0.5 * ((a_g * b_g).sum() - self_pairs)) / den)


def _brier(plan: _Plan, pos: np.ndarray, count: np.ndarray) -> float:
    s = plan.score
    if count.sum() <= 0:
        return float("nan")
    return float((count * (pos * (1 - s) ** 2 + (1 - pos) * s**2)).sum() / count.sum())


_METRICS: dict[str, Callable[[_Plan, np.ndarray, np.ndarray], float]] = {
    "roc_auc": _auc,
    "brier": _brier,
}


def _target_mask(states: States, target: np.ndarray | None) -> np.ndarray:
    return np.ones(len(states.resolved), bool) if target is None else np.asarray(target)


def _point(metric: str, plan: _Plan, n: int) -> float:
    pos = _positives(plan, np.ones(n))
    assert pos is not None  # _plan read the curves with these weights
    return _METRICS[metric](plan, pos, np.ones(len(plan.target)))


def ipcw_roc_auc(
    score: np.ndarray, states: States, p: CensoredParams, target: np.ndarray | None = None
) -> float:
    """The ROC AUC `score` would have on the final labels of the `target` rows (default:
    all), estimated from the label states (module docstring)."""
    plan = _plan(score, states, _target_mask(states, target), p)
    return _point("roc_auc", plan, len(states.resolved))


def ipcw_brier(
    score: np.ndarray, states: States, p: CensoredParams, target: np.ndarray | None = None
) -> float:
    """The Brier score `score` would have on the final labels of the `target` rows."""
    plan = _plan(score, states, _target_mask(states, target), p)
    return _point("brier", plan, len(states.resolved))


def _resamples(n: int, p: CensoredParams) -> Iterator[np.ndarray]:
    """Bootstrap row counts, one resample at a time, seeded: the same rows for every model."""
    rng = np.random.default_rng(p.seed)
    for _ in range(p.bootstrap_samples):
        yield np.bincount(rng.integers(0, n, n), minlength=n).astype(float)


def _replicates(plans: list[_Plan], n: int, p: CensoredParams) -> dict[str, np.ndarray]:
    """Each metric of each plan on each resample, samples x plans (NaN: a degenerate one)."""
    out = {metric: np.full((p.bootstrap_samples, len(plans)), np.nan) for metric in _METRICS}
    for r, weights in enumerate(_resamples(n, p)):
        for j, plan in enumerate(plans):
            pos = _positives(plan, weights)
            if pos is None:
                continue
            for metric, fn in _METRICS.items():
                out[metric][r, j] = fn(plan, pos, weights[plan.target])
    return out


def _interval(estimate: float, draws: np.ndarray, p: CensoredParams, what: str) -> Interval:
    failed = np.isnan(draws).mean()
    if failed > MAX_FAILED_SHARE:
        raise InputError(
            f"{what}: {failed:.0%} of bootstrap resamples lost a class or a curve: too few rows to estimate"
        )
    tail = (1 - p.confidence) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), p.confidence)


def bootstrap_ci(
    metric: str,
    score: np.ndarray,
    states: States,
    p: CensoredParams,
    target: np.ndarray | None = None,
) -> Interval:
    """`metric` ("roc_auc" or "brier") with its percentile bootstrap interval (rows resampled,
    target and reference alike, seeded by `p.seed`)."""
    plan = _plan(score, states, _target_mask(states, target), p)
    n = len(states.resolved)
    draws = _replicates([plan], n, p)[metric][:, 0]
    return _interval(_point(metric, plan, n), draws, p, metric)


def paired_difference(
    metric: str,
    champion: np.ndarray,
    challenger: np.ndarray,
    states: States,
    p: CensoredParams,
    target: np.ndarray | None = None,
) -> Interval:
    """challenger minus champion on the same rows, with a paired bootstrap interval: both are
    scored on every resample, so what the rows share cancels out of the difference."""
    mask = _target_mask(states, target)
    plans = [_plan(champion, states, mask, p), _plan(challenger, states, mask, p)]
    n = len(states.resolved)
    draws = _replicates(plans, n, p)[metric]
    estimate = _point(metric, plans[1], n) - _point(metric, plans[0], n)
    return _interval(estimate, draws[:, 1] - draws[:, 0], p, f"{metric} difference")


def censored_report(
    score: np.ndarray, states: States, p: CensoredParams, target: np.ndarray | None = None
) -> dict[str, Any]:
    """ROC AUC and Brier with their intervals, and what they rest on (for metrics.json)."""
    mask = _target_mask(states, target)
    plan = _plan(score, states, mask, p)
    n = len(states.resolved)
    out: dict[str, Any] = {}
    replicates = _replicates([plan], n, p)
    for metric in _METRICS:
        draws = replicates[metric][:, 0]
        out[metric] = _interval(_point(metric, plan, n), draws, p, metric).as_dict()
    pos = _positives(plan, np.ones(n))
    assert pos is not None
    resolved = plan.resolved
    out.update(
        {
            "rows": len(plan.target),
            "resolved_rows": int(resolved.sum()),
            "censored_rows": int((~resolved).sum()),
            "estimated_positives": round(float(pos.sum()), 3),
            "reference_rows": len(_reference(states)),
        }
    )
    return out
