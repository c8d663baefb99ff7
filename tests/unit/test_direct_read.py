"""Kaizen's direct online read gives what Feast's `get_online_features(...).to_dict()` gives.

Feast itself is the oracle, on SQLite and on Redis: the real repo (`credit_risk_v1`: three
views and the on-demand ratios with request data) applied into a throw-away store, rows
written by Feast's own `write_to_online_store`, then random batches of entities read both
ways: present and missing entities, an entity with a row in one view only, null values,
a zero or null credit limit for the on-demand view, stale rows under both freshness
policies, and request data Feast converts case by case.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from credit_risk.features.schema import ENTITY, VIEWS, view_features
from feast.value_type import ValueType
from support import (
    FEAST_VARIABLES,
    credit_risk_params,
    make_settings,
    service_unavailable,
    tcp_open,
)

from kaizen.featurestore import direct_read
from kaizen.featurestore.direct_read import plan_for, read_values
from kaizen.featurestore.online import read_features
from kaizen.featurestore.plans import feast_values
from kaizen.featurestore.store import apply, open_store
from kaizen.transforms.contract import EVENT_TIMESTAMP

SERVICE = "credit_risk_v1"
REDIS_DB = 10  # a database of its own, flushed before and after
NOW = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
DAY = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
CUSTOMERS = 80
PROFILE_ONLY = 81  # a row in customer_profile, none in the other two views
NULL_LIMIT, ZERO_LIMIT = 82, 83  # the on-demand ratios have no limit to divide by
STALE = 84  # activity 10 days old (TTL 3), payments 5 days (TTL 3), profile 1 day (TTL 7)
MISSING = 999_999
SPECIAL = [PROFILE_ONLY, NULL_LIMIT, ZERO_LIMIT, STALE, MISSING]
ON_DEMAND = ["requested_to_credit_limit", "requested_plus_open_to_limit"]


def _frame(view: str, ids: list[int], stamps: list[dt.datetime], seed: int) -> pd.DataFrame:
    """Rows typed by the transforms' contract, about one value in six null."""
    rng = np.random.default_rng(seed)
    dtypes = view_features(credit_risk_params().featurize)[view]
    n = len(ids)
    columns: dict[str, Any] = {ENTITY: np.array(ids, dtype=np.int64)}
    for name, dtype in dtypes.items():
        if name in (ENTITY, EVENT_TIMESTAMP):
            continue
        nulls = rng.random(n) < 1 / 6
        if dtype == "int64":  # an int column with nulls arrives as floats, as in the lake
            values = rng.integers(0, 40, n).astype(float)
        elif dtype == "float64":
            values = rng.gamma(2.0, 900.0, n)
        else:
            values = rng.choice(np.array(["north", "south", "ünï", ""], dtype=object), n)
        values[nulls] = None if dtype == "object" else np.nan
        columns[name] = values
    columns[EVENT_TIMESTAMP] = pd.to_datetime(stamps, utc=True)
    return pd.DataFrame(columns)


