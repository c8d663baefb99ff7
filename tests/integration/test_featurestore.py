"""The feature store: featurize -> validate_features -> materialize, and point-in-time sets.

The session's labelled world (see conftest) has run through the real stages once (no
Airflow); tests that write work on a private copy of its lake.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from credit_risk.features.schema import VIEWS
from support import LABELLED_DATES, LABELLED_DAYS, REPO, feature_names, make_settings

from kaizen.config import Settings
from kaizen.errors import BatchQuarantined, InputError
from kaizen.featurestore.store import apply, open_store
from kaizen.lake import PUBLISHED, STAGED, Partition
from kaizen.runtime import Runtime
from kaizen.stages.featurize import featurize
from kaizen.stages.materialize import interval_days, materialize
from kaizen.stages.training_set import build_training_set, training_set
from kaizen.stages.validate_features import validate_features

DAYS = LABELLED_DAYS
DATES = LABELLED_DATES


@pytest.fixture(scope="module")
def world(labelled_world: Path) -> Path:
    return labelled_world


@pytest.fixture
def rt(world: Path, tmp_path: Path) -> Runtime:
    """A private copy of the world's lake, with a fresh Feast registry and online store."""
    shutil.copytree(world / "lake", tmp_path / "lake")
    runtime = Runtime(make_settings(tmp_path))
    apply(runtime.settings)
    return runtime


def published(rt: Runtime, view: str, dates: list[str] | None = None) -> pd.DataFrame:
    dates = dates or rt.lake.partitions(PUBLISHED, view)
    return rt.lake.read_many(PUBLISHED, view, dates).to_pandas()


def online(rt: Runtime, view: str, customers: list[int]) -> pd.DataFrame:
    store = open_store(rt.settings)
    names = [f"{view}:{n}" for n in feature_names(view)]
    rows = store.get_online_features(
        features=names, entity_rows=[{"customer_id": int(c)} for c in customers]
    ).to_dict()
    return pd.DataFrame(rows).set_index("customer_id")


def assert_frames_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        actual.sort_index(axis=1), expected.sort_index(axis=1), check_dtype=False, check_exact=True
    )


# -- publishing ------------------------------------------------------------------------------


def test_every_day_is_published_per_view(world: Path) -> None:
    rt = Runtime(make_settings(world))
    for view in VIEWS:
        assert rt.lake.partitions(PUBLISHED, view) == DATES
        assert rt.lake.partitions(STAGED, view) == []
    profile = published(rt, "customer_profile", [DATES[-1]])
    assert profile.customer_id.is_unique and len(profile) >= 250
    assert (
        profile.event_timestamp == pd.Timestamp(DATES[-1], tz="UTC") + pd.Timedelta(days=1)
    ).all()


def test_bad_features_are_quarantined_and_never_published(rt: Runtime) -> None:
    ds = DATES[-1]
    featurize(ds, rt)  # restage the last day, then corrupt one view
    part = Partition(STAGED, "customer_activity", ds)
    frame = rt.lake.read_table(part).to_pandas()
    frame.loc[frame.index[:3], "spend_30d"] = -5.0
    import pyarrow as pa

    rt.lake.write(part, pa.Table.from_pandas(frame, preserve_index=False))
    with pytest.raises(
        BatchQuarantined,
        match=r"customer_activity: .*expect_column_values_to_be_between\(spend_30d\)",
    ):
        validate_features(ds, rt)
    for view in VIEWS:  # the whole day is held back, not only the bad view
        assert not rt.lake.exists(Partition(PUBLISHED, view, ds))
        assert rt.lake.exists(Partition("quarantine", view, ds))
    featurize(ds, rt)  # recomputed cleanly, the day publishes again
    validate_features(ds, rt)
    assert all(rt.lake.exists(Partition(PUBLISHED, v, ds)) for v in VIEWS)


def test_featurize_needs_the_day_in_silver(rt: Runtime) -> None:
    with pytest.raises(InputError, match="no silver customers"):
        featurize("2026-03-01", rt)
    with pytest.raises(InputError, match="run `kaizen featurize"):
        validate_features("2026-03-01", rt)


# -- materialization ---------------------------------------------------------------------------


def test_interval_days_include_the_overlap() -> None:
    assert interval_days("2026-01-10", "2026-01-12", 2) == [
        "2026-01-08",
        "2026-01-09",
        "2026-01-10",
        "2026-01-11",
    ]
    with pytest.raises(InputError, match="empty interval"):
        interval_days("2026-01-10", "2026-01-10", 2)


