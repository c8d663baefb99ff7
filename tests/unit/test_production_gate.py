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
from kaizen.promotion.sequential import thresholds

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


def _pair(n: int, gain: float, seed: int, rate: float = 0.08) -> pd.DataFrame:
    """Paired live evidence in the order labels became final: two models of one signal, the
    challenger's `gain` stronger (0: an equally good model)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype("int64")
    shared = y * 1.2 + rng.normal(0, 1.0, n)
    champion = shared + rng.normal(0, 0.5, n)
    challenger = shared + gain * y + rng.normal(0, 0.5, n)
    return pd.DataFrame(
        {
            "request_id": [f"r{i:05d}" for i in range(n)],
            "label": y,
            "champion": _squash(champion),
            "challenger": _squash(challenger),
            "final_ts": pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(np.arange(n), "h"),
        }
    )


def test_an_inconclusive_look_waits_for_the_next_and_the_last_look_decides(
    p: PromoteParams,
) -> None:
    """Two equally good models: no look crosses; the early ones wait, the last one demotes."""
    seq = p.production.sequential
    evidence = _pair(4000, 0.0, seed=2)
    marks = thresholds(seq.horizon_positives, seq.looks, p.production.min_positives)
    assert len(marks) == seq.looks > 1 and marks[-1] == seq.horizon_positives
    first = evidence[evidence["label"].cumsum() <= marks[0] + 5]  # look 1, not yet look 2
    verdict, found = judge(first, _errors(), p, baked=True, expired=False)
    quality = next(c for c in found if c.name == "live_quality")
    assert not quality.passed and quality.values["look"] == 1, quality.detail
    assert quality.values["positives"] == marks[0]  # judged on the rows that reached the look
    assert verdict == "wait", [c.detail for c in found]
    assert "waiting for look 2" in next(c for c in found if c.name == "conclusive").detail
    assert judge(first, _errors(), p, baked=True, expired=True)[0] == "demote"
    verdict, found = judge(evidence, _errors(), p, baked=True, expired=False)
    quality = next(c for c in found if c.name == "live_quality")
    assert quality.values["look"] == seq.looks and not quality.passed
    assert verdict == "demote", [c.detail for c in found]


def test_a_later_day_at_the_same_look_is_the_same_test(p: PromoteParams) -> None:
    """More labels that do not reach the next look change nothing: no extra look is taken."""
    evidence = _pair(4000, 0.0, seed=3)
    cum = evidence["label"].cumsum()
    seq = p.production.sequential
    marks = thresholds(seq.horizon_positives, seq.looks, p.production.min_positives)
    monday, friday = evidence[cum <= marks[0] + 1], evidence[cum <= marks[1] - 1]
    a = next(c for c in judge(monday, _errors(), p, True, False)[1] if c.name == "live_quality")
    b = next(c for c in judge(friday, _errors(), p, True, False)[1] if c.name == "live_quality")
    assert a.values == b.values
    # The order labels became final decides the look's rows, not the frame's row order.
    shuffled = friday.sample(frac=1.0, random_state=0)
    c = next(c for c in judge(shuffled, _errors(), p, True, False)[1] if c.name == "live_quality")
    assert c.values == b.values


def test_a_clearly_better_challenger_crosses_early_and_the_record_names_the_look(
    p: PromoteParams,
) -> None:
    from kaizen.promotion.production import sequential_record

    evidence = _pair(4000, 1.5, seed=4)
    for day in range(1, 40):  # 100 more final labels a day, judged every day
        verdict, found = judge(
            evidence.head(100 * day), _errors(), p, baked=True, expired=False, test="improvement"
        )
        if verdict != "wait":
            break
    assert verdict == "promote", [c.detail for c in found]
    record = sequential_record(found)
    assert record["look"] < p.production.sequential.looks  # stopped before the horizon
    assert 0 < record["alpha_spent"] < p.production.sequential.alpha
    assert record["z"] >= record["boundary_z"]
    # An equal challenger is never promoted under the improvement test, at any look.
    for seed in range(5):
        equal = _pair(4000, 0.0, seed=10 + seed)
        assert judge(equal, _errors(), p, True, False, test="improvement")[0] != "promote"


def test_the_boundaries_are_the_textbook_ones_and_spend_alpha_exactly() -> None:
    from kaizen.promotion.sequential import boundaries, spent

    obf = [b.boundary_z for b in boundaries(0.025, 4, "obrien_fleming")]
    assert obf == pytest.approx([4.333, 2.963, 2.359, 2.014], abs=2e-3)  # Jennison & Turnbull
    assert boundaries(0.025, 1, "pocock")[0].boundary_z == pytest.approx(1.95996, abs=1e-4)
    assert spent(1.0, 0.025, "pocock") == pytest.approx(0.025)
    # Brownian motion under the null crosses some boundary at the total alpha, not 4 x it.
    rng = np.random.default_rng(0)
    for kind in ("obrien_fleming", "pocock"):
        looks = boundaries(0.025, 4, kind)
        paths = np.cumsum(rng.normal(0, np.sqrt(0.25), (200_000, 4)), axis=1)
        z = paths / np.sqrt([0.25, 0.5, 0.75, 1.0])
        crossed = (z >= [b.boundary_z for b in looks]).any(axis=1).mean()
        assert crossed == pytest.approx(0.025, abs=0.0015), kind
        assert (z >= 1.96).any(axis=1).mean() > 0.05  # a fixed 2.5% daily re-test: inflated


def test_the_first_challenger_passes_floors_load_test_and_error_rate() -> None:
    from kaizen.promotion.production import judge_first, load_errors

    p = load_params(REPO / "projects" / "credit_risk" / "params.yaml").promote
    good = {"roc_auc": 0.8, "pr_auc": 0.3, "brier": 0.05, "log_loss": 0.2}
    load = {
        "requests": 400, "failures": 0, "p50_ms": 20.0, "p99_ms": 80.0, "rps": 40.0,
        "users": 4, "duration_s": 10, "cores": "1+1", "first_failure": None,
    }  # fmt: skip
    verdict, found = judge_first(good, p, load, load_errors(load))
    assert verdict == "promote", [c.detail for c in found]
    assert [c.name for c in found] == ["floors", "load_test", "error_rate"]
    # Below the floors: demoted before any load test is run.
    verdict, found = judge_first({**good, "roc_auc": 0.55}, p, None, load_errors(None))
    assert verdict == "demote" and [c.name for c in found] == ["floors"]
    # A failing or skipped load test leaves no clean record of predictions either.
    failing = {**load, "failures": 12, "first_failure": "500"}
    verdict, found = judge_first(good, p, failing, load_errors(failing))
    assert verdict == "demote"
    assert {c.name for c in found if not c.passed} == {"load_test", "error_rate"}
    skipped = {"skipped": "promote.load_test.enabled is false in params.yaml"}
    verdict, found = judge_first(good, p, skipped, load_errors(skipped))
    assert verdict == "demote"
    assert [c.name for c in found if not c.passed] == ["error_rate"]


def _squash(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(x - 2)))
