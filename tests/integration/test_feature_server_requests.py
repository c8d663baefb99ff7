"""What the feature server accepts, on a real app built in process (no port, no subprocess).

`build_app` on the session's small credit_risk store (SQLite), and on a tiny store of this
module's own: a push source and a string join key, which credit_risk has not. Writes that
succeed go to entity ids nothing else reads. tests/integration/test_feature_server.py runs
the same app as `kaizen feature-server` over HTTP.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from support import SmallStore

from kaizen.featurestore.gate import READS, UNAVAILABLE
from kaizen.featurestore.server import build_app
from kaizen.seaweed import free_port

pytestmark = pytest.mark.usefixtures("feast_environ_restored")
READ, WRITE = "read-token-" + "r" * 16, "write-token-" + "w" * 16
SERVICE = "credit_risk_v1"
KNOWN_WRITES = {"/write-to-online-store", "/push", "/materialize", "/materialize-incremental"}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def client(small_store: SmallStore) -> Iterator[TestClient]:
    app = build_app(small_store.store(), READ, write_token=WRITE, registry_ttl_sec=0)
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


def _profile(ids: list[int], times: list[str], **columns: list[Any]) -> dict[str, list[Any]]:
    n = len(ids)
    return {
        "customer_id": ids,
        "event_timestamp": times,
        "tenure_days": [30] * n,
        "credit_limit": [1.0] * n,
        "annual_income": [1000.0] * n,
        "region": ["north"] * n,
        "income_band": ["0-30k"] * n,
        **columns,
    }


def _write(df: dict[str, list[Any]], view: str = "customer_profile") -> dict[str, Any]:
    return {"feature_view_name": view, "df": df}


def _read(client: TestClient, ids: list[int]) -> dict[str, Any]:
    response = client.post(
        "/get-online-features",
        headers=_auth(READ),
        json={"features": ["customer_profile:credit_limit"], "entities": {"customer_id": ids}},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    return dict(zip(answer["metadata"]["feature_names"], answer["results"], strict=True))


def _feast_routes(store: Any) -> list[tuple[str, str]]:
    """Every (method, path) of Feast's own app, its path parameters filled in."""
    import re

    from feast.feature_server import get_app

    routes = []
    for route in get_app(store, registry_ttl_sec=0).routes:
        path = re.sub(r"\{[^}]+\}", "some-id", route.path)  # type: ignore[attr-defined]
        methods = getattr(route, "methods", None)
        if methods is None:  # a WebSocket route or the static mount
            methods = {"WEBSOCKET"} if "ws" in path else {"GET"}
            path = path if "ws" in path else f"{path}/index.html"
        routes += [(m, path) for m in sorted(methods) if m != "HEAD"]
    return routes


# -- 1. read and write are separate credentials ------------------------------------------------


@pytest.mark.parametrize("writes", [True, False], ids=["writes-on", "writes-off"])
def test_the_read_token_gets_403_on_every_route_of_feasts_app_but_reads(
    small_store: SmallStore, writes: bool
) -> None:
    store = small_store.store()
    routes = _feast_routes(store)
    not_reads = [r for r in routes if r not in READS]
    assert {path for _, path in not_reads} >= KNOWN_WRITES  # the enumeration sees them
    attack = _write(_profile([5], ["2099-01-01T00:00:00+00:00"]))  # the tester's row
    app = build_app(store, READ, write_token=WRITE if writes else None, registry_ttl_sec=0)
    from starlette.websockets import WebSocketDisconnect

    with TestClient(app) as client:
        before = _read(client, [5])["credit_limit"]
        for method, path in not_reads:
            if method == "WEBSOCKET":
                with (
                    pytest.raises(WebSocketDisconnect),
                    client.websocket_connect(path, headers=_auth(READ)),
                ):
                    pass
                continue
            response = client.request(method, path, headers=_auth(READ), json=attack)
            assert response.status_code == 403, (method, path, response.text)
            detail = response.json()["detail"]
            assert ("needs the write token" if writes else "writes are off") in detail
        assert _read(client, [5])["credit_limit"] == before
        if not writes:  # the write token of another server is just a wrong token here
            refused = client.post("/write-to-online-store", headers=_auth(WRITE), json=attack)
            assert refused.status_code == 401
    print(f"\n{len(not_reads)} of Feast's {len(routes)} routes refused to the read token")


