"""The invoice label hook: when each label becomes known, and the states the platform reads."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
from credit_risk.labels import invoice_labels
from credit_risk.simulate import simulate
from support import CREDIT_RISK, credit_risk_params, small_world

from kaizen.labels import CENSORED, NEGATIVE, POSITIVE, STATE, states_as_of
from kaizen.project.declaration import load_declaration
from kaizen.stages.ingest import parse_raw

UTC = "UTC"


@functools.cache
def _payments() -> pd.DataFrame:
    """70 simulated days of payments (a late rate of 20%, so positives are plenty), typed."""
    spec = load_declaration(CREDIT_RISK).catalog.get("payments")
    with tempfile.TemporaryDirectory() as out:
        simulate(small_world(days=70, customers=400, late_rate_before=0.2), out)
        files = sorted((Path(out) / "payments").glob("*.csv"))
        days = [parse_raw(spec, f.read_bytes(), block_size_mb=1, url=str(f)) for f in files]
    return pa.concat_tables(days).to_pandas()


def world() -> pd.DataFrame:
    return _payments().copy()


def rows_at(payments: pd.DataFrame, instant: str) -> pd.DataFrame:
    at = pd.Timestamp(instant, tz=UTC)
    return invoice_labels({"payments": payments}, at, credit_risk_params())


def test_a_payment_in_time_is_known_when_it_lands_a_late_one_at_its_deadline() -> None:
    payments = world()
    rows = rows_at(payments, "2026-06-01").set_index("invoice_id")  # every label final
    paid = payments.dropna(subset=["paid_ts"]).set_index("invoice_id")
    due = pd.to_datetime(paid["due_date"]).dt.tz_localize(UTC)
    in_time = paid[(paid["paid_ts"] - due) < pd.Timedelta(days=30)]
    assert len(in_time) > 100 and (rows["label"] == 1).sum() > 20
    # A negative is known at the instant its payment row was written, before its deadline.
    negatives = rows.loc[in_time.index]
    assert (negatives["label"] == 0).all()
    assert negatives["known_ts"].equals(in_time["updated_at"].rename("known_ts"))
    assert (negatives["known_ts"] < negatives["final_ts"]).all()
    # A positive is known only at due + 30 days: before, it could still be paid in time.
    positives = rows[rows["label"] == 1]
    assert positives["known_ts"].equals(positives["final_ts"])


def test_a_resolved_label_never_changes_and_censored_rows_are_the_unsettled_ones() -> None:
    payments = world()
    final = rows_at(payments, "2026-06-01").set_index("invoice_id")
    for instant in ("2026-02-20", "2026-03-01", "2026-03-11"):  # positives from 02-14 on
        at = pd.Timestamp(instant, tz=UTC)
        states = states_as_of(rows_at(payments, instant), at).set_index("invoice_id")
        assert set(states[STATE]) == {POSITIVE, NEGATIVE, CENSORED}
        resolved = states[states[STATE] != CENSORED]
        # What was known then is what the world settles on.
        assert resolved["label"].equals(final.loc[resolved.index, "label"])
        assert resolved["known_ts"].equals(final.loc[resolved.index, "known_ts"])
        assert (resolved["known_ts"] <= at).all()
        # Censored: not known then, and settled later (either way).
        censored = states[states[STATE] == CENSORED]
        assert (final.loc[censored.index, "known_ts"] > at).all()
        assert (censored["resolved_days"].isna()).all()
        assert (censored["elapsed_days"] > 0).all()
        # Label lag at work: among the newest rows, negatives settle first.
        newest = states[states["event_timestamp"] >= at - pd.Timedelta(days=20)]
        assert (newest[STATE] == POSITIVE).sum() == 0
        assert (newest[STATE] == NEGATIVE).sum() > 0
