"""The production gate's judgement, on prediction logs built here (no services needed)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from support import REPO

from kaizen.model.versions import Version
from kaizen.params import PromoteParams, load_params
from kaizen.promotion.production import error_rates, judge, paired_evidence

INPUTS = ["late_ratio_180d", "tenure_days"]


def _version(number: str, weights: tuple[float, float], seed: int = 0) -> Version:
    """A fitted model whose ranking quality is set by how much it weighs the real signal."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"late_ratio_180d": rng.random(400), "tenure_days": rng.random(400) * 900})
    model = LogisticRegression().fit(x, (x["late_ratio_180d"] > 0.5).astype(int))
    model.coef_ = np.array([weights])
    model.intercept_ = np.array([-3.0])
    return Version(number, f"run-{number}", {}, [], model, 1000)


def _world(n: int = 600, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Live requests served by the champion, with labels drawn from `late_ratio_180d` exactly
    as a (3.0, 0.0) model predicts them."""
    rng = np.random.default_rng(seed)
    late_ratio = rng.random(n)
    tenure = rng.random(n) * 900
    label = (rng.random(n) < 1 / (1 + np.exp(3 - 3 * late_ratio))).astype("int64")  # calibrated
    features = [
        json.dumps({"late_ratio_180d": float(a), "tenure_days": float(b)})
        for a, b in zip(late_ratio, tenure, strict=True)
    ]
    predictions = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "ts": pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(np.arange(n), "min"),
            "customer_id": np.arange(n, dtype="int64"),
            "invoice_id": [f"inv{i}" for i in range(n)],
            "requested_amount": 100.0,
            "model_version": "1",
            "alias": "champion",
            "role": "served",
            "probability": np.nan,
            "decision": "approve",
            "features": features,
            "fresh": True,
            "latency_ms": 5.0,
            "error": None,
        }
    )
    labels = pd.DataFrame({"invoice_id": predictions["invoice_id"], "label": label})
    return predictions, labels


@pytest.fixture(scope="module")
def p() -> PromoteParams:
    promote = load_params(REPO / "projects" / "credit_risk" / "params.yaml").promote
    fewer = promote.non_inferiority.model_copy(update={"bootstrap_samples": 200})
    return promote.model_copy(update={"non_inferiority": fewer})  # a faster bootstrap


def _logged(predictions: pd.DataFrame, version: Version, role: str, alias: str) -> pd.DataFrame:
    frame = pd.DataFrame([json.loads(f) for f in predictions["features"]])
    return predictions.assign(
        model_version=version.number,
        role=role,
        alias=alias,
        probability=version.score(frame),
    )


def test_shadow_scores_pair_up_by_request_and_nothing_is_rescored() -> None:
    champion, challenger = _version("1", (3.0, 0.0)), _version("2", (3.0, 0.001))
    predictions, labels = _world()
    log = pd.concat(
        [
            _logged(predictions, champion, "served", "champion"),
            _logged(predictions, challenger, "shadow", "challenger"),
        ]
    )
    evidence, counts = paired_evidence(log, labels, champion, challenger, "invoice_id")
    assert counts == {
        "labelled_requests": 600,
        "paired": 600,
        "champion_rescored": 0,
        "challenger_rescored": 0,
    }
    assert evidence["request_id"].is_unique
    assert (evidence["champion"] != evidence["challenger"]).any()


def test_canary_requests_are_rescored_on_the_features_they_were_served_with() -> None:
    champion, challenger = _version("1", (3.0, 0.0)), _version("2", (2.0, 0.0))
    predictions, labels = _world()
    half = len(predictions) // 2
    log = pd.concat(
        [
            _logged(predictions.iloc[:half], champion, "served", "champion"),
            _logged(predictions.iloc[half:], challenger, "served", "challenger"),
        ]
    )
    evidence, counts = paired_evidence(log, labels, champion, challenger, "invoice_id")
    assert counts["paired"] == 600
    assert counts["champion_rescored"] == 300 and counts["challenger_rescored"] == 300
    frame = pd.DataFrame([json.loads(f) for f in predictions["features"]])
    np.testing.assert_allclose(evidence["challenger"], challenger.score(frame))


def test_unlabelled_and_failed_requests_are_not_evidence() -> None:
    champion, challenger = _version("1", (3.0, 0.0)), _version("2", (3.0, 0.0))
    predictions, labels = _world(n=100)
    log = _logged(predictions, champion, "served", "champion")
    log.loc[log.index[:10], "error"] = "feature store unavailable"
    log.loc[log.index[:10], "probability"] = np.nan
    evidence, counts = paired_evidence(log, labels.iloc[:90], champion, challenger, "invoice_id")
    assert counts["labelled_requests"] == 80 and len(evidence) == 80


def _errors(challenger_failed: int = 0, served: int = 600) -> dict:
    log = pd.DataFrame(
        {
            "model_version": ["1"] * 600 + ["2"] * served,
            "error": [None] * 600
            + ["boom"] * challenger_failed
            + [None] * (served - challenger_failed),
        }
    )
    return error_rates(log, "1", "2")


def test_a_challenger_as_good_live_is_promoted_and_a_worse_one_demoted(p: PromoteParams) -> None:
    champion = _version("1", (3.0, 0.0))
    predictions, labels = _world()
    for challenger, expected in (
        (_version("2", (3.05, 0.0)), "promote"),  # same ranking, a hair sharper
        (_version("3", (0.0, 0.002)), "demote"),  # ignores the signal: ranks by tenure only
    ):
        log = _logged(predictions, champion, "served", "champion")
        evidence, _ = paired_evidence(log, labels, champion, challenger, "invoice_id")
        verdict, found = judge(evidence, _errors(), p, baked=True, expired=False)
        assert verdict == expected, [c.detail for c in found]
        quality = next(c for c in found if c.name == "live_quality")
        assert quality.passed is (expected == "promote")


def test_it_waits_for_the_bake_period_and_for_labels_then_gives_up(p: PromoteParams) -> None:
    champion, challenger = _version("1", (3.0, 0.0)), _version("2", (3.0, 0.0))
    predictions, labels = _world()
    log = _logged(predictions, champion, "served", "champion")
    evidence, _ = paired_evidence(log, labels, champion, challenger, "invoice_id")
    assert judge(evidence, _errors(), p, baked=False, expired=False)[0] == "wait"
    few = evidence.head(p.production.min_labelled - 1)
    verdict, found = judge(few, _errors(), p, baked=True, expired=False)
    assert verdict == "wait"
    assert not next(c for c in found if c.name == "live_evidence").passed
    assert judge(few, _errors(), p, baked=True, expired=True)[0] == "demote"


def test_a_challenger_that_fails_live_requests_is_demoted(p: PromoteParams) -> None:
    champion, challenger = _version("1", (3.0, 0.0)), _version("2", (3.0, 0.0))
    predictions, labels = _world()
    evidence, _ = paired_evidence(
        _logged(predictions, champion, "served", "champion"),
        labels,
        champion,
        challenger,
        "invoice_id",
    )
    verdict, found = judge(evidence, _errors(challenger_failed=30), p, baked=True, expired=False)
    assert verdict == "demote"
    assert "failed 30 of 600" in next(c for c in found if c.name == "error_rate").detail
    # No live traffic at all is not a clean record either.
    assert judge(evidence, _errors(served=0), p, baked=True, expired=False)[0] == "demote"


def test_an_inconclusive_live_comparison_waits_for_labels_until_the_bake_expires(
    p: PromoteParams,
) -> None:
    """Neither shown non-inferior nor shown worse: the interval is wide, so it waits."""
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.06).astype("int64")
    shared = y * 1.2 + rng.normal(0, 1.0, y.size)
    champion = shared + rng.normal(0, 0.5, y.size)  # two equally good models, 300 labels
    challenger = shared + rng.normal(0, 0.5, y.size)
    evidence = pd.DataFrame(
        {"label": y, "champion": _squash(champion), "challenger": _squash(challenger)}
    )
    verdict, found = judge(evidence, _errors(), p, baked=True, expired=False)
    quality = next(c for c in found if c.name == "live_quality")
    assert not quality.passed and quality.values["low"] < -p.production.roc_auc_margin
    assert quality.values["high"] >= 0, quality.detail  # the premise: the interval reaches zero
    assert verdict == "wait", [c.detail for c in found]
    assert "straddles zero" in next(c for c in found if c.name == "conclusive").detail
    assert judge(evidence, _errors(), p, baked=True, expired=True)[0] == "demote"


def _squash(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(x - 2)))
