"""The feature server over real HTTP, and freshness at read time.

One small store per session: four simulated days ending yesterday (200 customers, SQLite
online store), so the values are fresh by the wall clock the server judges with, plus one
hand-written customer whose activity row is ten days old (stale under its 3-day TTL) while
its profile (7-day TTL) and payments are recent. One `kaizen feature-server` subprocess for
the module, on a free loopback port, reads its token from its home's `.env`.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from support import REPO, STALE_ID, SmallStore

from kaizen.config import Settings
from kaizen.errors import ConfigError, InputError
from kaizen.featurestore.online import read_features
from kaizen.featurestore.plans import plan_for_refs
from kaizen.featurestore.server import require_token
from kaizen.ops import secrets as platform_secrets
from kaizen.seaweed import free_port

pytestmark = pytest.mark.usefixtures("feast_environ_restored")
KAIZEN = str(Path(sys.executable).with_name("kaizen"))
SERVICE = "credit_risk_v1"
MISSING_ID = 424_242
ACTIVITY = ["orders_30d", "spend_30d", "aov_30d", "orders_90d", "spend_90d", "aov_90d"]
ON_DEMAND = ["requested_to_credit_limit", "requested_plus_open_to_limit"]


def _read(small: SmallStore, ids: list[int], now: dt.datetime, policy: str = "mark"):
    rows = [{"customer_id": i, "requested_amount": 500.0} for i in ids]
    return read_features(small.store(), SERVICE, rows, now, policy)  # type: ignore[arg-type]


# -- read_features: freshness on the Python read path ------------------------------------------


def test_mark_keeps_a_stale_view_and_flags_only_it(small_store: SmallStore) -> None:
    now = small_store.midnight + dt.timedelta(hours=12)
    result = _read(small_store, [5, STALE_ID], now, "mark")
    fresh, stale = result.entities
    assert fresh.stale_views == [] and fresh.missing_views == []
    assert stale.stale_views == ["customer_activity"]
    activity = stale.views["customer_activity"]
    assert activity.event_timestamp == small_store.midnight - dt.timedelta(days=10)
    assert activity.age == dt.timedelta(days=10, hours=12)
    assert activity.ttl == dt.timedelta(days=3)
    assert stale.views["customer_profile"].age == dt.timedelta(days=2, hours=12)
    # The stale values are kept (STALE_ID is a copy of customer 5), and so is the rest.
    assert {f: stale.values[f] for f in ACTIVITY} == {f: fresh.values[f] for f in ACTIVITY}
    assert all(stale.values[f] is not None for f in ACTIVITY)
    assert result.stale and "customer_id" not in result.features  # keys are not features


def test_refuse_drops_only_stale_values(small_store: SmallStore) -> None:
    now = small_store.midnight + dt.timedelta(hours=12)
    fresh, stale = _read(small_store, [5, STALE_ID], now, "refuse").entities
    assert stale.stale_views == ["customer_activity"]
    assert all(stale.values[f] is None for f in ACTIVITY)
    kept = [f for f in fresh.values if f not in ACTIVITY]
    assert {f: stale.values[f] for f in kept} == {f: fresh.values[f] for f in kept}
    assert stale.values["credit_limit"] is not None
    assert all(fresh.values[f] is not None for f in ACTIVITY)


def test_a_missing_entity_is_missing_not_stale(small_store: SmallStore) -> None:
    result = _read(small_store, [MISSING_ID], small_store.midnight, "refuse")
    (entity,) = result.entities
    assert entity.request == {"customer_id": MISSING_ID, "requested_amount": 500.0}
    assert entity.stale_views == [] and entity.fresh
    assert sorted(entity.missing_views) == sorted(
        ["customer_profile", "customer_activity", "customer_payments", "credit_request_ratios"]
    )
    assert all(v.event_timestamp is None and v.age is None for v in entity.views.values())
    assert set(entity.values.values()) == {None}


def test_an_on_demand_feature_is_as_fresh_as_the_views_it_reads(small_store: SmallStore) -> None:
    now = small_store.midnight + dt.timedelta(hours=1)
    (entity,) = _read(small_store, [5], now, "mark").entities
    ratio = entity.values["requested_to_credit_limit"]
    assert ratio == pytest.approx(500.0 / entity.values["credit_limit"])
    ratios = entity.views["credit_request_ratios"]
    assert (ratios.event_timestamp, ratios.stale, ratios.ttl) == (small_store.midnight, False, None)
    # Five days on, payments (3-day TTL) is stale, profile (7 days) is not: the ratio that
    # reads both is stale too; refused, it goes with them.
    later = small_store.midnight + dt.timedelta(days=5)
    (marked,) = _read(small_store, [5], later, "mark").entities
    assert sorted(marked.stale_views) == sorted(
        ["customer_activity", "customer_payments", "credit_request_ratios"]
    )
    assert marked.values["requested_to_credit_limit"] == ratio
    (refused,) = _read(small_store, [5], later, "refuse").entities
    assert [refused.values[f] for f in ON_DEMAND] == [None, None]
    assert refused.values["credit_limit"] == entity.values["credit_limit"]


def test_bad_reads_are_one_line_errors(small_store: SmallStore) -> None:
    store = small_store.store()
    rows = [{"customer_id": 5, "requested_amount": 1.0}]
    with pytest.raises(InputError, match="unknown freshness policy"):
        read_features(store, SERVICE, rows, small_store.midnight, "ignore")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="timezone-aware"):
        read_features(store, SERVICE, rows, dt.datetime(2026, 1, 1), "mark")
    with pytest.raises(InputError, match="depends on customer_p"):
        plan_for_refs(store, ["credit_request_ratios:requested_to_credit_limit"])


# -- the token -----------------------------------------------------------------------------------


def test_first_up_generates_the_token_into_env(tmp_path: Path) -> None:
    from kaizen.ops.components import components

    env_file = tmp_path / ".env"
    env_file.write_text("KAIZEN_LOG_LEVEL=DEBUG\n")
    generated = platform_secrets.ensure_passwords(
        Settings(_env_file=env_file, home=tmp_path), env_file
    )
    token = generated["KAIZEN_FEATURE_SERVER_TOKEN"]
    assert len(token) >= 32 and stat.S_IMODE(env_file.stat().st_mode) == 0o600
    settings = Settings(_env_file=env_file, home=tmp_path)
    assert require_token(settings) == token
    assert platform_secrets.ensure_passwords(settings, env_file) == {}
    (server,) = [c for c in components(settings) if c.name == "feature-server"]
    # Feast's server serves one project's repo: the selected one.
    assert server.argv[1:] == ["--project", "credit_risk", "feature-server"]
    assert server.port == 6566
    assert server.health_url == "http://127.0.0.1:6566/health"
    with pytest.raises(ConfigError, match="too short"):
        require_token(Settings(_env_file=None, home=tmp_path, feature_server_token="x" * 8))


def test_without_a_token_it_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")}
    port = free_port()
    env.update({"KAIZEN_HOME": str(tmp_path), "KAIZEN_FEATURE_SERVER_PORT": str(port)})
    result = subprocess.run(
        [KAIZEN, "feature-server"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "KAIZEN_FEATURE_SERVER_TOKEN" in result.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing was left listening


# -- the server over real HTTP ---------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    token: str
    write_token: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def write_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.write_token}"}


@pytest.fixture(scope="module")
def server(small_store: SmallStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("feature-server-home")
    token, writer = platform_secrets.generate_password(), platform_secrets.generate_password()
    platform_secrets.write_private(
        home / ".env",
        f"KAIZEN_FEATURE_SERVER_TOKEN={token}\nKAIZEN_FEATURE_SERVER_WRITE_TOKEN={writer}\n",
    )
    port = free_port()
    settings = small_store.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")}
    env.update(
        {
            "KAIZEN_HOME": str(home),
            "KAIZEN_PROJECTS_DIR": str(REPO / "projects"),
            "KAIZEN_PROJECT": "credit_risk",
            "KAIZEN_LAKE_ROOT": settings.lake_root,
            "KAIZEN_FEAST_DATA_DIR": str(settings.feast_data_dir),
            "KAIZEN_FEATURE_SERVER_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = home / "server.log"
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [KAIZEN, "feature-server"], env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90
        with httpx.Client(timeout=2, trust_env=False) as client:
            while True:
                assert proc.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"no health:\n{log.read_text()[-3000:]}"
                time.sleep(0.2)
        yield Server(url=url, port=port, token=token, write_token=writer, proc=proc, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        text = log.read_text()
        assert token not in text and writer not in text, "a token reached the server's log"


def _client() -> httpx.Client:
    return httpx.Client(timeout=15, trust_env=False)


def _body(ids: list[int]) -> dict:
    return {
        "feature_service": SERVICE,
        "entities": {"customer_id": ids, "requested_amount": [500.0] * len(ids)},
    }


def test_health_is_open_and_says_nothing_else(server: Server) -> None:
    with _client() as client:
        response = client.get(f"{server.url}/health")
    assert response.status_code == 200 and response.content == b""
    assert "server" not in response.headers


def test_path_traversal_with_the_token_reads_no_file(server: Server) -> None:
    """Feast's server mounts static UI routes; with the token, a way out of them is a 4xx."""
    headers = {"Authorization": f"Bearer {server.token}"}
    paths = [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/../../../../etc/passwd",
        "/ui/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "//etc/passwd",
    ]
    with _client() as client:
        answers = {p: client.get(f"{server.url}{p}", headers=headers) for p in paths}
    assert {p: r.status_code for p, r in answers.items() if not 400 <= r.status_code < 500} == {}
    assert not any("root:" in r.text for r in answers.values())


