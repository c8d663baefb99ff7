"""Feature transforms: hand-built edge cases, a brute-force oracle, Spark parity, no leakage.

The oracle is the specification written as plain loops over rows; the pandas engine must
match it exactly on a simulated history, and the Spark engine must match the pandas engine.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from credit_risk.features import pandas_engine as features_pandas
from credit_risk.features.schema import ENTITY, VIEWS, view_features
from credit_risk.invoices import invoice_states
from credit_risk.params import CreditRiskParams, FeaturizeParams
from credit_risk.simulate import simulate
from support import CREDIT_RISK, credit_risk_params, small_world

from kaizen.errors import ConfigError
from kaizen.project.declaration import load_declaration
from kaizen.project.project import load_project
from kaizen.stages.ingest import declared_schema, parse_raw
from kaizen.transforms import contract
from kaizen.transforms.contract import TIMESTAMP, as_of

PARAMS = credit_risk_params().featurize
# Short windows and a short late threshold, so a 60-day history crosses every boundary.
SHORT = FeaturizeParams(
    activity_windows_days=(7, 21),
    payments_window_days=28,
    late_after_days=5,
    income_band_edges=(40_000.0, 70_000.0),
    income_band_labels=("low", "mid", "high"),
)
CATALOG = load_declaration(CREDIT_RISK).catalog
SOURCES = ("customers", "orders", "payments")
Tables = dict[str, pa.Table]


# -- inputs -------------------------------------------------------------------------------
def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def silver(source: str, rows: list[dict]) -> pa.Table:
    """Rows typed exactly as the declaration types them (what the silver layer holds)."""
    return pa.Table.from_pylist(rows, schema=declared_schema(CATALOG.get(source)))


def customer(cid, signup, region, income, limit, updated) -> dict:
    return {
        "customer_id": cid,
        "signup_date": day(signup),
        "region": region,
        "annual_income": income,
        "credit_limit": limit,
        "updated_at": utc(updated),
    }


def order(oid, cid, ts, amount) -> dict:
    return {
        "order_id": oid,
        "customer_id": cid,
        "order_ts": utc(ts),
        "amount": amount,
        "category": "sofa",
        "channel": "web",
    }


def invoice(iid, cid, issued, due, amount, paid=None, *, paid_seen=None) -> list[dict]:
    """The CDC rows of one invoice: issued (open), then settled on `paid_seen` or `paid`."""
    row = {
        "invoice_id": iid,
        "customer_id": cid,
        "issued_ts": utc(issued),
        "due_date": day(due),
        "paid_ts": None,
        "amount": amount,
        "updated_at": utc(issued),
    }
    if paid is None:
        return [row]
    return [row, row | {"paid_ts": utc(paid), "updated_at": utc(paid_seen or paid)}]


DS = "2026-03-31"  # as of 2026-04-01T00:00Z; windows start (exclusive) 03-02, 01-01, 2025-10-03


def edge_cases() -> Tables:
    customers = [
        # 1: the credit limit changed twice; the change at the as-of instant is too late.
        customer(1, "2025-01-01", "north", 25_000.0, 1_000.0, "2026-01-01T10:00"),
        customer(1, "2025-01-01", "north", 25_000.0, 2_000.0, "2026-03-15T09:00"),
        customer(1, "2025-01-01", "north", 25_000.0, 9_999.0, "2026-04-01T00:00"),
        # 2: signed up on ds, nothing bought, income exactly on a band edge.
        customer(2, "2026-03-31", "south", 30_000.0, 500.0, "2026-03-31T12:00"),
        # 3: orders on every window boundary.
        customer(3, "2024-03-31", "east", 100_000.0, 5_000.0, "2026-01-01T10:00"),
        # 4: the invoices; the limit changes at the last microsecond of ds.
        customer(4, "2025-06-01", "west", 60_000.0, 2_000.0, "2026-01-01T10:00"),
        customer(4, "2025-06-01", "west", 60_000.0, 2_500.0, "2026-03-31T23:59:59.999999"),
        # 5: known before as_of but signs up after ds; 6: appears only after as_of.
        customer(5, "2026-04-01", "central", 50_000.0, 1_000.0, "2026-03-31T20:00"),
        customer(6, "2026-04-01", "central", 50_000.0, 1_000.0, "2026-04-01T08:00"),
        # 7: no credit line ("NA" is a region code, not a null).
        customer(7, "2025-12-01", "NA", 45_000.0, 0.0, "2026-01-01T10:00"),
    ]
    orders = [
        order(101, 1, "2026-03-20T10:00", 100.10),
        order(102, 1, "2026-02-15T10:00", 50.25),
        order(301, 3, "2026-03-02T00:00", 10.0),  # exactly as_of - 30 days: 90-day window only
        order(302, 3, "2026-03-02T00:00:00.000001", 20.0),  # just inside 30 days
        order(303, 3, "2026-01-01T00:00", 40.0),  # exactly as_of - 90 days: in neither
        order(304, 3, "2026-03-31T23:59:59.999999", 80.0),  # the last instant of ds
        order(305, 3, "2026-04-01T00:00", 160.0),  # at as_of: not yet
        order(501, 5, "2026-03-31T21:00", 70.0),  # customer not signed up yet
        order(901, 99, "2026-03-30T10:00", 30.0),  # customer unknown
    ]
    payments = [
        *invoice(101, 1, "2026-03-20T10:30", "2026-04-19", 100.10, "2026-03-25T10:00"),
        # Issued and settled in the same instant: two rows share updated_at, the settled wins.
        *invoice(102, 1, "2026-02-15T10:30", "2026-03-17", 50.25, "2026-02-15T10:30"),
        *invoice(401, 4, "2026-01-05T10:00", "2026-02-04", 10.0, "2026-03-06T00:00"),  # 30 d late
        *invoice(402, 4, "2026-01-06T10:00", "2026-02-05", 20.0, "2026-03-06T23:59:59"),  # 29 d
        *invoice(403, 4, "2026-01-31T08:00", "2026-03-02", 100.0),  # open, due+30 == as_of
        *invoice(404, 4, "2026-02-01T08:00", "2026-03-03", 200.0),  # open, due+29
        *invoice(
            405, 4, "2026-03-10T08:00", "2026-04-09", 300.0, "2026-04-01T00:00"
        ),  # paid at as_of
        *invoice(406, 4, "2025-09-01T10:00", "2025-10-01", 400.0),  # open, before the window
        *invoice(407, 4, "2025-10-03T00:00", "2025-11-02", 50.0, "2025-10-20T10:00"),  # on the edge
        *invoice(408, 4, "2025-12-01T10:00", "2025-12-31", 60.0, "2026-03-01T12:00"),  # 60 d late
        *invoice(701, 7, "2026-03-20T10:00", "2026-04-19", 50.0),
        *invoice(901, 99, "2026-03-01T10:00", "2026-03-31", 30.0),
    ]
    return {
        "customers": silver("customers", customers),
        "orders": silver("orders", orders),
        "payments": silver("payments", payments),
    }


EXPECTED = {
    "customer_profile": [
        # customer_id, tenure_days, credit_limit, annual_income, region, income_band
        (1, 454, 2_000.0, 25_000.0, "north", "<30k"),
        (2, 0, 500.0, 30_000.0, "south", "30-60k"),
        (3, 730, 5_000.0, 100_000.0, "east", "100k+"),
        (4, 303, 2_500.0, 60_000.0, "west", "60-100k"),
        (7, 120, 0.0, 45_000.0, "NA", "30-60k"),
    ],
    "customer_activity": [
        # customer_id, orders_30d, spend_30d, aov_30d, orders_90d, spend_90d, aov_90d
        (1, 1, 100.10, 100.10, 2, 150.35, 150.35 / 2),
        (2, 0, 0.0, 0.0, 0, 0.0, 0.0),
        (3, 2, 100.0, 50.0, 3, 110.0, 110.0 / 3),
        (4, 0, 0.0, 0.0, 0, 0.0, 0.0),
        (7, 0, 0.0, 0.0, 0, 0.0, 0.0),
    ],
    "customer_payments": [
        # customer_id, invoices, late_count, late_ratio, max_days_late, open_balance, ratio
        (1, 2, 0, 0.0, 0, 0.0, 0.0),
        (2, 0, 0, math.nan, 0, 0.0, 0.0),
        (3, 0, 0, math.nan, 0, 0.0, 0.0),
        (4, 6, 3, 0.75, 60, 1_000.0, 0.4),
        (7, 1, 0, math.nan, 0, 50.0, math.nan),
    ],
}


def view_dtypes(p: FeaturizeParams) -> dict[str, dict[str, str]]:
    """Each view as published: the key, the day's close, the features (the Feast repo's)."""
    key = {ENTITY: "int64", "event_timestamp": TIMESTAMP}
    return {name: key | features for name, features in view_features(p).items()}


def conform(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    return contract.conform(frame, dtypes, sort_by=[ENTITY])


def published(views: dict[str, pd.DataFrame], ds: str, p: FeaturizeParams) -> dict:
    """An engine's frames as the platform publishes them (stamped, cast, sorted)."""
    dtypes = view_dtypes(p)
    return {
        name: conform(views[name].assign(event_timestamp=as_of(ds)), dtypes[name])
        for name in dtypes
    }


