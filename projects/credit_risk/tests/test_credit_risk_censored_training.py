"""`train.labels: censored` after a shock: the model sees post-shock invoices weeks before
their labels are final, and its late rate on them moves toward the truth.

A simulated store whose late rate doubles on the shock day; training sets at shock + 14, 21
and 28 days, with the project's own label hook, features and params. The features are the
project's pandas transforms, joined day by day (an invoice issued on day D gets the
features as of the close of D - 1, as Feast's point-in-time join gives them); the truth is
each invoice's label once the world has run past its horizon.
"""

from __future__ import annotations

import datetime as dt
import functools
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from credit_risk.features.pandas_engine import compute_features
from credit_risk.labels import invoice_labels
from credit_risk.simulate import simulate
from support import CREDIT_RISK, credit_risk_params, small_world

from kaizen.labels import CENSORED, LABEL, STATE, states_as_of
from kaizen.model.data import model_inputs
from kaizen.model.hazard import fit_censored, fit_pipeline
from kaizen.params import load_params
from kaizen.project.declaration import load_declaration
from kaizen.stages.ingest import parse_raw
from kaizen.stages.training_set import training_rows

START = dt.date(2026, 1, 1)
SHOCK_DAY = 100  # 0-based: ~56 days of final labels before it
HORIZON_DAYS = 44  # net 14 + 30 days late
DAYS = SHOCK_DAY + 28 + HORIZON_DAYS + 1  # every label of the last cut-off final by the end
SHOCK = pd.Timestamp(START + dt.timedelta(days=SHOCK_DAY), tz="UTC")
KEYS = ["invoice_id", "customer_id", "event_timestamp"]
UTC = "UTC"


@functools.cache
def store() -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The silver frames of the shocked world, and every day's features."""
    catalog = load_declaration(CREDIT_RISK).catalog
    world = small_world(days=DAYS, customers=1500, shock_date=SHOCK.date(), seed=7)
    frames = {}
    with tempfile.TemporaryDirectory() as out:
        simulate(world, out)
        for source in ("customers", "orders", "payments"):
            files = sorted((Path(out) / source).glob("*.csv"))
            spec = catalog.get(source)
            tables = [parse_raw(spec, f.read_bytes(), block_size_mb=1, url=str(f)) for f in files]
            frames[source] = pa.concat_tables(tables).to_pandas()
    params, days = credit_risk_params(), []
    for i in range(SHOCK_DAY + 28):
        ds = (START + dt.timedelta(days=i)).isoformat()
        views = list(compute_features(frames, ds, params).values())
        day = functools.reduce(lambda a, b: a.merge(b, on="customer_id"), views)
        days.append(day.assign(issued_day=pd.Timestamp(ds, tz=UTC) + pd.Timedelta(days=1)))
    return frames, pd.concat(days, ignore_index=True)


def training_set(at: pd.Timestamp, labels: str) -> pd.DataFrame:
    frames, features = store()
    rows = invoice_labels(frames, at, credit_risk_params())
    states = training_rows(states_as_of(rows, at), at, labels)
    states["issued_day"] = states["event_timestamp"].dt.floor("D")
    joined = states.merge(features, on=["customer_id", "issued_day"], how="left")
    return joined.drop(columns=["issued_day", "final_ts", "known_ts"])


@functools.cache
def truth() -> pd.Series:
    frames, _ = store()
    end = pd.Timestamp(START + dt.timedelta(days=DAYS), tz=UTC)
    return invoice_labels(frames, end, credit_risk_params()).set_index("invoice_id")[LABEL]


@pytest.mark.slow
@pytest.mark.parametrize("days_after", [14, 21, 28])
def test_after_a_shock_the_censored_fit_sees_it_before_any_label_is_final(
    days_after: int,
) -> None:
    at = SHOCK + pd.Timedelta(days=days_after)
    train = load_params(CREDIT_RISK / "params.yaml").train
    final, censored = training_set(at, "final"), training_set(at, "censored")
    # No post-shock invoice is final yet; with censored labels they are all there.
    assert (final["event_timestamp"] >= SHOCK).sum() == 0
    post = censored[censored["event_timestamp"] >= SHOCK]
    assert len(post) > 30 * days_after and (post[STATE] == CENSORED).any()
    inputs = model_inputs(censored, KEYS)
    assert inputs == model_inputs(final, KEYS)  # the states are never inputs
    final_only = fit_pipeline(final, inputs, train, train.monotone_increasing)
    fit = fit_censored(censored, inputs, train, train.monotone_increasing)
    true_rate = float(truth().loc[post["invoice_id"]].mean())
    rates = {
        "final": float(final_only.predict_proba(post[inputs.all])[:, 1].mean()),
        "censored": float(fit.model.predict_proba(post[inputs.all])[:, 1].mean()),
    }
    print(
        f"shock+{days_after}: {len(post)} post-shock rows, true late rate {true_rate:.4f}, {rates}"
    )
    assert true_rate > 0.08  # the shock doubled it (0.05 before)
    assert abs(rates["censored"] - true_rate) < abs(rates["final"] - true_rate) - 0.003, rates