def test_no_or_wrong_token_is_refused_with_the_same_empty_answer(server: Server) -> None:
    wrong = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Bearer {server.token[:-1]}"},
        {"Authorization": f"Bearer {server.token}x"},
        {"Authorization": f"Basic {server.token}"},
        {"Authorization": server.token},
    ]
    routes = [
        ("POST", "/get-online-features"),
        ("POST", "/push"),
        ("POST", "/write-to-online-store"),
        ("POST", "/materialize"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/chat"),
        ("GET", "/health/../docs"),
        ("GET", "/nope"),
    ]
    with _client() as client:
        for method, path in routes:
            for headers in wrong:
                response = client.request(
                    method, f"{server.url}{path}", headers=headers, json=_body([5])
                )
                assert response.status_code == 401, (method, path, headers)
                assert response.content == b'{"detail":"Unauthorized"}'
                assert response.headers["www-authenticate"] == "Bearer"
                assert server.token not in response.text + str(response.headers)
        ok = client.get(f"{server.url}/openapi.json", headers=server.auth)
        assert ok.status_code == 200 and "/get-online-features" in ok.json()["paths"]


def test_a_websocket_without_the_token_is_refused(server: Server) -> None:
    request = (
        f"GET /ws/chat HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request.encode())
        status = sock.recv(1024).split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 403"), status


def test_the_token_reads_what_the_sdk_reads(server: Server, small_store: SmallStore) -> None:
    ids = [5, 17, MISSING_ID]
    with _client() as client:
        response = client.post(
            f"{server.url}/get-online-features", headers=server.auth, json=_body(ids)
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    names = answer["metadata"]["feature_names"]
    store = small_store.store()
    sdk = store.get_online_features(  # type: ignore[attr-defined]
        features=store.get_feature_service(SERVICE),  # type: ignore[attr-defined]
        entity_rows=[{"customer_id": i, "requested_amount": 500.0} for i in ids],
    ).to_dict()
    assert sorted(names) == sorted(sdk)
    for name, result in zip(names, answer["results"], strict=True):
        assert result["values"] == sdk[name], name
    by_name = dict(zip(names, answer["results"], strict=True))
    assert by_name["credit_limit"]["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
    assert "OUTSIDE_MAX_AGE" not in str(answer)
    assert by_name["requested_to_credit_limit"]["values"][0] == pytest.approx(
        500.0 / by_name["credit_limit"]["values"][0]
    )


def test_stale_values_come_back_outside_max_age_and_null(server: Server) -> None:
    with _client() as client:
        response = client.post(
            f"{server.url}/get-online-features", headers=server.auth, json=_body([5, STALE_ID])
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    by_name = dict(zip(answer["metadata"]["feature_names"], answer["results"], strict=True))
    for name in ACTIVITY:
        assert by_name[name]["statuses"] == ["PRESENT", "OUTSIDE_MAX_AGE"], name
        assert by_name[name]["values"][1] is None
        assert by_name[name]["values"][0] is not None
    for name in ["credit_limit", "open_balance", *ON_DEMAND]:
        assert by_name[name]["statuses"] == ["PRESENT", "PRESENT"], name
        assert by_name[name]["values"][1] == by_name[name]["values"][0]


def test_an_on_demand_feature_without_its_sources_is_a_clear_400(server: Server) -> None:
    body = {
        "features": ["credit_request_ratios:requested_to_credit_limit"],
        "entities": {"customer_id": [5], "requested_amount": [500.0]},
    }
    with _client() as client:
        response = client.post(f"{server.url}/get-online-features", headers=server.auth, json=body)
        missing = client.post(
            f"{server.url}/get-online-features",
            headers=server.auth,
            json={"feature_service": "nope", "entities": {"customer_id": [5]}},
        )
    assert response.status_code == 400 and "depends on" in response.json()["detail"]
    assert missing.status_code == 404  # Feast's own error passes through


def test_it_listens_on_loopback_only(server: Server) -> None:
    proc = psutil.Process(server.proc.pid)
    listening = [
        c.laddr
        for p in [proc, *proc.children(recursive=True)]
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", server.port)]


def test_latency_of_one_authenticated_read(server: Server) -> None:
    """p50 over 200 calls on loopback, 1 entity, the service's features (printed; -s)."""
    body = _body([5])
    seconds = []
    with _client() as client:
        url = f"{server.url}/get-online-features"
        for _ in range(10):
            client.post(url, headers=server.auth, json=body)
        for _ in range(200):
            started = time.perf_counter()
            response = client.post(url, headers=server.auth, json=body)
            seconds.append(time.perf_counter() - started)
            assert response.status_code == 200
    seconds.sort()
    p50, p99 = seconds[100] * 1e3, seconds[197] * 1e3
    print(f"\nfeature server /get-online-features, 1 entity: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    assert p50 < 500  # a sanity bound only: this machine's two cores are shared


# -- read and write tokens, caps, over real HTTP ---------------------------------------------------


def test_the_write_token_from_env_reads_and_the_read_token_cannot_write(
    server: Server, small_store: SmallStore
) -> None:
    """The tester's attack: a real entity's row stamped 2099, written with the read token."""
    now = dt.datetime.now(dt.UTC)
    row = {**_profile_row(5, "2099-01-01T00:00:00+00:00"), "credit_limit": [1.0]}
    attack = {"feature_view_name": "customer_profile", "df": row}
    with _client() as client:
        read = client.post(
            f"{server.url}/get-online-features", headers=server.write_auth, json=_body([5])
        )
        refused = {
            path: client.post(f"{server.url}{path}", headers=server.auth, json=attack)
            for path in [
                "/write-to-online-store",
                "/push",
                "/materialize",
                "/materialize-incremental",
            ]
        }
        future = client.post(
            f"{server.url}/write-to-online-store", headers=server.write_auth, json=attack
        )
        fresh = client.post(
            f"{server.url}/write-to-online-store",
            headers=server.write_auth,
            json={
                "feature_view_name": "customer_profile",
                "df": _profile_row(9_200_001, now.isoformat()),
            },
        )
    assert read.status_code == 200, read.text
    assert {p: r.status_code for p, r in refused.items()} == dict.fromkeys(refused, 403)
    assert all("needs the write token" in r.json()["detail"] for r in refused.values())
    assert future.status_code == 400
    assert "event_timestamp[0] = 2099-01-01T00:00:00+00:00" in future.json()["detail"]
    assert fresh.status_code == 200, fresh.text
    store = small_store.store()
    online = store.get_online_features(  # type: ignore[attr-defined]
        features=["customer_profile:credit_limit"],
        entity_rows=[{"customer_id": 5}, {"customer_id": 9_200_001}],
    ).to_dict()
    assert online["credit_limit"][0] != 1.0 and online["credit_limit"][1] == 1.0
    assert "writes with KAIZEN_FEATURE_SERVER_WRITE_TOKEN" in server.log.read_text()


def _profile_row(customer_id: int, event_time: str) -> dict[str, list]:
    return {
        "customer_id": [customer_id],
        "event_timestamp": [event_time],
        "tenure_days": [30],
        "credit_limit": [1.0],
        "annual_income": [1000.0],
        "region": ["north"],
        "income_band": ["0-30k"],
    }


def test_a_body_past_the_cap_is_413_before_it_is_read(server: Server) -> None:
    """8 MB declared, 64 KB sent: the answer comes without the rest (the cap is 1 MiB)."""
    head = (
        f"POST /get-online-features HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 8000000\r\n\r\n"
    )
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode() + b'{"entities": {"customer_id": [' + b"1," * 32_000)
        answer = b""
        while b"}" not in answer:  # the head, then the one-line JSON body
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    seconds = time.perf_counter() - started
    print(f"\n413 for an 8 MB body after {seconds * 1e3:.1f} ms")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"KAIZEN_FEATURE_SERVER_MAX_BODY_BYTES" in answer
    assert seconds < 2


def test_more_entities_than_the_cap_is_413(server: Server) -> None:
    with _client() as client:
        started = time.perf_counter()
        response = client.post(
            f"{server.url}/get-online-features",
            headers=server.auth,
            json=_body(list(range(1001))),
        )
        seconds = time.perf_counter() - started
        at_cap = client.post(
            f"{server.url}/get-online-features", headers=server.auth, json=_body(list(range(1000)))
        )
    assert response.status_code == 413, response.text
    assert response.json() == {
        "detail": "1001 rows in one request: at most 1000 (KAIZEN_FEATURE_SERVER_MAX_ENTITIES)"
    }
    assert at_cap.status_code == 200 and seconds < 2