def test_the_write_token_writes_and_reads(client: TestClient) -> None:
    when = (_now() - dt.timedelta(minutes=1)).replace(microsecond=0)
    # An offset other than UTC: stored as the same instant.
    local = when.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    written = client.post(
        "/write-to-online-store",
        headers=_auth(WRITE),
        json=_write(_profile([9_300_001], [local], credit_limit=[1234.5])),
    )
    assert written.status_code == 200, written.text
    got = _read(client, [9_300_001])["credit_limit"]
    assert got["values"] == [1234.5] and got["statuses"] == ["PRESENT"]
    assert got["event_timestamps"] == [when.strftime("%Y-%m-%dT%H:%M:%SZ")]
    reads = client.post(
        "/get-online-features",
        headers=_auth(WRITE),
        json={
            "feature_service": SERVICE,
            "entities": {"customer_id": [5], "requested_amount": [1.0]},
        },
    )
    assert reads.status_code == 200, reads.text


# -- 2. no event time in the future --------------------------------------------------------------


def test_a_row_in_the_future_refuses_the_whole_write(client: TestClient) -> None:
    now = _now()
    ok, soon, late = (now + dt.timedelta(minutes=m) for m in (-1, 4, 6))
    ids = [9_300_101, 9_300_102, 9_300_103]
    times = [ok.isoformat(), soon.isoformat(), late.isoformat()]
    refused = client.post(
        "/write-to-online-store", headers=_auth(WRITE), json=_write(_profile(ids, times))
    )
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert detail.startswith(f"df.event_timestamp[2] = {times[2]} is in the future")
    assert "300 s" in detail and "nothing was written" in detail
    assert _read(client, ids)["credit_limit"]["statuses"] == ["NOT_FOUND"] * 3
    # Within the tolerance (5 minutes of clock skew) is accepted.
    accepted = client.post(
        "/write-to-online-store", headers=_auth(WRITE), json=_write(_profile(ids[:2], times[:2]))
    )
    assert accepted.status_code == 200, accepted.text
    assert _read(client, ids)["credit_limit"]["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/materialize", {"start_ts": "2026-01-01T00:00:00", "end_ts": "2099-01-01T00:00:00"}),
        ("/materialize-incremental", {"end_ts": "2099-01-01T00:00:00Z"}),
    ],
)
def test_materialize_never_reaches_past_the_clock(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    response = client.post(path, headers=_auth(WRITE), json=body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"end_ts = {body['end_ts']} is in the future")


# -- 3. bad requests are a one-line 4xx ----------------------------------------------------------

NOW = "2026-12-01T00:00:00+00:00"
ENT = {"customer_id": [5], "requested_amount": [1.0]}
ROW = _profile([9_300_201], [NOW])
BAD: list[tuple[str, str, Any, int, str]] = [
    # (route, token, JSON body, status, a piece of the detail)
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {**ENT, "customer_id": ["5"]}}, 400, "customer_id[0] must be an int64, not '5'"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {**ENT, "customer_id": [5.5]}}, 400, "must be an int64, not 5.5"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {**ENT, "customer_id": [True]}}, 400, "must be an int64, not True"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {**ENT, "customer_id": [None]}}, 400, "customer_id[0] is null"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {**ENT, "customer_id": [2**70]}}, 400, "must be an int64"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {**ENT, "requested_amount": ["x"]}}, 400, "requested_amount[0] must be a float"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {"customer_id": [5]}}, 400, "lacks requested_amount"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {"requested_amount": [1.0]}}, 400, "lacks customer_id"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {**ENT, "customer_ID": [5]}}, 400, "unknown columns customer_ID"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {"customer_id": [5, 6], "requested_amount": [1.0]}}, 400, "same number of values"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {}}, 400, "non-empty object"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {"customer_id": [], "requested_amount": []}}, 400, "no rows"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": [5]}, 400, "non-empty object"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": {"customer_id": 5}}, 400, "must be a list"),
    ("/get-online-features", READ, {"feature_service": SERVICE}, 400, "missing field 'entities'"),
    ("/get-online-features", READ, {"feature_service": "nope", "entities": ENT}, 404, "unknown feature service 'nope'"),
    ("/get-online-features", READ, {"feature_service": 7, "entities": ENT}, 400, "feature_service must be a name"),
    ("/get-online-features", READ, {"features": ["nope:x"], "entities": ENT}, 404, "unknown feature view 'nope'"),
    ("/get-online-features", READ, {"features": ["customer_profile:nope"], "entities": ENT}, 404, "unknown feature 'nope'"),
    ("/get-online-features", READ, {"features": ["nocolon"], "entities": ENT}, 400, "bad feature reference"),
    ("/get-online-features", READ, {"features": ["customer_profile@v2:credit_limit"], "entities": ENT}, 400, "versioned reads are off"),
    ("/get-online-features", READ, {"features": [], "entities": ENT}, 400, "non-empty list"),
    ("/get-online-features", READ, {"entities": ENT}, 400, "either feature_service or features"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "features": ["customer_profile:credit_limit"], "entities": ENT}, 400, "either feature_service or features"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entities": ENT, "full_feature_names": "yes"}, 400, "full_feature_names must be true or false"),
    ("/get-online-features", READ, {"feature_service": SERVICE, "entitys": ENT}, 400, "unknown field 'entitys'"),
    ("/get-online-features", READ, {"features": ["credit_request_ratios:requested_to_credit_limit"], "entities": ENT}, 400, "depends on"),
    ("/write-to-online-store", WRITE, _write({k: v for k, v in ROW.items() if k != "region"}), 400, "df lacks region"),
    ("/write-to-online-store", WRITE, _write({**ROW, "extra": [1]}), 400, "unknown columns extra"),
    ("/write-to-online-store", WRITE, _write({"customer_id": [1], "event_timestamp": [NOW]}), 400, "df lacks tenure_days"),
    ("/write-to-online-store", WRITE, _write({**ROW, "credit_limit": ["lots"]}), 400, "df.credit_limit[0] must be a float, not 'lots'"),
    ("/write-to-online-store", WRITE, _write({**ROW, "tenure_days": [1.5]}), 400, "df.tenure_days[0] must be an int64"),
    ("/write-to-online-store", WRITE, _write({**ROW, "customer_id": ["x"]}), 400, "df.customer_id[0] must be an int64"),
    ("/write-to-online-store", WRITE, _write({**ROW, "customer_id": [None]}), 400, "df.customer_id[0] is null"),
    ("/write-to-online-store", WRITE, _write({**ROW, "event_timestamp": [None]}), 400, "df.event_timestamp[0] is null"),
    ("/write-to-online-store", WRITE, _write({**ROW, "event_timestamp": [1765000000]}), 400, "must be an ISO 8601 time string"),
    ("/write-to-online-store", WRITE, _write({**ROW, "event_timestamp": ["yesterday"]}), 400, "must be an ISO 8601 time string"),
    ("/write-to-online-store", WRITE, _write({**ROW, "customer_id": [1, 2]}), 400, "same number of values"),
    ("/write-to-online-store", WRITE, _write({}), 400, "df must be a non-empty object"),
    ("/write-to-online-store", WRITE, _write(ROW, view="nope"), 404, "unknown feature view 'nope'"),
    ("/write-to-online-store", WRITE, _write(ROW, view="credit_request_ratios"), 400, "on-demand view"),
    ("/write-to-online-store", WRITE, {"df": ROW}, 400, "missing field 'feature_view_name'"),
    ("/write-to-online-store", WRITE, _write(_profile(list(range(1001)), [NOW] * 1001)), 413, "1001 rows in one request: at most 1000"),
    ("/push", WRITE, {"push_source_name": "nope", "df": ROW}, 404, "unknown push source 'nope'"),
    ("/materialize", WRITE, {"start_ts": "x", "end_ts": "2026-01-02"}, 400, "start_ts must be an ISO 8601 time"),
    ("/materialize", WRITE, {"start_ts": "2026-01-02", "end_ts": "2026-01-01"}, 400, "start_ts must be before end_ts"),
    ("/materialize", WRITE, {"start_ts": "2026-01-01", "end_ts": "2026-01-02", "feature_views": ["nope"]}, 404, "unknown feature view 'nope'"),
    ("/materialize", WRITE, {"start_ts": "2026-01-01", "end_ts": "2026-01-02", "version": "v2"}, 400, "versioned feature views are off"),
    ("/materialize", WRITE, {"start": "2026-01-01"}, 400, "unknown field 'start'"),
    ("/materialize-incremental", WRITE, {}, 400, "missing field 'end_ts'"),
    ("/materialize-incremental", WRITE, {"end_ts": 5}, 400, "end_ts must be an ISO 8601 time"),
    ("/search", WRITE, {"feature_service": SERVICE, "query": [1.0]}, 404, "Not Found"),
    ("/nope", WRITE, {}, 404, "Not Found"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "token", "body", "status", "says"), BAD)