def _write(store: Any) -> None:
    ids = list(range(1, CUSTOMERS + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Feast warns on every write of a frame
        for seed, view in enumerate(VIEWS):
            store.write_to_online_store(view, _frame(view, ids, [DAY] * len(ids), seed))
        profile = _frame("customer_profile", [PROFILE_ONLY, NULL_LIMIT, ZERO_LIMIT], [DAY] * 3, 7)
        profile["credit_limit"] = [2500.0, np.nan, 0.0]
        store.write_to_online_store("customer_profile", profile)
        for i, view in enumerate(VIEWS):
            age = {"customer_profile": 1, "customer_activity": 10, "customer_payments": 5}[view]
            if view != "customer_profile":
                both = _frame(view, [NULL_LIMIT, ZERO_LIMIT], [DAY] * 2, 20 + i)
                store.write_to_online_store(view, both)
            row = _frame(view, [STALE], [DAY - dt.timedelta(days=age)], 30 + i)
            if view == "customer_profile":
                row["credit_limit"] = [4000.0]
            store.write_to_online_store(view, row)


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The repo applied into a fresh store of that kind, with the rows above."""
    online = request.param
    redis_client = None
    extra: dict[str, Any] = {"feast_online_store": online, "feast_registry": "file"}
    if online == "redis":
        if not tcp_open("127.0.0.1", 6379):
            service_unavailable("Redis", "nothing answers on 127.0.0.1:6379 (run `make services`)")
        import redis

        redis_client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        redis_client.flushdb()
        extra["redis_connection"] = f"127.0.0.1:6379,db={REDIS_DB}"
    settings = make_settings(tmp_path_factory.mktemp(f"direct-{online}"), **extra)
    saved = {key: os.environ.get(key) for key in FEAST_VARIABLES}
    try:
        apply(settings)
        feast_store = open_store(settings)
        _write(feast_store)
        yield feast_store
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if redis_client is not None:
            redis_client.flushdb()


def assert_same(ours: Any, feasts: Any) -> None:
    """Same columns in the same order, same values of the same types (no NaN: Feast reads
    a stored NaN as None), same found flags and event times."""
    assert list(ours.columns) == list(feasts.columns)
    for name, values in feasts.columns.items():
        got = ours.columns[name]
        assert [type(v) for v in got] == [type(v) for v in values], name
        assert got == values, name
    assert ours.found == feasts.found
    assert ours.event_timestamps == feasts.event_timestamps


def _rows(ids: list[int], rng: random.Random) -> list[dict[str, Any]]:
    return [{ENTITY: i, "requested_amount": round(rng.uniform(50, 5000), 2)} for i in ids]


def test_the_service_takes_the_direct_path(store: Any) -> None:
    plan = plan_for(store, SERVICE)
    assert plan is not None and [v.name for v in plan.views] == list(VIEWS)
    assert [v.name for v in plan.on_demand] == ["credit_request_ratios"]


@pytest.mark.parametrize("size", [1, 2, 7, 40])
def test_random_entities_read_what_feast_reads(store: Any, size: int) -> None:
    rng = random.Random(size)
    for _ in range(5):
        # duplicates, special and missing entities among the random ones
        ids = [rng.choice([*range(1, CUSTOMERS + 1), *SPECIAL]) for _ in range(size)]
        rows = _rows(ids, rng)
        assert_same(read_values(store, SERVICE, rows), feast_values(store, SERVICE, rows))


def test_feature_references_read_what_feast_reads(store: Any) -> None:
    refs = [
        "customer_payments:open_balance",
        "customer_profile:region",
        "customer_profile:credit_limit",
        "credit_request_ratios:requested_plus_open_to_limit",
        "customer_activity:orders_90d",
    ]
    rows = _rows([3, MISSING, PROFILE_ONLY, STALE, ZERO_LIMIT, 3], random.Random(1))
    ours = read_values(store, refs, rows)
    assert_same(ours, feast_values(store, refs, rows))
    # The join key first, then the views' features (in an order Feast's grouping decides,
    # compared above), on-demand outputs last.
    names = list(ours.columns)
    assert names[0] == ENTITY and names[-1] == "requested_plus_open_to_limit"
    assert sorted(names[1:-1]) == ["credit_limit", "open_balance", "orders_90d", "region"]


def test_missing_entities_and_views_without_a_row(store: Any) -> None:
    rows = _rows([MISSING, PROFILE_ONLY], random.Random(2))
    ours = read_values(store, SERVICE, rows)
    assert_same(ours, feast_values(store, SERVICE, rows))
    assert ours.columns[ENTITY] == [MISSING, PROFILE_ONLY]
    assert ours.found == {
        "customer_profile": [False, True],
        "customer_activity": [False, False],
        "customer_payments": [False, False],
    }
    assert ours.event_timestamps["customer_profile"] == [None, DAY]
    assert ours.columns["credit_limit"] == [None, 2500.0]
    assert ours.columns["orders_30d"] == [None, None]
    # the ratio reads the profile's limit, with no open balance: requested / limit both ways
    amount = rows[1]["requested_amount"]
    assert ours.columns["requested_to_credit_limit"] == [None, amount / 2500.0]
    assert ours.columns["requested_plus_open_to_limit"] == [None, amount / 2500.0]


def test_null_values_are_none_both_ways(store: Any) -> None:
    rows = _rows(list(range(1, CUSTOMERS + 1)), random.Random(3))
    ours = read_values(store, SERVICE, rows)
    assert_same(ours, feast_values(store, SERVICE, rows))
    stored = [c for c in ours.columns if c != ENTITY and c not in ON_DEMAND]
    nulls = sum(v is None for c in stored for v in ours.columns[c])
    assert nulls > 100  # the data has nulls in every type, and they come back as None
    assert not any(isinstance(v, float) and math.isnan(v) for c in stored for v in ours.columns[c])
    types = {c: {type(v) for v in ours.columns[c]} - {type(None)} for c in stored}
    assert types["orders_30d"] == {int} and types["credit_limit"] == {float}
    assert types["region"] == {str}


def test_on_demand_outputs_and_their_types(store: Any) -> None:
    rows = [
        {ENTITY: 5, "requested_amount": 500.0},
        {ENTITY: NULL_LIMIT, "requested_amount": 500.0},
        {ENTITY: ZERO_LIMIT, "requested_amount": 500.0},
        {ENTITY: MISSING, "requested_amount": 500.0},
    ]
    ours = read_values(store, SERVICE, rows)
    assert_same(ours, feast_values(store, SERVICE, rows))
    limit, balance = ours.columns["credit_limit"][0], ours.columns["open_balance"][0]
    ratio, with_open = (ours.columns[c] for c in ON_DEMAND)
    if limit is not None:
        assert ratio[0] == 500.0 / limit and type(ratio[0]) is float
        assert with_open[0] == (500.0 + (balance or 0.0)) / limit
    assert ratio[1:] == [None, None, None] and with_open[1:] == [None, None, None]


@pytest.mark.parametrize(
    "amounts",
    [
        [500, 1200],  # ints: Feast infers INT64 and hands the UDF ints
        [float("nan"), 250.0],  # NaN: Feast hands the UDF None
        [500, 250.5],  # an int first: Feast infers INT64 and truncates 250.5 (Feast's call)
        [np.float64(300.0), 120.0],  # a numpy scalar
    ],
    ids=["ints", "nan", "int-then-float", "numpy"],
)
def test_request_data_is_converted_as_feast_converts_it(store: Any, amounts: list[Any]) -> None:
    rows = [{ENTITY: i, "requested_amount": a} for i, a in zip([5, 6], amounts, strict=True)]
    assert_same(read_values(store, SERVICE, rows), feast_values(store, SERVICE, rows))


def test_keys_feast_converts_go_through_feast(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{ENTITY: np.int64(5), "requested_amount": 10.0}]
    calls: list[Any] = []
    real = direct_read._read_sqlite if plan_for(store, SERVICE).sqlite else direct_read._read_redis  # type: ignore[union-attr]
    monkeypatch.setattr(direct_read, "_read_sqlite", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(direct_read, "_read_redis", lambda *a: calls.append(a) or real(*a))
    assert_same(read_values(store, SERVICE, rows), feast_values(store, SERVICE, rows))
    assert calls == []  # a numpy key: Feast's path
    read_values(store, SERVICE, [{ENTITY: 5, "requested_amount": 10.0}])
    assert len(calls) == 1


@pytest.mark.parametrize("policy", ["mark", "refuse"])
def test_freshness_is_judged_the_same_both_ways(store: Any, policy: str) -> None:
    rows = _rows([5, STALE, MISSING, PROFILE_ONLY, 9], random.Random(4))
    ours = read_features(store, SERVICE, rows, NOW, policy, online_read="kaizen")  # type: ignore[arg-type]
    feasts = read_features(store, SERVICE, rows, NOW, policy, online_read="feast")  # type: ignore[arg-type]
    assert ours == feasts
    fresh, stale, missing, profile_only, _ = ours.entities
    assert fresh.stale_views == [] and fresh.missing_views == []
    assert sorted(stale.stale_views) == [
        "credit_request_ratios",
        "customer_activity",
        "customer_payments",
    ]
    assert stale.views["customer_activity"].age == dt.timedelta(days=10, hours=12)
    assert stale.views["customer_profile"].stale is False
    assert missing.stale_views == [] and sorted(missing.missing_views) == sorted(
        [*VIEWS, "credit_request_ratios"]
    )
    assert sorted(profile_only.missing_views) == [
        "credit_request_ratios",
        "customer_activity",
        "customer_payments",
    ]
    kept = stale.values["orders_30d"], stale.values["requested_to_credit_limit"]
    if policy == "refuse":
        assert kept == (None, None)
        assert stale.values["credit_limit"] == 4000.0  # the fresh view is still served
    else:
        assert kept[1] == rows[1]["requested_amount"] / 4000.0


DECODER_VALUES: list[tuple[str, Any, ValueType]] = [
    *(
        ("double_val", x, ValueType.DOUBLE)
        for x in [0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, math.nan, 5e-324, 1.7e308, 0.1]
    ),
    *(("double_val", random.Random(9).uniform(-1e9, 1e9), ValueType.DOUBLE) for _ in range(50)),
    *(("float_val", x, ValueType.FLOAT) for x in [0.0, 1.25, -3.5, 1e30]),
    *(("int64_val", x, ValueType.INT64) for x in [0, 1, -1, 2**62, -(2**63)]),
    *(("int32_val", x, ValueType.INT32) for x in [0, -7, 2**31 - 1]),
    *(("string_val", x, ValueType.STRING) for x in ["", "north", "ünï cödé"]),
    *(("bool_val", x, ValueType.BOOL) for x in [True, False]),
    ("unix_timestamp_val", 1_700_000_000, ValueType.UNIX_TIMESTAMP),
    ("string_val", "0b8f6d6e-54fb-4a40-9a2f-2f3bb3c0c8ad", ValueType.UUID),
]


def test_the_decoder_gives_what_to_dict_gives() -> None:
    """Every blob decodes as `feast_value_type_to_python_type` decodes it (doubles, which
    are unpacked without protobuf, to the same bits), twice (the second from the cache)."""
    import struct

    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    decode = direct_read._Decoder()
    for field, value, value_type in DECODER_VALUES:
        proto = Value(**{field: value})
        expected = feast_value_type_to_python_type(proto, value_type)
        for _ in range(2):
            got = decode(proto.SerializeToString(), value_type)
            assert type(got) is type(expected), (field, value)
            if isinstance(expected, float):
                assert struct.pack("<d", got) == struct.pack("<d", expected), (field, value)
            else:
                assert got == expected, (field, value)
    assert decode(b"", ValueType.DOUBLE) is None and decode(None, ValueType.INT64) is None


def test_a_service_changed_elsewhere_is_read_anew_once_the_registry_cache_expires(
    store: Any,
) -> None:
    """Another process re-applies a service with other features; once this store's registry
    cache is past its TTL, the direct read follows, as Feast's SDK does."""
    from feast import FeatureService, FeatureStore

    other = FeatureStore(config=store.config)  # the same registry, another client
    profile = other.get_feature_view("customer_profile")
    rows = _rows([3, MISSING], random.Random(5))
    other.apply([FeatureService(name="probe", features=[profile[["credit_limit"]]])])
    store.registry.refresh(store.project)
    assert list(read_values(store, "probe", rows).columns) == [ENTITY, "credit_limit"]
    other.apply([FeatureService(name="probe", features=[profile[["region", "tenure_days"]]])])
    store.registry.cached_registry_proto_created -= dt.timedelta(hours=1)  # the TTL passes
    ours = read_values(store, "probe", rows)
    assert sorted(ours.columns) == sorted([ENTITY, "region", "tenure_days"])
    assert_same(ours, feast_values(store, "probe", rows))


def test_a_key_out_of_int64s_range_fails_as_feast_fails(store: Any) -> None:
    rows = [{ENTITY: 2**63, "requested_amount": 1.0}]
    with pytest.raises(Exception) as feasts:
        feast_values(store, SERVICE, rows)
    with pytest.raises(type(feasts.value)):
        read_values(store, SERVICE, rows)
