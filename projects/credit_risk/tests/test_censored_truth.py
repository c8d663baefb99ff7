"""The censoring-aware metrics against the simulator's truth, after a shock doubles the late
rate: from label states 28 days after it (no post-shock late invoice is known yet), the true
post-shock ROC AUC on final labels lies inside the estimate's 95% interval."""

from __future__ import annotations

import datetime as dt
import functools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from credit_risk.labels import invoice_labels
from credit_risk.simulate import World, to_csv_bytes
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss as brier
from sklearn.metrics import roc_auc_score
from support import CREDIT_RISK, credit_risk_params, small_world

from kaizen.labels import POSITIVE, STATE, states_as_of
from kaizen.model.censored import States, censored_report, delay_strata
from kaizen.params import CensoredParams
from kaizen.project.declaration import load_declaration
from kaizen.stages.ingest import parse_raw

START = dt.date(2026, 1, 1)
SHOCK_DAY, WATCHED = 60, 28  # states as of shock + 28 days: every post-shock row is young
FINAL_AFTER = 45  # due (14 days) + 30: after this every label of those rows is final
P = CensoredParams(
    min_elapsed_days=7,
    min_resolved_share=0.2,
    min_class_rows=20,
    score_buckets=4,
    bootstrap_samples=100,
    confidence=0.95,
    seed=7,
)


@functools.cache
def _world(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Every payment row of a 2,000-customer world (late 5% -> 10% at the shock), typed as
    the lake holds them, and each customer's latent risk."""
    p = small_world(
        days=SHOCK_DAY + WATCHED + FINAL_AFTER,
        customers=2000,
        seed=seed,
        shock_date=START + dt.timedelta(days=SHOCK_DAY),
        late_rate_before=0.05,
        late_rate_after=0.10,
    )
    spec = load_declaration(CREDIT_RISK).catalog.get("payments")
    world = World(p)
    days = [
        parse_raw(spec, to_csv_bytes(world.step()["payments"]), block_size_mb=1, url="sim")
        for _ in range(p.days)
    ]
    return pa.concat_tables(days).to_pandas(), world.risk


@functools.cache
def judged(seed: int) -> tuple[dict[str, float], dict, dict[str, float]]:
    """The true post-shock ROC AUC and Brier, their estimates from the states then, and the
    same metrics on the labels final by then (all before the shock)."""
    payments, risk = _world(seed)
    shock = pd.Timestamp(START + dt.timedelta(days=SHOCK_DAY), tz="UTC")
    at = shock + pd.Timedelta(days=WATCHED)
    end = at + pd.Timedelta(days=FINAL_AFTER)
    frames = {"payments": payments}
    rows = states_as_of(invoice_labels(frames, at, credit_risk_params()), at)
    final = invoice_labels(frames, end, credit_risk_params()).set_index("invoice_id")["label"]
    truth = final.loc[rows["invoice_id"]].to_numpy()
    # A stale champion: fitted on labels final before the shock, on two of what it knows.
    x = np.c_[risk[rows["customer_id"] - 1], np.log(rows["requested_amount"])]
    mature = (rows["elapsed_days"] > FINAL_AFTER).to_numpy()
    score = LogisticRegression().fit(x[mature], rows["label"][mature]).predict_proba(x)[:, 1]
    states = States.from_frame(rows)
    states = States(
        states.resolved, states.label, states.elapsed, states.delay, delay_strata(x, states)
    )
    target = ((rows["event_timestamp"] >= shock) & (rows["elapsed_days"] >= 7)).to_numpy()
    assert target.sum() > 1000 and truth[target].sum() > 80
    assert not (rows[STATE][target] == POSITIVE).any()  # no post-shock late label is known
    report = censored_report(score, states, P, target)
    y = rows["label"][mature]
    known = {"roc_auc": roc_auc_score(y, score[mature]), "brier": brier(y, score[mature])}
    true = {"roc_auc": roc_auc_score(truth[target], score[target])}
    true["brier"] = brier(truth[target], score[target])
    return true, report, known


def test_the_true_post_shock_auc_lies_in_the_interval_the_censored_states_give() -> None:
    truth, report, _ = judged(0)
    auc = report["roc_auc"]
    assert auc["low"] <= truth["roc_auc"] <= auc["high"], (truth, auc)
    assert auc["high"] - auc["low"] < 0.12  # an interval that says something
    assert abs(auc["estimate"] - truth["roc_auc"]) < 0.03


def covered(metric: str) -> list[bool]:
    return [r[metric]["low"] <= t[metric] <= r[metric]["high"] for t, r, _ in map(judged, SEEDS)]


SEEDS = range(1, 11)


@pytest.mark.slow
def test_the_auc_interval_covers_the_truth_across_worlds() -> None:
    assert sum(covered("roc_auc")) >= 8  # measured: 10 of 10


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known: the Brier estimate runs high after the shock (5 of 10 covered): the"
    " recalibration sigmoid(a + b logit s) misses the post-shock rate's shape, the level matters"
    " to Brier, not to the ranking",
)
def test_the_brier_interval_covers_the_truth_across_worlds() -> None:
    assert sum(covered("brier")) >= 8