def latest_per_customer(rt: Runtime, view: str, upto: str) -> pd.DataFrame:
    """The oracle: each customer's newest published row up to `upto`, computed independently."""
    frame = published(rt, view, [d for d in rt.lake.partitions(PUBLISHED, view) if d <= upto])
    newest = frame.sort_values("event_timestamp").groupby("customer_id").tail(1)
    return newest.set_index("customer_id")[feature_names(view)]


@pytest.fixture(params=["local", "stack"])
def store_rt(request: pytest.FixtureRequest, rt: Runtime, tmp_path: Path) -> Iterator[Runtime]:
    """`local`: SQLite online store, file registry. `stack`: Redis online store and the SQL
    registry on a fresh PostgreSQL database, applied twice (apply is idempotent)."""
    if request.param == "local":
        yield rt
        return
    request.getfixturevalue("redis_url")
    postgres = request.getfixturevalue("postgres")
    import uuid

    import redis
    import sqlalchemy as sa

    db = 7
    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()
    database = f"kaizen_test_feast_{uuid.uuid4().hex[:8]}"
    runtime = Runtime(
        make_settings(
            tmp_path,
            feast_online_store="redis",
            redis_connection=f"127.0.0.1:6379,db={db}",
            feast_registry="sql",
            postgres_url=f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
        )
    )
    try:
        apply(runtime.settings)
        apply(runtime.settings)
        views = open_store(runtime.settings).list_feature_views(allow_cache=False)
        assert sorted(v.name for v in views) == sorted(VIEWS)
        yield runtime
    finally:
        engine = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        engine.dispose()


@pytest.mark.faults
def test_an_older_window_never_rolls_values_back(store_rt: Runtime) -> None:
    newer, older = ("2026-02-04", "2026-02-06"), ("2026-01-10", "2026-01-12")
    materialize(*newer, store_rt)
    customers = latest_per_customer(store_rt, "customer_payments", "2026-02-05").index.tolist()
    before = online(store_rt, "customer_payments", customers)
    materialize(*older, store_rt)  # an out-of-order backfill
    after = online(store_rt, "customer_payments", customers)
    assert_frames_equal(after, before)
    expected = latest_per_customer(store_rt, "customer_payments", "2026-02-05")
    assert_frames_equal(after[expected.columns], expected)


KILLED = """
import os, sys, time
os.environ["KAIZEN_HOME"] = sys.argv[1]
from pathlib import Path
from kaizen.config import Settings
from kaizen.runtime import Runtime
from kaizen.stages import materialize as stage
root = Path(sys.argv[2])
settings = Settings(_env_file=None, home=Path(sys.argv[1]), lake_root=str(root / "lake"),
                    feast_data_dir=root / "feast", gx_uncommitted_dir=root / "gx")
calls = {"n": 0}
from kaizen.featurestore import arrow_rows
original = arrow_rows.write_batch
def write(store, view, batch):
    calls["n"] += 1
    if calls["n"] == 2:  # one view written, the others not: mid-interval
        print("paused", flush=True)
        time.sleep(60)
    return original(store, view, batch)
arrow_rows.write_batch = write
stage.materialize("2026-01-05", "2026-02-05", Runtime(settings))
"""


@pytest.mark.faults
def test_killed_mid_materialization_then_rerun_equals_the_oracle(
    rt: Runtime, tmp_path: Path
) -> None:
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(REPO), str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "paused"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    materialize("2026-01-05", "2026-02-05", rt)  # the rerun
    for view in VIEWS:
        expected = latest_per_customer(rt, view, "2026-02-04")
        actual = online(rt, view, expected.index.tolist())
        assert_frames_equal(actual[expected.columns], expected)


def test_materialize_without_features_is_a_clear_error(rt: Runtime) -> None:
    with pytest.raises(InputError, match="nothing to materialize"):
        materialize("2027-01-01", "2027-01-03", rt)


# -- point in time -------------------------------------------------------------------------------