def hook_params(p: FeaturizeParams) -> CreditRiskParams:
    return credit_risk_params().model_copy(update={"featurize": p})


def expected_views(ds: str, p: FeaturizeParams) -> dict[str, pd.DataFrame]:
    out = {}
    for name, dtypes in view_dtypes(p).items():
        columns = [c for c in dtypes if c != "event_timestamp"]
        frame = pd.DataFrame(EXPECTED[name], columns=columns).assign(event_timestamp=as_of(ds))
        out[name] = conform(frame, dtypes)
    return out


def frames(tables: Tables) -> dict[str, pd.DataFrame]:
    return {source: tables[source].to_pandas() for source in SOURCES}


def pandas_engine(tables: Tables, ds: str, p: FeaturizeParams) -> dict[str, pd.DataFrame]:
    views = features_pandas.compute_features(frames(tables), ds, hook_params(p))
    return published(views, ds, p)


def to_spark(spark, table: pa.Table):
    # combine_chunks: pyspark 4.1.4's createDataFrame(pa.Table) silently drops every row
    # after a zero-length chunk (a day with no rows in a concatenated history).
    return spark.createDataFrame(table.combine_chunks())


def spark_engine(spark, tables: Tables, ds: str, p: FeaturizeParams) -> dict[str, pd.DataFrame]:
    from credit_risk.features import spark_engine as features_spark

    s = {source: to_spark(spark, tables[source]) for source in SOURCES}
    views = features_spark.compute_features(s, ds, hook_params(p))
    zone = spark.conf.get("spark.sql.session.timeZone")
    out = {}
    for name, frame in views.items():
        pdf = frame.toPandas()
        for column in pdf.columns:
            if pd.api.types.is_datetime64_dtype(pdf[column]) and pdf[column].dt.tz is None:
                pdf[column] = pdf[column].dt.tz_localize(zone)
        out[name] = pdf
    return published(out, ds, p)


