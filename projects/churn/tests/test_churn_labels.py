"""The label rule on hand-built events: the horizon's edges, finality, what is known when."""

from __future__ import annotations

import pandas as pd
from churn.labels import COLUMNS, HORIZON_DAYS, no_event_within
from churn_helpers import frame


def events(*rows: tuple[str | None, str]) -> pd.DataFrame:
    return frame(
        "events",
        [
            {"event_id": i, "user_id": u, "event_ts": ts, "kind": "open", "duration_s": 1.0}
            for i, (u, ts) in enumerate(rows, start=1)
        ],
    )


EVENTS = events(
    ("ua", "2026-01-01T10:00:00"),
    ("ua", "2026-01-01T11:00:00"),  # same day: still one row
    ("ua", "2026-01-05T09:00:00"),
    ("ua", "2026-01-20T08:00:00"),  # 15 days later: 01-05 churned
    ("ub", "2026-01-01T12:00:00"),
    ("ub", "2026-01-08T00:00:00"),  # the horizon's last day: 01-01 did not churn
    ("uc", "2026-01-01T23:59:59"),
    ("uc", "2026-01-09T00:00:00"),  # exactly at final_ts: too late, 01-01 churned
    (None, "2026-01-02T10:00:00"),  # no key: not a row
)


def labels_at(ts: str) -> pd.DataFrame:
    return no_event_within({"events": EVENTS}, pd.Timestamp(ts, tz="UTC"), None)


def by_id(frame: pd.DataFrame) -> dict[str, int]:
    return dict(zip(frame["activity_id"], frame["label"], strict=True))


def test_final_labels() -> None:
    out = labels_at("2026-02-01")
    assert list(out.columns) == COLUMNS
    assert by_id(out) == {
        "ua:2026-01-01": 0,
        "ua:2026-01-05": 1,
        "ua:2026-01-20": 1,
        "ub:2026-01-01": 0,
        "ub:2026-01-08": 1,
        "uc:2026-01-01": 1,
        "uc:2026-01-09": 1,
    }
    row = out.set_index("activity_id").loc["ua:2026-01-05"]
    assert row["user_id"] == "ua"
    assert row["event_timestamp"] == pd.Timestamp("2026-01-06", tz="UTC")
    assert row["final_ts"] == row["event_timestamp"] + pd.Timedelta(days=HORIZON_DAYS)
    assert str(out["event_timestamp"].dtype) == "datetime64[us, UTC]"
    assert str(out["final_ts"].dtype) == "datetime64[us, UTC]"
    assert out["label"].dtype == "int64"


def test_rows_as_known_before_they_are_final() -> None:
    out = labels_at("2026-01-06T12:00:00").set_index("activity_id")
    # Only days that have closed are rows; the 01-08 and 01-20 events are not known yet.
    assert set(out.index) == {"ua:2026-01-01", "ua:2026-01-05", "ub:2026-01-01", "uc:2026-01-01"}
    assert out.loc["ua:2026-01-01", "label"] == 0  # the 01-05 event was seen: 0 for good
    assert out.loc["ub:2026-01-01", "label"] == 1  # provisional: nothing seen yet
    as_of = pd.Timestamp("2026-01-06T12:00:00", tz="UTC")
    assert (out["final_ts"] > as_of).all()  # none final: the platform keeps none of them


def test_a_row_is_final_at_its_final_ts() -> None:
    just_before = labels_at("2026-01-08T23:59:59").set_index("activity_id")
    at = labels_at("2026-01-09T00:00:00").set_index("activity_id")
    assert just_before.loc["ub:2026-01-01", "label"] == 0  # the 01-08 event is known
    assert at.loc["uc:2026-01-01", "final_ts"] == pd.Timestamp("2026-01-09", tz="UTC")
    assert at.loc["uc:2026-01-01", "label"] == 1  # final now; its 00:00 event is outside
    assert "ub:2026-01-08" in at.index  # its day closed at 01-09 00:00
    # Once final, a label never changes.
    later = labels_at("2026-03-01").set_index("activity_id")
    final = at[at["final_ts"] <= pd.Timestamp("2026-01-09", tz="UTC")]
    assert later.loc[final.index, "label"].equals(final["label"])


def test_no_events_no_rows() -> None:
    out = no_event_within({"events": EVENTS.iloc[:0]}, pd.Timestamp("2026-02-01", tz="UTC"), None)
    assert out.empty and list(out.columns) == COLUMNS


def test_a_return_is_known_at_its_first_event_a_churn_only_at_the_horizon() -> None:
    out = labels_at("2026-02-01").set_index("activity_id")
    # ua came back on 01-05 at 09:00: its 01-01 row is a known 0 from that event on.
    assert out.loc["ua:2026-01-01", "known_ts"] == pd.Timestamp("2026-01-05T09:00", tz="UTC")
    assert out.loc["ub:2026-01-01", "known_ts"] == pd.Timestamp("2026-01-08T00:00", tz="UTC")
    churned = out[out["label"] == 1]
    assert churned["known_ts"].equals(churned["final_ts"])
    assert (out["known_ts"] <= out["final_ts"]).all()
    assert str(out["known_ts"].dtype) == "datetime64[us, UTC]"
    # The same instant, seen the moment it happens: known then, not a microsecond before.
    before = labels_at("2026-01-05T09:00:00").set_index("activity_id")
    assert before.loc["ua:2026-01-01", "label"] == 1  # provisional: the event is not seen yet
    after = labels_at("2026-01-05T09:00:00.000001").set_index("activity_id")
    assert after.loc["ua:2026-01-01", "known_ts"] <= pd.Timestamp(
        "2026-01-05T09:00:00.000001", tz="UTC"
    )
