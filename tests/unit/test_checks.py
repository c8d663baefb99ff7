"""The staging gate's statistics against scikit-learn computed one resample at a time."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from support import REPO

from kaizen.params import load_params
from kaizen.promotion.checks import _auc_weighted, _sorted_groups, paired_bootstrap


def _one_at_a_time(y: np.ndarray, new: np.ndarray, old: np.ndarray, p) -> dict[str, float]:
    """The gate's bootstrap as first written: a roc_auc_score pair per seeded resample."""
    rng = np.random.default_rng(p.non_inferiority.seed)
    diffs = []
    for _ in range(p.non_inferiority.bootstrap_samples):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        diffs.append(roc_auc_score(y[idx], new[idx]) - roc_auc_score(y[idx], old[idx]))
    alpha = (1 - p.non_inferiority.confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    return {"low": low, "high": high, "samples": len(diffs)}


def _scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.08).astype(int)
    new = np.clip(0.05 + 0.3 * y + rng.normal(0, 0.15, n), 0, 1)
    old = np.round(np.clip(0.05 + 0.2 * y + rng.normal(0, 0.15, n), 0, 1), 2)  # many ties
    return y, new, old


def test_weighted_aucs_are_roc_auc_score_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.1).astype(int)
    y[0], y[1] = 0, 1
    scores = np.round(rng.random(300), 1)  # heavy ties
    counts = rng.integers(0, 3, (20, 300)).astype(float)  # a resample's multiplicities
    counts[:, :2] = 1  # both classes in every row
    expected = [roc_auc_score(y, scores, sample_weight=counts[i]) for i in range(20)]
    got = _auc_weighted(y, counts, _sorted_groups(scores))
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("rows, samples", [(400, 250), (37, 230)])
def test_the_bootstrap_ci_is_the_one_resample_at_a_time_ci(rows: int, samples: int) -> None:
    base = load_params(REPO / "projects" / "credit_risk" / "params.yaml").promote
    ni = base.non_inferiority.model_copy(update={"bootstrap_samples": samples})
    p = base.model_copy(update={"non_inferiority": ni})
    y, new, old = _scores(rows, seed=rows)
    got, want = paired_bootstrap(y, new, old, p), _one_at_a_time(y, new, old, p)
    # 37 rows at 8% late: some resamples hold one class only and are skipped by both.
    assert got["samples"] == want["samples"] <= samples
    assert got["low"] == pytest.approx(want["low"], abs=1e-12)
    assert got["high"] == pytest.approx(want["high"], abs=1e-12)
    assert got["delta"] == pytest.approx(roc_auc_score(y, new) - roc_auc_score(y, old))


def _paired(n: int, gain: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Champion and challenger scores on the same rows; the challenger's signal is `gain`
    stronger (0: another draw of the same model)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    shared = y * 1.0 + rng.normal(0, 1, n)
    old = shared + rng.normal(0, 0.15, n)
    new = shared + gain * y + rng.normal(0, 0.15, n)
    squash = lambda x: 1 / (1 + np.exp(-(x - 2.5)))  # noqa: E731
    return y, squash(new), squash(old)


def test_require_improvement_rejects_an_equal_challenger_non_inferiority_does_not() -> None:
    from kaizen.promotion.checks import compare, non_inferior, require_improvement

    base = load_params(REPO / "projects" / "credit_risk" / "params.yaml").promote
    y, new, old = _paired(3000, 0.0, seed=6)
    same = require_improvement(y, old, old.copy(), base)
    assert not same.passed and "no improvement shown" in same.detail
    assert same.name == "improvement" and same.values["test"] == "improvement"
    equal = require_improvement(y, new, old, base)
    assert not equal.passed, equal.detail
    assert non_inferior(y, new, old, base).passed  # the same evidence passes the weaker test
    y, new, old = _paired(3000, 0.3, seed=6)
    better = require_improvement(y, new, old, base)
    assert better.passed and better.values["low"] > 0, better.detail
    assert compare(y, new, None, base, "improvement").passed  # no champion: nothing to beat
    with pytest.raises(ValueError, match="unknown comparison"):
        compare(y, new, old, base, "superiority")


def test_the_trigger_selects_the_comparison() -> None:
    base = load_params(REPO / "projects" / "credit_risk" / "params.yaml").promote
    assert base.require_improvement == ["retrain_request"]  # the project's default
    assert base.comparison("retrain_request") == "improvement"
    for trigger in ("schedule", "new_labels", "manual", None):
        assert base.comparison(trigger) == "non_inferiority"
    every = base.model_copy(update={"require_improvement": ["retrain_request", "schedule"]})
    assert every.comparison("schedule") == "improvement"
    # A decision recorded before the setting existed replays on non-inferiority.
    old = {k: v for k, v in base.model_dump().items() if k != "require_improvement"}
    assert base.from_record(old).comparison("retrain_request") == "non_inferiority"


def test_the_trigger_comes_from_the_environment_and_a_typo_is_refused(monkeypatch) -> None:
    from kaizen.errors import ConfigError
    from kaizen.model.manifest import TRIGGER_ENV, trigger

    monkeypatch.delenv(TRIGGER_ENV, raising=False)
    assert trigger() == "manual"
    monkeypatch.setenv(TRIGGER_ENV, "retrain_request")
    assert trigger() == "retrain_request"
    monkeypatch.setenv(TRIGGER_ENV, "drift")
    with pytest.raises(ConfigError, match="expected one of"):
        trigger()


def test_the_train_dag_names_why_it_trains() -> None:
    from types import SimpleNamespace

    from kaizen.dags.tasks import train_trigger

    def context(run_type: str, events: dict) -> dict:
        return {
            "dag_run": SimpleNamespace(run_type=run_type),
            "triggering_asset_events": events,
        }

    assert train_trigger(context("scheduled", {}), "p.retrain_request") == "schedule"
    assert train_trigger(context("manual", {}), "p.retrain_request") == "manual"
    assert train_trigger(context("asset_triggered", {}), "p.retrain_request") == "new_labels"
    from collections import namedtuple

    retrain = namedtuple("Asset", "name")("p.retrain_request")  # hashable, as Airflow's
    asked = context("asset_triggered", {retrain: [SimpleNamespace(extra={"ds": "2026-03-01"})]})
    assert train_trigger(asked, "p.retrain_request") == "retrain_request"


def test_a_record_from_before_alpha_spending_is_refused_in_one_line() -> None:
    from kaizen.errors import InputError

    base = load_params(REPO / "projects" / "credit_risk" / "params.yaml").promote
    old = base.model_dump()
    del old["production"]["sequential"]
    with pytest.raises(InputError, match="fixed alpha") as refused:
        base.from_record(old)
    assert "\n" not in str(refused.value)