def assert_views_equal(actual, expected, *, rtol: float = 0.0) -> None:
    """Same views, columns, dtypes and rows; floats NaN-aware, exact unless `rtol` is given."""
    assert list(actual) == list(expected)
    for name in expected:
        a, e = actual[name], expected[name]
        assert a.dtypes.to_dict() == e.dtypes.to_dict(), name
        assert len(a) == len(e), name
        for column in e.columns:
            if e[column].dtype == "float64":
                np.testing.assert_allclose(
                    a[column],
                    e[column],
                    rtol=rtol,
                    atol=0,
                    equal_nan=True,
                    err_msg=f"{name}.{column}",
                )
            else:
                assert a[column].tolist() == e[column].tolist(), f"{name}.{column}"


# -- the brute-force oracle ----------------------------------------------------------------
def oracle(tables: Tables, ds: str, p: FeaturizeParams) -> dict[str, pd.DataFrame]:
    """The specification as plain loops over rows: obviously correct, slow."""
    rows = {source: tables[source].to_pylist() for source in SOURCES}
    ds_day = day(ds)
    cutoff = dt.datetime.combine(ds_day + dt.timedelta(days=1), dt.time(), dt.UTC)
    late_after = dt.timedelta(days=p.late_after_days)

    latest: dict[int, dict] = {}
    for r in rows["customers"]:
        if r["updated_at"] < cutoff:
            seen = latest.get(r["customer_id"])
            assert seen is None or seen["updated_at"] != r["updated_at"], (
                "the oracle has no tie rule"
            )
            if seen is None or r["updated_at"] > seen["updated_at"]:
                latest[r["customer_id"]] = r
    known = {cid: r for cid, r in latest.items() if r["signup_date"] <= ds_day}

    orders_of = defaultdict(list)
    for r in rows["orders"]:
        orders_of[r["customer_id"]].append(r)
    state: dict[int, dict] = {}
    for r in rows["payments"]:
        if r["updated_at"] < cutoff:
            seen = state.get(r["invoice_id"])
            key = (r["updated_at"], r["paid_ts"] is not None)  # a tie: the settled row wins
            if seen is None or key > (seen["updated_at"], seen["paid_ts"] is not None):
                state[r["invoice_id"]] = r
    invoices_of = defaultdict(list)
    for r in state.values():
        if r["issued_ts"] < cutoff:
            invoices_of[r["customer_id"]].append(r)

    profile, activity, payments = [], [], []
    for cid in sorted(known):
        c = known[cid]
        band = p.income_band_labels[
            sum(1 for edge in p.income_band_edges if c["annual_income"] >= edge)
        ]
        profile.append(
            {
                "customer_id": cid,
                "event_timestamp": cutoff,
                "tenure_days": (ds_day - c["signup_date"]).days,
                "credit_limit": c["credit_limit"],
                "annual_income": c["annual_income"],
                "region": c["region"],
                "income_band": band,
            }
        )
        act = {"customer_id": cid, "event_timestamp": cutoff}
        for n in p.activity_windows_days:
            start = cutoff - dt.timedelta(days=n)
            amounts = [o["amount"] for o in orders_of[cid] if start < o["order_ts"] < cutoff]
            spend = round(sum(amounts), 2)
            act[f"orders_{n}d"] = len(amounts)
            act[f"spend_{n}d"] = spend
            act[f"aov_{n}d"] = spend / len(amounts) if amounts else 0.0
        activity.append(act)

        w = p.payments_window_days
        start = cutoff - dt.timedelta(days=w)
        count = late = resolved = max_days = 0
        open_balance = 0.0
        for inv in invoices_of[cid]:
            due = dt.datetime.combine(inv["due_date"], dt.time(), dt.UTC)
            paid = inv["paid_ts"]
            if paid is not None:
                is_late = paid - due >= late_after
                is_resolved = True
                days_late = max(0, (paid - due).days)
            else:
                is_late = cutoff >= due + late_after
                is_resolved = cutoff >= due + late_after
                days_late = max(0, (cutoff - due).days)
                open_balance += inv["amount"]
            if inv["issued_ts"] > start:
                count += 1
                late += is_late
                resolved += is_resolved
                max_days = max(max_days, days_late)
        open_balance = round(open_balance, 2)
        limit = c["credit_limit"]
        payments.append(
            {
                "customer_id": cid,
                "event_timestamp": cutoff,
                f"invoices_{w}d": count,
                f"late_count_{w}d": late,
                f"late_ratio_{w}d": late / resolved if resolved else math.nan,
                f"max_days_late_{w}d": max_days,
                "open_balance": open_balance,
                "open_balance_ratio": open_balance / limit if limit > 0 else math.nan,
            }
        )
    dtypes = view_dtypes(p)
    built = {
        "customer_profile": profile,
        "customer_activity": activity,
        "customer_payments": payments,
    }
    return {
        name: conform(pd.DataFrame(built[name], columns=list(dtypes[name])), dtypes[name])
        for name in VIEWS
    }