def test_point_in_time_join_equals_a_brute_force_oracle(rt: Runtime) -> None:
    """Random customers (some unknown) at random instants (some before any feature and some
    past every TTL): every value equals the latest row at or before the instant within TTL."""
    rng = np.random.default_rng(5)
    n = 400
    start = pd.Timestamp("2026-01-01", tz="UTC")
    stamps = start + pd.to_timedelta(rng.integers(0, (DAYS + 12) * 86400, n), unit="s")
    entity = pd.DataFrame(
        {
            "customer_id": rng.integers(1, 300, n).astype("int64"),
            "event_timestamp": stamps.as_unit("us"),
            "requested_amount": rng.uniform(10, 5000, n).round(2),
        }
    )
    store = open_store(rt.settings)
    names = [f"{v}:{f}" for v in VIEWS for f in feature_names(v)]
    got = store.get_historical_features(entity_df=entity, features=names).to_df()
    assert len(got) == n  # no entity row dropped
    got["event_timestamp"] = pd.to_datetime(got["event_timestamp"], utc=True)
    got = got.sort_values(["customer_id", "event_timestamp", "requested_amount"]).reset_index(
        drop=True
    )

    ttl = {v: pd.Timedelta(days=rt.params.feature_store.ttl_days[v]) for v in VIEWS}
    tables = {v: published(rt, v) for v in VIEWS}
    expected_rows = []
    for row in got[["customer_id", "event_timestamp", "requested_amount"]].itertuples(index=False):
        out = {
            "customer_id": row.customer_id,
            "event_timestamp": row.event_timestamp,
            "requested_amount": row.requested_amount,
        }
        for view, table in tables.items():
            cand = table[
                (table.customer_id == row.customer_id)
                & (table.event_timestamp <= row.event_timestamp)
                & (table.event_timestamp >= row.event_timestamp - ttl[view])
            ]
            best = cand.sort_values("event_timestamp").tail(1)
            for feature in feature_names(view):
                out[feature] = best[feature].iloc[0] if len(best) else None
        expected_rows.append(out)
    expected = pd.DataFrame(expected_rows)
    for column in expected.columns:
        a, b = got[column], expected[column]
        if column in ("region", "income_band"):
            assert a.where(a.notna(), None).tolist() == b.where(b.notna(), None).tolist(), column
        elif column == "event_timestamp":
            assert (a == b).all()
        else:
            assert np.array_equal(
                a.astype("float64").to_numpy(), b.astype("float64").to_numpy(), equal_nan=True
            ), column
    assert expected["tenure_days"].isna().any() and expected["tenure_days"].notna().any()


def test_training_set_is_labelled_point_in_time_and_reproducible(
    rt: Runtime, tmp_path: Path
) -> None:
    cutoff = DATES[-1]
    frame, info = build_training_set(rt, cutoff)
    assert info["rows"] == len(frame) > 20 and info["feature_service"] == "credit_risk_v1"
    # Only labels that are final at the cut-off: due date + 30 days has passed.
    close = pd.Timestamp(cutoff, tz="UTC") + pd.Timedelta(days=1)
    assert frame.event_timestamp.max() < close - pd.Timedelta(days=29)  # terms 0: due = issue day
    assert set(frame.label.unique()) <= {0, 1}
    assert {"requested_to_credit_limit", "late_ratio_180d", "orders_30d"} <= set(frame.columns)
    a = training_set(tmp_path / "a" / "ts.parquet", rt, cutoff=cutoff)
    b = training_set(tmp_path / "b" / "ts.parquet", rt)  # `latest` resolves to the same day
    assert a.details["sha256"] == b.details["sha256"]
    assert (tmp_path / "a" / "ts.json").exists()


@pytest.mark.services
def test_the_duckdb_offline_store_reads_feature_files_on_the_s3_lake(s3_settings: Settings) -> None:
    """Feast's DuckDB store reads a FileSource through ibis' default connection, which knows
    no endpoint or credentials: `offline_reads_s3` gives it the lake's (a `stack` training
    set joins the feature views' files on S3)."""
    import fsspec
    import ibis
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kaizen.featurestore.store import offline_reads_s3

    root = f"{s3_settings.lake_root}/features/customer_profile"
    fs = fsspec.filesystem("s3", **s3_settings.storage_options(root))
    for day, ids in (("2026-01-01", [1, 2]), ("2026-01-02", [3])):
        with fs.open(f"{root}/ds={day}/part-0.parquet", "wb") as fh:
            pq.write_table(pa.table({"customer_id": ids}), fh)
    offline_reads_s3(s3_settings)
    got = ibis.read_parquet(f"{root}/ds=*/*.parquet").to_pyarrow()
    assert sorted(got["customer_id"].to_pylist()) == [1, 2, 3]
