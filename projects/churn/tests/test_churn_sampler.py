"""The traffic sampler: one request per active user-day, read from silver events."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pyarrow as pa
from churn.sampler import COLUMNS, active_users, active_users_between
from churn_helpers import frame

EVENTS = frame(
    "events",
    [
        {"event_id": i, "user_id": u, "event_ts": ts, "kind": "view", "duration_s": 2.0}
        for i, (u, ts) in enumerate(
            [
                ("u000002", "2026-01-01T08:00:00"),
                ("u000001", "2026-01-01T09:00:00"),
                ("u000001", "2026-01-01T10:00:00"),
                ("u000001", "2026-01-02T23:59:59"),
                ("u000003", "2026-01-03T00:00:00"),  # the end day: not requested
                ("u000004", "2025-12-31T23:59:59"),  # before the start
            ],
            start=1,
        )
    ],
)


def test_active_users_between() -> None:
    out = active_users_between(EVENTS, "2026-01-01", "2026-01-03")
    assert list(out.columns) == COLUMNS
    assert out["activity_id"].tolist() == [
        "u000001:2026-01-01",
        "u000002:2026-01-01",
        "u000001:2026-01-02",
    ]
    assert out["event_timestamp"].tolist() == [
        pd.Timestamp("2026-01-02", tz="UTC"),
        pd.Timestamp("2026-01-02", tz="UTC"),
        pd.Timestamp("2026-01-03", tz="UTC"),
    ]


class FakeLake:
    def __init__(self, table: pa.Table | None) -> None:
        self.table = table
        self.asked: list[str] = []

    def partitions(self, layer: str, name: str) -> list[str]:
        assert (layer, name) == ("silver", "events")
        return ["2025-12-31", "2026-01-01", "2026-01-02", "2026-01-03"]

    def read_many(self, layer: str, name: str, dates: list[str], columns=None) -> pa.Table | None:
        self.asked = dates
        return self.table


def test_active_users_reads_the_interval_from_the_lake() -> None:
    lake = FakeLake(pa.Table.from_pandas(EVENTS, preserve_index=False))
    out = active_users(SimpleNamespace(lake=lake), "2026-01-01", "2026-01-03")
    assert lake.asked == ["2026-01-01", "2026-01-02"]
    assert out.equals(active_users_between(EVENTS, "2026-01-01", "2026-01-03"))


def test_active_users_without_partitions() -> None:
    out = active_users(SimpleNamespace(lake=FakeLake(None)), "2026-01-01", "2026-01-03")
    assert out.empty and list(out.columns) == COLUMNS
