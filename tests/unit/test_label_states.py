"""Label states: what the platform knows of each labelled row at an instant, from the hook."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from kaizen.errors import ConfigError
from kaizen.labels import CENSORED, NEGATIVE, POSITIVE, check_rows, states_as_of


def stamp(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def hook_rows(**change: list) -> pd.DataFrame:
    """Three invoices as credit_risk's hook would give them (row id, key, event, request...)."""
    rows = {
        "invoice_id": [1, 2, 3],
        "customer_id": [10, 11, 12],
        "event_timestamp": [stamp("2026-01-01"), stamp("2026-01-02"), stamp("2026-01-03")],
        "requested_amount": [100.0, 200.0, 300.0],
        "label": [0, 1, 0],
        "final_ts": [stamp("2026-02-14"), stamp("2026-02-15"), stamp("2026-02-16")],
        "known_ts": [stamp("2026-01-10"), stamp("2026-02-15"), stamp("2026-02-16")],
    }
    rows.update(change)
    return pd.DataFrame(rows)


def test_each_row_is_positive_negative_or_censored_with_how_long_it_was_watched(rt) -> None:
    at = stamp("2026-01-11")
    states = states_as_of(check_rows(rt, hook_rows()), at)
    assert states["state"].tolist() == [NEGATIVE, CENSORED, CENSORED]  # paid on 01-10: known
    assert states["elapsed_days"].tolist() == [10.0, 9.0, 8.0]
    assert states["resolved_days"].iloc[0] == 9.0
    assert states["resolved_days"].iloc[1:].isna().all()
    final = states_as_of(check_rows(rt, hook_rows()), stamp("2026-03-01"))
    assert final["state"].tolist() == [NEGATIVE, POSITIVE, NEGATIVE]
    assert final["resolved_days"].tolist() == [9.0, 44.0, 44.0]
    # A row asked about at or after the instant is not a row yet.
    assert len(states_as_of(check_rows(rt, hook_rows()), stamp("2026-01-02"))) == 1


def test_without_known_ts_a_label_is_known_at_its_final_ts(rt) -> None:
    rows = check_rows(rt, hook_rows().drop(columns=["known_ts"]))
    assert rows["known_ts"].equals(rows["final_ts"])
    states = states_as_of(rows, stamp("2026-02-14T12:00"))
    assert states["state"].tolist() == [NEGATIVE, CENSORED, CENSORED]
    assert math.isclose(states["elapsed_days"].iloc[0], 44.5)


def test_every_stamp_comes_out_in_one_unit(rt) -> None:
    rows = hook_rows()
    rows["known_ts"] = rows["known_ts"].astype("datetime64[ns, UTC]")
    checked = check_rows(rt, rows)
    assert {str(checked[c].dtype) for c in ("event_timestamp", "final_ts", "known_ts")} == {
        "datetime64[us, UTC]"
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"known_ts": [stamp("2026-03-01")] * 3}, "known_ts must be set and not after final_ts"),
        ({"known_ts": [stamp("2026-01-10"), pd.NaT, stamp("2026-02-16")]}, "must be set and"),
        ({"known_ts": ["2026-01-10"] * 3}, "known_ts must be UTC timestamps"),
    ],
)
def test_a_bad_known_ts_is_named_in_one_line(rt, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        check_rows(rt, hook_rows(**change))
    assert "label.hook" in str(caught.value) and "\n" not in str(caught.value)