# -- a simulated history ---------------------------------------------------------------------
WORLD_START = dt.date(2026, 1, 1)
WORLD_DAYS = 60
WORLD_DS = ["2026-01-21", "2026-02-15", "2026-03-01"]  # early, middle, the last day


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Tables:
    """60 simulated days of a few hundred customers, typed as silver holds them.

    Ten-day payment terms, so unpaid invoices cross due + 30 days inside the history.
    """
    out = tmp_path_factory.mktemp("world")
    simulate(small_world(days=WORLD_DAYS, customers=300, seed=5, terms_days=10), str(out))
    return {source: read_history(out, source) for source in SOURCES}


def read_history(root: Path, source: str) -> pa.Table:
    spec = CATALOG.get(source)
    days = [
        parse_raw(spec, f.read_bytes(), block_size_mb=1, url=str(f))
        for f in sorted((root / source).glob("*.csv"))
    ]
    return pa.concat_tables(days)


def before(tables: Tables, instant: dt.datetime) -> Tables:
    """Only the rows whose declared event time is before `instant`."""
    out = {}
    for source, table in tables.items():
        event = table.column(CATALOG.get(source).event_time).to_pylist()
        out[source] = table.filter(pa.array([t < instant for t in event]))
    return out


def leaky_rows(ds: str, past: Tables) -> Tables:
    """Rows at exactly the as-of instant that would change every view if they leaked in."""
    at = as_of(ds).to_pydatetime()
    settle_everything = [
        row | {"paid_ts": at, "updated_at": at} for row in past["payments"].to_pylist()
    ]
    new_invoices = [
        row for cid in range(1, 200) for row in invoice(10**9 + cid, cid, at.isoformat(), ds, 9.0)
    ]
    return {
        "customers": silver(
            "customers",
            [
                customer(1, "2025-01-01", "north", 999_999.0, 99_999.0, at.isoformat()),
                customer(100_001, ds, "north", 50_000.0, 1_000.0, at.isoformat()),
            ],
        ),
        "orders": silver(
            "orders", [order(10**9 + cid, cid, at.isoformat(), 999.0) for cid in range(1, 200)]
        ),
        "payments": silver("payments", settle_everything + new_invoices),
    }


