"""Training on censored rows (`train.labels: censored`) on a synthetic world whose censoring
depends on the label: a negative resolves any time before the horizon, a positive only at it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kaizen.labels import CENSORED, LABEL, NEGATIVE, POSITIVE, STATE, states_as_of
from kaizen.model import serialization
from kaizen.model.data import Inputs, model_inputs
from kaizen.model.hazard import BUCKET, fit_censored, person_periods
from kaizen.model.onnx_export import OnnxModel, export, parity
from kaizen.model.pipeline import build, calibration_split
from kaizen.params import TrainParams, load_params
from kaizen.stages.training_set import training_rows

REPO = Path(__file__).parents[2]
INPUTS = Inputs(numeric=["x"], categorical=["group"])
HORIZON = 40.0  # days from an event to its final label
DAYS = 200
START = pd.Timestamp("2026-01-01", tz="UTC")
CUTOFF = START + pd.Timedelta(days=DAYS)


@functools.cache
def params() -> TrainParams:
    train = load_params(REPO / "projects" / "credit_risk" / "params.yaml").train
    return train.model_copy(update={"max_iter": 60, "monotone_increasing": []})


def hook_rows(n: int = 4000, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows as a label hook gives them, events spread over DAYS, and each row's true P(1)."""
    rng = np.random.default_rng(seed)
    event = START + pd.to_timedelta(np.sort(rng.uniform(0, DAYS, n)), unit="D")
    x, group = rng.standard_normal(n), rng.choice(["a", "b", "c"], n)
    truth = 1 / (1 + np.exp(-(-1.8 + x + 0.7 * (group == "c"))))
    label = (rng.random(n) < truth).astype(int)
    known = np.where(label == 1, HORIZON, rng.uniform(0.5, HORIZON, n))
    rows = pd.DataFrame(
        {
            "row_id": np.arange(n),
            "event_timestamp": event,
            "x": x,
            "group": group,
            LABEL: label,
            "final_ts": event + pd.Timedelta(days=HORIZON),
            "known_ts": event + pd.to_timedelta(known, unit="D"),
        }
    )
    return rows, truth


def plain_fit(frame: pd.DataFrame):
    frame = frame.reset_index(drop=True)
    cv = calibration_split(frame, INPUTS, params().calibration_folds)
    return build(INPUTS, params(), [], cv).fit(frame[INPUTS.all], frame[LABEL])


def rate(model, frame: pd.DataFrame) -> float:
    return float(model.predict_proba(frame[INPUTS.all])[:, 1].mean())


@functools.cache
def world() -> dict:
    rows, truth = hook_rows()
    states = states_as_of(rows, CUTOFF)
    recent = (states["elapsed_days"] < HORIZON).to_numpy()  # the rows still censorable
    return {
        "states": states,
        "recent": states[recent],
        "truth": float(truth[recent].mean()),
        "resolved_only": plain_fit(states[states[STATE] != CENSORED]),
        "censored": fit_censored(states, INPUTS, params()),
    }


def test_resolved_only_rows_are_biased_low_and_the_censored_fit_recovers_the_rate() -> None:
    w = world()
    recent, truth = w["recent"], w["truth"]
    assert (recent[STATE] == CENSORED).mean() > 0.3  # censoring is real here
    resolved_only = rate(w["resolved_only"], recent)
    censored = rate(w["censored"].model, recent)
    # The recent resolved rows are mostly negatives: a fit on them under-predicts.
    assert resolved_only < truth - 0.015, (resolved_only, truth)
    assert abs(censored - truth) < 0.01, (censored, truth)
    assert abs(censored - truth) < abs(resolved_only - truth) / 2
    assert w["censored"].censored == int((w["states"][STATE] == CENSORED).sum())


def test_a_censored_rows_chance_of_positive_grows_with_the_time_it_stayed_unknown() -> None:
    """Here P(1 | not known after e) = p / (p + (1 - p)(1 - e / H)): the fit's soft labels
    follow it, row by row."""
    w = world()
    censored = w["states"][w["states"][STATE] == CENSORED].reset_index(drop=True)
    got = w["censored"].pending
    p = 1 / (1 + np.exp(-(-1.8 + censored["x"] + 0.7 * (censored["group"] == "c"))))
    left = 1 - censored["elapsed_days"] / HORIZON
    expected = p / (p + (1 - p) * left)
    assert np.corrcoef(got, expected)[0, 1] > 0.9
    assert abs(got.mean() - expected.mean()) < 0.03, (got.mean(), expected.mean())


def test_with_nothing_censored_the_fit_is_the_plain_one() -> None:
    rows, _ = hook_rows(n=3000, seed=5)
    states = states_as_of(rows, CUTOFF + pd.Timedelta(days=HORIZON))  # every label known
    assert not (states[STATE] == CENSORED).any()
    plain = plain_fit(states).predict_proba(states[INPUTS.all])[:, 1]
    censored = fit_censored(states, INPUTS, params()).model.predict_proba(states[INPUTS.all])
    np.testing.assert_allclose(censored[:, 1], plain, atol=1e-9)


def test_person_periods_wait_in_each_bucket_until_the_label_is_known() -> None:
    periods = person_periods(np.array([12.0, 40.0, 3.0]), np.array([0.0, 10, 20, 30, 40]))
    by_row = periods.groupby("row")
    assert by_row[BUCKET].apply(list).to_dict() == {0: [0, 1], 1: [0, 1, 2, 3], 2: [0]}
    assert by_row["known"].apply(list).to_dict() == {0: [0, 1], 1: [0, 0, 0, 1], 2: [1]}


def test_the_model_is_the_plain_pipeline_saved_with_audited_types_only(tmp_path: Path) -> None:
    model = world()["censored"].model
    assert type(model).__module__.startswith("sklearn.")  # loads wherever scikit-learn does
    serialization.save(model, tmp_path)  # refuses any type outside the audited libraries
    recent = world()["recent"]
    np.testing.assert_allclose(
        serialization.load(tmp_path).predict_proba(recent[INPUTS.all]),
        model.predict_proba(recent[INPUTS.all]),
    )
    onnx = OnnxModel(export(model, INPUTS), INPUTS)  # and converts to ONNX as a final fit does
    assert parity(model, onnx, recent) < 1e-4


def test_the_label_state_is_never_a_model_input() -> None:
    states = world()["states"].drop(columns=["final_ts", "known_ts"])
    inputs = model_inputs(states, ["row_id", "event_timestamp"])
    assert inputs.all == ["x", "group"]


@pytest.mark.parametrize("labels", ["final", "censored"])
def test_the_set_holds_final_rows_or_every_row_with_its_state(labels: str) -> None:
    rows, _ = hook_rows(n=500)
    states = states_as_of(rows, CUTOFF)
    kept = training_rows(states, CUTOFF, labels)
    final = rows[rows["final_ts"] <= CUTOFF]
    if labels == "final":  # today's set, plus the state columns
        assert kept["row_id"].tolist() == final["row_id"].tolist()
        assert set(kept[STATE]) == {POSITIVE, NEGATIVE}
    else:
        assert kept["row_id"].tolist() == rows["row_id"].tolist()
        assert (kept[STATE] == CENSORED).sum() > 0
    assert {"state", "elapsed_days", "resolved_days"} <= set(kept.columns)
