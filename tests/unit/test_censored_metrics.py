"""Censoring-weighted ROC AUC and Brier: against known final labels, with label-dependent lag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from kaizen.errors import InputError
from kaizen.model.censored import (
    States,
    bootstrap_ci,
    censored_report,
    ipcw_brier,
    ipcw_roc_auc,
    paired_difference,
)
from kaizen.params import CensoredParams

HORIZON = 30.0  # the late class is known only this long after its event


def params(**change: object) -> CensoredParams:
    base = dict(
        min_elapsed_days=7,
        min_resolved_share=0.2,
        min_class_rows=20,
        score_buckets=4,
        bootstrap_samples=100,
        confidence=0.95,
        seed=7,
    )
    return CensoredParams(**{**base, **change})


def world(seed: int, n: int = 4000, early: int = 0) -> tuple[States, np.ndarray, np.ndarray]:
    """Rows of every age up to 80 days with final labels y and a calibrated score s. Class
    `early` settles after an exponential delay, longer above the median score (riskier rows
    take longer); the other class is known only at HORIZON. Censoring depends on the label."""
    rng = np.random.default_rng(seed)
    s = 1 / (1 + np.exp(-(-1.5 + 1.5 * rng.standard_normal(n))))
    y = (rng.random(n) < s).astype(int)
    elapsed = rng.uniform(0, 80, n)
    quick = rng.exponential(np.where(s < np.median(s), 4.0, 12.0))
    delay = np.where(y == early, np.minimum(quick, HORIZON - 0.5), HORIZON)
    resolved = delay <= elapsed
    return States(resolved, y, elapsed, np.where(resolved, delay, np.nan)), s, y


def recent(states: States) -> np.ndarray:
    """The newest rows worth estimating: watched 7 days or more, most younger than HORIZON."""
    return (states.elapsed >= 7) & (states.elapsed < 40)


def test_resolved_only_metrics_are_biased_and_the_weighted_ones_are_not() -> None:
    errors = {"naive_auc": [], "auc": [], "naive_brier": [], "brier": []}
    for seed in range(8):
        states, s, y = world(seed)
        target = recent(states)
        truth_auc = roc_auc_score(y[target], s[target])
        truth_brier = brier_score_loss(y[target], s[target])
        seen = target & states.resolved
        errors["naive_auc"].append(roc_auc_score(y[seen], s[seen]) - truth_auc)
        errors["naive_brier"].append(brier_score_loss(y[seen], s[seen]) - truth_brier)
        errors["auc"].append(ipcw_roc_auc(s, states, params(), target) - truth_auc)
        errors["brier"].append(ipcw_brier(s, states, params(), target) - truth_brier)
    bias = {k: float(np.mean(v)) for k, v in errors.items()}
    # The young resolved rows are the quick class: reading them alone misjudges both metrics.
    assert abs(bias["naive_brier"]) > 0.03 and abs(bias["naive_auc"]) > 0.015, bias
    assert abs(bias["brier"]) < 0.005 and abs(bias["auc"]) < 0.01, bias


def test_the_early_class_may_be_either_label() -> None:
    states, s, y = world(3, early=1)  # the positive class settles early, negatives at HORIZON
    target = recent(states)
    report = censored_report(s, states, params(), target)
    assert report["resolved_rows"] + report["censored_rows"] == report["rows"] == target.sum()
    assert report["roc_auc"]["low"] <= roc_auc_score(y[target], s[target])
    assert roc_auc_score(y[target], s[target]) <= report["roc_auc"]["high"]


def test_with_no_censoring_they_are_scikit_learns_metrics() -> None:
    rng = np.random.default_rng(0)
    s = np.round(rng.random(2000), 2)  # ties, to check they count a half
    y = (rng.random(2000) < s).astype(int)
    states = States.final(y)
    assert ipcw_roc_auc(s, states, params()) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert ipcw_brier(s, states, params()) == pytest.approx(brier_score_loss(y, s), abs=1e-12)


def test_the_interval_holds_the_estimate_and_the_seed_fixes_it() -> None:
    states, s, _ = world(1)
    target = recent(states)
    for metric in ("roc_auc", "brier"):
        first = bootstrap_ci(metric, s, states, params(), target)
        assert first.low < first.estimate < first.high
        assert bootstrap_ci(metric, s, states, params(), target) == first
        assert bootstrap_ci(metric, s, states, params(seed=8), target) != first


def test_a_paired_difference_sees_a_worse_challenger_and_not_itself() -> None:
    states, s, _ = world(2)
    target = recent(states)
    noisy = np.clip(s + np.random.default_rng(5).normal(0, 0.25, len(s)), 0.001, 0.999)
    same = paired_difference("roc_auc", s, s, states, params(), target)
    assert same.estimate == same.low == same.high == 0.0  # paired: shared noise cancels
    worse = paired_difference("roc_auc", s, noisy, states, params(), target)
    assert worse.high < 0  # a noisier ranking is worse, with confidence
    champion = ipcw_roc_auc(s, states, params(), target)
    assert worse.estimate == pytest.approx(ipcw_roc_auc(noisy, states, params(), target) - champion)


def test_it_refuses_in_one_line_when_a_class_cannot_be_estimated() -> None:
    states, s, _ = world(4, n=600)
    too_young = states.elapsed < 2  # the quick class has rarely settled by then
    cases = [
        (too_young, "resolve \\(either label\\) with probability below"),
        (recent(states) & (s < 0.02), "too few to estimate"),  # no late rows to speak of
        (np.zeros(len(s), bool), "target is empty"),
    ]
    for target, message in cases:
        with pytest.raises(InputError, match=message) as caught:
            bootstrap_ci("roc_auc", s, states, params(), target)
        assert "\n" not in str(caught.value)
    # Everything censored that is young: no complete cohort to learn a curve from.
    young = States(states.resolved & False, states.label, states.elapsed, states.delay * np.nan)
    with pytest.raises(InputError, match="no complete cohort"):
        ipcw_brier(s, young, params())


def training_set(path: Path, states: States, s: np.ndarray) -> Path:
    """A training set with label states, as training_set writes them, and one input."""
    at = pd.Timestamp("2026-06-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "row": np.arange(len(s)),
            "event_timestamp": at - pd.to_timedelta(states.elapsed, unit="D"),
            "x": np.log(s / (1 - s)),
            "label": np.where(states.resolved, states.label, 0),
            "state": np.where(
                states.resolved, np.where(states.label == 1, "positive", "negative"), "censored"
            ),
            "elapsed_days": states.elapsed,
            "resolved_days": states.delay,
        }
    )
    frame.to_parquet(path / "training_set.parquet")
    return path / "training_set.parquet"


def test_evaluate_reports_them_when_the_set_has_label_states(tmp_path: Path, caplog) -> None:
    from sklearn.linear_model import LogisticRegression

    from kaizen.stages.evaluate import censored_scores

    states, s, y = world(6)
    path = training_set(tmp_path, states, s)
    info = {"holdout_days": 40, "row_id": "row", "inputs": {"numeric": ["x"], "categorical": []}}
    model = LogisticRegression().fit(pd.read_parquet(path)[["x"]], y)  # a ranking like s
    found = censored_scores(path, model, info, params())
    held = pd.read_parquet(path).sort_values("event_timestamp")
    held = held[
        held["event_timestamp"].dt.floor("D")
        >= held["event_timestamp"].max().floor("D") - pd.Timedelta(days=39)
    ]
    held = held[held["elapsed_days"] >= 7]["row"].to_numpy()
    assert found["estimable"] and found["rows"] == len(held)
    truth = roc_auc_score(y[held], s[held])
    assert found["roc_auc"]["low"] <= truth <= found["roc_auc"]["high"]
    # Too young a holdout: the one-line reason, not an error.
    young = censored_scores(path, model, {**info, "holdout_days": 2}, params())
    assert young == {"estimable": False, "reason": "no rows to estimate on (the target is empty)"}
    # A set without label states: nothing, and the log says why.
    pd.read_parquet(path).drop(columns=["state"]).to_parquet(path)
    with caplog.at_level("INFO"):
        assert censored_scores(path, model, info, params()) is None
    assert "has no ['state'] columns" in caplog.text