def with_rows(tables: Tables, extra: Tables) -> Tables:
    return {s: pa.concat_tables([tables[s], extra[s].cast(tables[s].schema)]) for s in SOURCES}


# -- the pandas engine ---------------------------------------------------------------------
def test_edge_cases_by_hand() -> None:
    assert_views_equal(pandas_engine(edge_cases(), DS, PARAMS), expected_views(DS, PARAMS))


def test_edge_cases_match_the_oracle() -> None:
    assert_views_equal(pandas_engine(edge_cases(), DS, PARAMS), oracle(edge_cases(), DS, PARAMS))


@pytest.mark.parametrize("p", [PARAMS, SHORT], ids=["params.yaml", "short"])
@pytest.mark.parametrize("ds", WORLD_DS)
def test_pandas_engine_equals_the_oracle_on_a_simulated_history(
    world: Tables, ds: str, p: FeaturizeParams
) -> None:
    actual = pandas_engine(world, ds, p)
    assert_views_equal(actual, oracle(world, ds, p))
    assert len(actual["customer_profile"]) >= 300
    if ds == WORLD_DS[-1]:  # the comparison is not vacuous: every rule is exercised
        pay, w = actual["customer_payments"], p.payments_window_days
        assert (pay[f"late_count_{w}d"] > 0).any() and pay[f"late_ratio_{w}d"].isna().any()
        assert (pay["open_balance"] > 0).any() and (pay[f"max_days_late_{w}d"] > 0).any()
        assert actual["customer_activity"][f"orders_{p.activity_windows_days[0]}d"].gt(0).any()


