"""Feature views: exact values on hand-built frames, the Feast schema, and Spark == pandas."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from __name__.features import view_columns
from __name__.features.pandas_engine import compute_features
from __name__.params import FeaturizeParams, ProjectParams, Windows
from __name___helpers import PROJECT, frame

PARAMS = ProjectParams()
DS = "2026-01-31"  # as_of: 2026-02-01 00:00 UTC; long window from 2026-01-04 00:00


def account(uid, signup, updated, plan="free", country="us", device="ios") -> dict:
    return {
        "account_id": uid,
        "signup_ts": signup,
        "country": country,
        "plan": plan,
        "device": device,
        "updated_at": updated,
    }


ACCOUNTS = frame(
    "accounts",
    [
        account("u1", "2025-12-01T10:00:00", "2025-12-01T10:00:00"),
        account("u1", "2025-12-01T10:00:00", "2026-01-20T00:00:00", plan="pro"),
        account("u1", "2025-12-01T10:00:00", "2026-02-01T00:00:00", plan="basic"),  # too late
        account("u2", "2026-01-31T23:59:59", "2026-01-31T23:59:59", country="de", device="web"),
        account("u3", "2026-02-01T00:00:00", "2026-01-31T12:00:00"),  # not signed up yet
        account("u4", "2025-06-01T00:00:00", "2025-06-01T00:00:00", plan="basic", device="android"),
        account("u4", "2025-06-01T00:00:00", "2025-06-01T00:00:00", plan="basic", device="android"),
        account(None, "2025-06-01T00:00:00", "2025-06-01T00:00:00"),  # no key
    ],
)
EVENTS = frame(
    "events",
    [
        {"event_id": i, "account_id": u, "event_ts": ts, "kind": kind, "duration_s": d}
        for i, (u, ts, kind, d) in enumerate(
            [
                ("u1", "2026-01-03T23:59:59", "purchase", 50.0),  # before the long window
                ("u1", "2026-01-04T00:00:00", "open", 10.0),  # its first instant
                ("u1", "2026-01-10T12:00:00", "purchase", 20.5),
                ("u1", "2026-01-10T13:00:00", "share", 5.0),  # same day: one active day
                ("u1", "2026-01-25T00:00:00", "view", 30.25),  # the short window's start
                ("u1", "2026-01-31T23:59:59", "open", 1.125),
                ("u1", "2026-02-01T00:00:00", "purchase", 99.0),  # as_of: not yet
                ("u4", "2026-01-20T08:00:00", "view", 7.5),
                ("u9", "2026-01-30T08:00:00", "view", 1.0),  # unknown account
                (None, "2026-01-30T08:00:00", "view", 1.0),  # no key
            ],
            start=1,
        )
    ],
)
EXPECTED = {
    "account_profile": pd.DataFrame(
        {
            "account_id": ["u1", "u2", "u4"],
            "age_days": [61, 0, 245],
            "plan": ["pro", "free", "basic"],
            "country": ["us", "de", "us"],
            "device": ["ios", "web", "android"],
        }
    ),
    "account_activity": pd.DataFrame(
        {
            "account_id": ["u1", "u2", "u4"],
            "events_7d": [2, 0, 0],
            "events_28d": [5, 0, 1],
            "active_days_28d": [4, 0, 1],
            "avg_duration_28d": [66.875 / 5, math.nan, 7.5],
            "days_since_last_event": [0, 28, 11],
            "purchases_28d": [1, 0, 0],
        }
    ),
}


def check(views: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    assert set(views) == set(expected)
    for name, dtypes in view_columns(PARAMS.featurize).items():
        assert {c: str(t) for c, t in views[name].dtypes.items()} == dtypes, name
        pd.testing.assert_frame_equal(views[name], expected[name].astype(dtypes), check_exact=True)


def test_pandas_exact_values() -> None:
    check(compute_features({"accounts": ACCOUNTS, "events": EVENTS}, DS, PARAMS), EXPECTED)


def test_pandas_without_events() -> None:
    views = compute_features({"accounts": ACCOUNTS, "events": EVENTS.iloc[:0]}, DS, PARAMS)
    engagement = views["account_activity"]
    assert engagement["events_28d"].eq(0).all() and engagement["avg_duration_28d"].isna().all()
    assert engagement["days_since_last_event"].eq(28).all()


def test_windows_name_the_columns() -> None:
    p = ProjectParams(featurize=FeaturizeParams(windows=Windows(short_days=3, long_days=14)))
    views = compute_features({"accounts": ACCOUNTS, "events": EVENTS}, DS, p)
    row = views["account_activity"].set_index("account_id").loc["u1"]
    assert row["events_3d"] == 1 and row["events_14d"] == 2 and row["active_days_14d"] == 2
    assert row["days_since_last_event"] == 0
    assert (
        views["account_activity"].set_index("account_id").loc["u2", "days_since_last_event"] == 14
    )


@pytest.fixture(scope="module")
def feast_repo() -> Iterator[object]:
    """The Feast repo parsed as the platform parses it (imported, not applied), with the
    variables the platform sets for it (the project, its params and lake)."""
    from feast.repo_operations import parse_repo

    from kaizen.config import Settings
    from kaizen.featurestore.environ import feast_environ, in_repo, scoped_environ

    settings = Settings(_env_file=None, home=PROJECT.parents[1], project=str(PROJECT))
    with scoped_environ(feast_environ(settings)), in_repo(settings.feast_repo):
        yield parse_repo(settings.feast_repo)


FEAST_TO_PANDAS = {"INT64": "int64", "DOUBLE": "float64", "STRING": "object"}


def test_feast_schema_is_what_the_transforms_produce(feast_repo) -> None:
    (entity,) = [e for e in feast_repo.entities if e.name != "__dummy"]  # Feast adds one
    assert (entity.name, entity.join_key, entity.value_type.name) == (
        "account",
        "account_id",
        "STRING",
    )
    views = {fv.name: fv for fv in feast_repo.feature_views}
    for name, dtypes in view_columns(PARAMS.featurize).items():
        declared = {
            f.name: FEAST_TO_PANDAS[f.dtype.to_value_type().name] for f in views[name].features
        }
        assert {"account_id": "object", **declared} == dtypes, name
        assert f"/features/{name}/ds=" in views[name].batch_source.path  # published only
    (service,) = feast_repo.feature_services
    assert service.name == "__name___v1" and service.tags == {"model": "__name__", "version": "1"}
    assert sorted(p.name for p in service.feature_view_projections) == sorted(views)


# -- Spark ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spark():
    import shutil

    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        pytest.skip("Spark needs Java 17")
    try:
        from kaizen.spark import get_spark

        return get_spark()  # the repo's shared session, when the platform provides one
    except Exception:
        from pyspark.sql import SparkSession

        return (
            SparkSession.builder.master("local[1]")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .getOrCreate()
        )


def spark_views(spark, accounts: pd.DataFrame, events: pd.DataFrame, ds: str, p=PARAMS):
    from __name__.features import spark_engine
    from __name___helpers import schema

    def df(data: pd.DataFrame, source: str):
        import pyarrow as pa

        table = pa.Table.from_pandas(data, schema=schema(source), preserve_index=False)
        return spark.createDataFrame(table.to_pandas())

    frames = {"accounts": df(accounts, "accounts"), "events": df(events, "events")}
    return spark_engine.to_pandas(spark_engine.compute_features(frames, ds, p), p)


@pytest.mark.spark
def test_spark_exact_values(spark) -> None:
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    check(spark_views(spark, ACCOUNTS, EVENTS, DS), EXPECTED)


@pytest.mark.spark
def test_spark_equals_pandas_on_generated_days(spark, history) -> None:
    _, days, accounts, events = history
    for ds in (days[0], days[12], days[-1]):
        expected = compute_features({"accounts": accounts, "events": events}, ds, PARAMS)
        got = spark_views(spark, accounts, events, ds)
        assert len(expected["account_profile"]) > 80
        for name in expected:
            pd.testing.assert_frame_equal(got[name], expected[name], check_exact=True)
        assert np.isfinite(expected["account_activity"]["events_28d"]).all()
