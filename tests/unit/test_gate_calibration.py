"""The gate calibration at small n: the real gates, planted challengers, loose bounds that a
broken gate (one that always promotes, or never does) still fails."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from support import REPO

from kaizen.params import PromoteParams, load_params
from kaizen.promotion import calibration
from kaizen.promotion.checks import Check

COUNTS = {"improvement": {"null": 8, "regression": 8, "improvement": 8}}
WORLD = calibration.World(holdout_rows=3000)


@pytest.fixture(scope="module")
def p() -> PromoteParams:
    promote = load_params(REPO / "projects" / "credit_risk" / "params.yaml").promote
    fewer = promote.non_inferiority.model_copy(update={"bootstrap_samples": 200})
    return promote.model_copy(update={"non_inferiority": fewer})  # a faster bootstrap


def _promoted(report: dict, kind: str) -> float:
    return report["results"]["improvement"][kind]["promoted"]["rate"]


def _sound(report: dict) -> bool:
    """Loose bounds for 8 trials each (the full run's are 5%, 5% and 80%)."""
    return (
        _promoted(report, "null") <= 2 / 8
        and _promoted(report, "regression") <= 2 / 8
        and _promoted(report, "improvement") >= 4 / 8
    )


def test_the_planted_challengers_have_the_planted_roc_auc() -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    for kind, gain in (("null", 0.0), ("regression", -0.02), ("improvement", 0.03)):
        d = calibration.plant(kind, WORLD, 100_000, rng)
        auc = roc_auc_score(d["label"], d["challenger"]) - roc_auc_score(d["label"], d["champion"])
        assert auc == pytest.approx(gain, abs=0.005), kind
        assert d["label"].mean() == pytest.approx(WORLD.positive_rate, abs=0.003)


def test_the_gates_keep_nulls_and_regressions_out_and_let_improvements_in(
    p: PromoteParams, tmp_path: Path
) -> None:
    report = calibration.calibrate(p, WORLD, COUNTS)
    assert _sound(report), report["results"]
    md, js = calibration.write(report, tmp_path, dt.date(2026, 12, 8))
    assert (
        md.name == "gate-calibration-2026-12-08.md"
        and "| improvement | null | 8 |" in md.read_text()
    )
    assert json.loads(js.read_text())["results"]["improvement"]["null"]["promoted"]["n"] == 8


def test_a_gate_that_always_promotes_or_never_does_fails_it(
    p: PromoteParams, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        calibration.checks, "compare", lambda *a, **k: Check("improvement", True, "broken")
    )
    monkeypatch.setattr(calibration, "judge", lambda *a, **k: ("promote", []))
    assert not _sound(calibration.calibrate(p, WORLD, COUNTS))
    monkeypatch.setattr(calibration, "judge", lambda *a, **k: ("demote", []))
    assert not _sound(calibration.calibrate(p, WORLD, COUNTS))