@pytest.mark.parametrize("engine", ["pandas", pytest.param("spark", marks=pytest.mark.spark)])
def test_rows_at_or_after_as_of_change_nothing(world: Tables, engine: str, request) -> None:
    ds = WORLD_DS[1]
    past = before(world, as_of(ds).to_pydatetime())
    everything = with_rows(world, leaky_rows(ds, past))  # the future of the history, and more
    assert everything["orders"].num_rows > past["orders"].num_rows + 199
    expected = pandas_engine(past, ds, SHORT)
    if engine == "pandas":
        assert_views_equal(pandas_engine(everything, ds, SHORT), expected)
    else:  # one Spark run: no leakage and parity at once
        spark = request.getfixturevalue("spark")
        assert_views_equal(spark_engine(spark, everything, ds, SHORT), expected, rtol=1e-12)


@pytest.mark.parametrize("engine", ["pandas", pytest.param("spark", marks=pytest.mark.spark)])
def test_empty_inputs_give_zeros_missing_ratios_or_no_rows(engine: str, request) -> None:
    def run(tables: Tables) -> dict[str, pd.DataFrame]:
        if engine == "pandas":
            return pandas_engine(tables, DS, PARAMS)
        return spark_engine(request.getfixturevalue("spark"), tables, DS, PARAMS)

    tables = edge_cases()
    quiet = run({**tables, **{s: tables[s].slice(0, 0) for s in ("orders", "payments")}})
    activity = quiet["customer_activity"].drop(columns=["customer_id", "event_timestamp"])
    assert activity.eq(0).all().all()
    pay = quiet["customer_payments"]
    assert pay["customer_id"].tolist() == [1, 2, 3, 4, 7]
    assert pay["late_ratio_180d"].isna().all() and pay["open_balance"].eq(0).all()

    nothing = run({s: tables[s].slice(0, 0) for s in SOURCES})
    assert {name: len(frame) for name, frame in nothing.items()} == dict.fromkeys(VIEWS, 0)
    for name, dtypes in view_dtypes(PARAMS).items():
        assert nothing[name].dtypes.astype(str).to_dict() == dtypes


def test_the_contract_names_and_types_every_column() -> None:
    dtypes = view_dtypes(PARAMS)
    assert list(dtypes) == list(VIEWS)
    assert list(dtypes["customer_activity"])[2:] == [
        "orders_30d", "spend_30d", "aov_30d", "orders_90d", "spend_90d", "aov_90d"
    ]  # fmt: skip
    assert list(dtypes["customer_payments"])[2:] == [
        "invoices_180d", "late_count_180d", "late_ratio_180d", "max_days_late_180d",
        "open_balance", "open_balance_ratio",
    ]  # fmt: skip
    assert list(dtypes["customer_profile"])[2:] == [
        "tenure_days", "credit_limit", "annual_income", "region", "income_band"
    ]  # fmt: skip
    assert as_of("2026-03-31") == pd.Timestamp("2026-04-01T00:00Z")


# -- the shared invoice label --------------------------------------------------------------
ALL = [401, 402, 403, 404, 405, 406, 407, 408]


