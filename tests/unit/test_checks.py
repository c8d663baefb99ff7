"""The staging gate's statistics against scikit-learn computed one resample at a time."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from support import REPO

from kaizen.params import load_params
from kaizen.promotion.checks import _auc_rows, paired_bootstrap


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


def test_row_aucs_are_roc_auc_score_with_ties() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random((20, 300)) < 0.1).astype(int)
    labels[:, 0], labels[:, 1] = 0, 1  # both classes in every row
    scores = np.round(rng.random((20, 300)), 1)  # heavy ties
    expected = [roc_auc_score(labels[i], scores[i]) for i in range(20)]
    assert _auc_rows(labels, scores) == pytest.approx(expected, abs=1e-12)


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