def test_a_bad_request_is_a_one_line_4xx(
    client: TestClient, path: str, token: str, body: Any, status: int, says: str
) -> None:
    response = client.post(path, headers=_auth(token), json=body)
    assert response.status_code == status, response.text
    _assert_one_safe_line(response, says)


@pytest.mark.parametrize(
    ("content", "content_type", "status", "says"),
    [
        (b"{nope", "application/json", 400, "not valid JSON"),
        (b"", "application/json", 400, "empty body"),
        (b"[1]", "application/json", 400, "a JSON object"),
        (json.dumps({"feature_service": SERVICE, "entities": ENT}).encode(), "text/plain", 415, "application/json"),
        (b"feature_service=credit_risk_v1", "application/x-www-form-urlencoded", 415, "application/json"),
        (b'{"feature_service": "credit_risk_v1", "entities": {"customer_id": [NaN], "requested_amount": [1]}}', "application/json", 400, "must be an int64"),
        (b'{"feature_service": "credit_risk_v1", "entities": {"customer_id": [5], "requested_amount": [Infinity]}}', "application/json", 400, "must be a float"),
    ],
)  # fmt: skip
def test_a_body_that_is_not_a_json_object_is_a_one_line_4xx(
    client: TestClient, content: bytes, content_type: str, status: int, says: str
) -> None:
    headers = {**_auth(READ), "content-type": content_type}
    response = client.post("/get-online-features", headers=headers, content=content)
    assert response.status_code == status, response.text
    _assert_one_safe_line(response, says)