@pytest.mark.parametrize(
    ("instant", "late_after", "ids", "late", "resolved", "days"),
    [
        ("2026-04-01", 30, ALL, "10100101", "11100111", [30, 29, 30, 29, 0, 182, 0, 60]),
        ("2026-04-01", 60, ALL, "00000101", "11000111", [30, 29, 30, 29, 0, 182, 0, 60]),
        # 405 is not issued yet; 401 and 402 are still open, 401 is 29 days past due.
        (
            "2026-03-05",
            30,
            [401, 402, 403, 404, 406, 407, 408],
            "0000101",
            "0000111",
            [29, 28, 3, 2, 155, 0, 60],
        ),
    ],
)
def test_invoice_state_and_label_as_of_an_instant(
    instant, late_after, ids, late, resolved, days
) -> None:
    payments = edge_cases()["payments"].to_pandas()
    mine = payments[payments.customer_id == 4]
    states = invoice_states(mine, pd.Timestamp(instant, tz="UTC"), late_after)
    assert states["invoice_id"].tolist() == ids
    assert "".join(str(int(v)) for v in states["is_late"]) == late
    assert "".join(str(int(v)) for v in states["is_resolved"]) == resolved
    assert states["days_late"].tolist() == days
    assert states["days_late"].dtype == "int64"


# -- params --------------------------------------------------------------------------------
def test_featurize_params_come_from_params_yaml() -> None:
    assert PARAMS.activity_windows_days == (30, 90)
    assert (PARAMS.payments_window_days, PARAMS.late_after_days) == (180, 30)
    assert PARAMS.income_band_labels == ("<30k", "30-60k", "60-100k", "100k+")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"income_band_labels": ["low", "high"]}, "one more than the edges"),
        ({"activity_windows_days": [90, 30]}, "distinct and increasing"),
        ({"late_after_days": 0}, "featurize.late_after_days"),
        ({"window_days": 30}, "featurize.window_days: is not a known key"),
    ],
)
def test_bad_featurize_params_name_the_problem(tmp_path: Path, change: dict, expected: str) -> None:
    data = yaml.safe_load((CREDIT_RISK / "params.yaml").read_text())["project"]
    data["featurize"].update(change)
    with pytest.raises(ConfigError, match="featurize") as err:
        load_project(CREDIT_RISK).params(data, "params.yaml")
    assert expected in str(err.value)


# -- the Spark engine ----------------------------------------------------------------------
@pytest.mark.spark
def test_one_shared_spark_session_in_utc(spark) -> None:
    from kaizen.spark import get_spark

    assert get_spark() is spark
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"


@pytest.mark.spark
def test_spark_engine_on_the_edge_cases(spark) -> None:
    assert_views_equal(spark_engine(spark, edge_cases(), DS, PARAMS), expected_views(DS, PARAMS))


@pytest.mark.spark
@pytest.mark.parametrize(
    ("ds", "p"),
    [(WORLD_DS[2], PARAMS), (WORLD_DS[2], SHORT)],
    ids=["params.yaml", "short"],
)
def test_spark_engine_equals_pandas_engine(spark, world: Tables, ds: str, p) -> None:
    assert_views_equal(spark_engine(spark, world, ds, p), pandas_engine(world, ds, p), rtol=1e-12)


@pytest.mark.spark
def test_spark_invoice_states_equal_pandas(spark, world: Tables) -> None:
    from credit_risk.features import spark_engine as features_spark

    instant = pd.Timestamp(WORLD_DS[2], tz="UTC")
    expected = invoice_states(world["payments"].to_pandas(), instant, 5)
    actual = features_spark.invoice_states(
        to_spark(spark, world["payments"]), instant, 5
    ).toPandas()
    actual = actual.sort_values("invoice_id", ignore_index=True)
    columns = [
        "invoice_id",
        "customer_id",
        "amount",
        "is_paid",
        "is_late",
        "is_resolved",
        "days_late",
    ]
    assert len(actual) == len(expected) > 0
    for column in columns:
        assert actual[column].tolist() == expected[column].tolist(), column