def test_a_query_parameter_feast_rejects_is_a_one_line_422(client: TestClient) -> None:
    body = {"end_ts": "2026-01-02T00:00:00Z", "feature_views": ["customer_profile"]}
    response = client.post("/materialize-incremental?async=maybe", headers=_auth(WRITE), json=body)
    assert response.status_code == 422
    _assert_one_safe_line(response, "query.async")


def _assert_one_safe_line(response: Any, says: str) -> None:
    assert b"\n" not in response.content
    body = response.json()
    assert list(body) == ["detail"] and says in body["detail"], body
    for internal in ("Traceback", "site-packages", "/tmp", "/work", "127.0.0.1", "feast.errors"):
        assert internal not in body["detail"], internal


# -- a push source and a string join key -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One entity with a string key, one view fed by a push source; SQLite, files."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.repo_config import RegistryConfig, RepoConfig
    from feast.types import Float64, Int64

    root: Path = tmp_path_factory.mktemp("tiny-store")
    config = RepoConfig(
        project="tiny",
        provider="local",
        registry=RegistryConfig(path=str(root / "registry.db"), cache_ttl_seconds=0),
        online_store=SqliteOnlineStoreConfig(path=str(root / "online.db")),
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    device = Entity(name="device", join_keys=["device_id"], value_type=ValueType.STRING)
    batch = FileSource(
        name="readings_file", path=str(root / "readings.parquet"), timestamp_field="ts"
    )
    push = PushSource(name="readings_push", batch_source=batch)
    view = FeatureView(
        name="readings",
        entities=[device],
        ttl=dt.timedelta(days=1),
        schema=[Field(name="temperature", dtype=Float64), Field(name="count", dtype=Int64)],
        source=push,
        online=True,
    )
    store.apply([device, batch, push, view])
    with TestClient(build_app(store, READ, write_token=WRITE, registry_ttl_sec=0)) as c:
        yield c


def _push(ids: list[Any], times: list[str], to: str = "online") -> dict[str, Any]:
    n = len(ids)
    df = {"device_id": ids, "ts": times, "temperature": [21.5] * n, "count": [3] * n}
    return {"push_source_name": "readings_push", "df": df, "to": to}


def _tiny_read(tiny: TestClient, ids: list[Any]) -> Any:
    return tiny.post(
        "/get-online-features",
        headers=_auth(READ),
        json={"features": ["readings:temperature"], "entities": {"device_id": ids}},
    )


def test_push_checks_like_a_write_and_a_string_key_takes_no_int(tiny: TestClient) -> None:
    now = _now()
    recent, future = (now - dt.timedelta(minutes=1)).isoformat(), "2099-01-01T00:00:00+00:00"
    assert tiny.post("/push", headers=_auth(READ), json=_push(["a"], [recent])).status_code == 403
    refused = tiny.post("/push", headers=_auth(WRITE), json=_push(["a", "b"], [recent, future]))
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith(f"df.ts[1] = {future} is in the future")
    assert _tiny_read(tiny, ["a", "b"]).json()["results"][1]["statuses"] == ["NOT_FOUND"] * 2
    pushed = tiny.post("/push", headers=_auth(WRITE), json=_push(["a"], [recent]))
    assert pushed.status_code == 200, pushed.text
    read = _tiny_read(tiny, ["a"])
    assert read.json()["results"][1] == {
        "values": [21.5],
        "statuses": ["PRESENT"],
        "event_timestamps": [dt.datetime.fromisoformat(recent).strftime("%Y-%m-%dT%H:%M:%SZ")],
    }
    lean = {"device_id": ["a"], "ts": [recent]}
    cases = [
        (_tiny_read(tiny, [5]), "entities.device_id[0] must be a string, not 5"),
        (tiny.post("/push", headers=_auth(WRITE), json=_push([5], [recent])), "must be a string"),
        (
            tiny.post("/push", headers=_auth(WRITE), json=_push(["a"], [recent], to="sideways")),
            "to must be online, offline or online_and_offline",
        ),
        (
            tiny.post("/push", headers=_auth(WRITE), json={**_push(["a"], [recent]), "df": lean}),
            "df lacks temperature, count",
        ),
    ]
    for response, says in cases:
        assert response.status_code == 400, response.text
        _assert_one_safe_line(response, says)


# -- the online store down -------------------------------------------------------------------


def test_the_store_down_is_a_503_that_names_no_host(small_store: SmallStore) -> None:
    port = free_port()  # nothing listens there
    settings = small_store.settings.model_copy(
        update={
            "feast_online_store": "redis",
            "redis_connection": f"127.0.0.1:{port},socket_connect_timeout=1,socket_timeout=1",
        }
    )
    from kaizen.featurestore.store import open_store

    app = build_app(open_store(settings), READ, write_token=WRITE, registry_ttl_sec=0)
    body = {"feature_service": SERVICE, "entities": ENT}
    with TestClient(app) as client:
        read = client.post("/get-online-features", headers=_auth(READ), json=body)
        write = client.post(
            "/write-to-online-store",
            headers=_auth(WRITE),
            json=_write(_profile([9_300_301], [_now().isoformat()])),
        )
    for response in (read, write):
        assert response.status_code == 503, response.text
        assert response.json() == {"detail": UNAVAILABLE}
        assert str(port) not in response.text and "127.0.0.1" not in response.text


REDIS_DB = 9  # a database of its own, flushed before and after


def test_on_redis_a_write_lands_and_a_future_one_changes_nothing(
    small_store: SmallStore, redis_url: str
) -> None:
    """The same gate in front of Feast's Redis store (Kaizen's monotonic one)."""
    import redis

    from kaizen.featurestore.store import open_store

    keys = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    keys.flushdb()
    settings = small_store.settings.model_copy(
        update={
            "feast_online_store": "redis",
            "redis_connection": f"127.0.0.1:6379,db={REDIS_DB}",
        }
    )
    try:
        app = build_app(open_store(settings), READ, write_token=WRITE, registry_ttl_sec=0)
        when = (_now() - dt.timedelta(minutes=1)).replace(microsecond=0).isoformat()
        with TestClient(app) as client:
            first = _write(_profile([9_300_401], [when], credit_limit=[10.0]))
            written = client.post("/write-to-online-store", headers=_auth(WRITE), json=first)
            assert written.status_code == 200, written.text
            attack = _write(_profile([9_300_401], ["2099-01-01T00:00:00Z"], credit_limit=[99.0]))
            refused = client.post("/write-to-online-store", headers=_auth(WRITE), json=attack)
            by_reader = client.post("/write-to-online-store", headers=_auth(READ), json=attack)
            got = _read(client, [9_300_401])["credit_limit"]
        assert refused.status_code == 400 and "2099-01-01T00:00:00Z" in refused.json()["detail"]
        assert by_reader.status_code == 403
        assert got["values"] == [10.0] and got["statuses"] == ["PRESENT"]
        assert keys.dbsize() > 0  # it was Redis that answered
    finally:
        keys.flushdb()
