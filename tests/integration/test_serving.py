"""The prediction API: auth, validation, scores equal to the registered model's, routing,
the prediction log, and an alias flip under concurrent traffic on a real uvicorn server.

Features come from the session's small materialized store (fresh by the wall clock); two
small models are trained on them and registered in a module-private MLflow store with their
feature service tag, as `register` does. Each test gets its own lake for the prediction log.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from support import STALE_ID, SmallStore

from kaizen.config import Settings
from kaizen.errors import ConfigError
from kaizen.featurestore.online import read_features
from kaizen.runtime import Runtime
from kaizen.seaweed import free_port
from kaizen.serving.app import build_app, build_predictor
from kaizen.serving.predictions import log_columns, read_predictions
from kaizen.serving.routing import canary_bucket, route

pytestmark = pytest.mark.usefixtures("feast_environ_restored")
SERVICE = "credit_risk_v1"
MODEL = "credit_risk"
PROJECT = "credit_risk"
PREDICT, BATCH = f"/{PROJECT}/predict", f"/{PROJECT}/predict/batch"
EXPLAIN, METADATA = f"/{PROJECT}/explain", f"/{PROJECT}/metadata"
TOKEN = "test-token-" + "x" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MISSING_ID = 424_242
KAIZEN = str(Path(sys.executable).with_name("kaizen"))


def typed(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Feature rows as a model frame: text columns as object (None -> NaN), the rest float."""
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        values = frame[column]
        if any(isinstance(v, str) for v in values):
            frame[column] = values.map(lambda v: np.nan if v is None else v).astype(object)
        else:
            frame[column] = pd.to_numeric(values, errors="coerce").astype("float64")
    return frame


def online_rows(store: Any, ids: list[int], amounts: list[float]) -> list[dict[str, Any]]:
    rows = [{"customer_id": i, "requested_amount": a} for i, a in zip(ids, amounts, strict=True)]
    now = dt.datetime.now(dt.UTC)
    entities = read_features(store, SERVICE, rows, now, "refuse").entities
    return [{**e.values, "requested_amount": e.request["requested_amount"]} for e in entities]


def register_version(rt: Runtime, frame: pd.DataFrame, seed: int, model_name: str = MODEL) -> str:
    """Train a small model of the production pipeline and register it as `register` does."""
    import mlflow
    import skops.io
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from kaizen.model import tracking
    from kaizen.model.data import model_inputs
    from kaizen.model.explain import log_background
    from kaizen.model.pipeline import build
    from kaizen.model.serialization import audited_trusted_types
    from kaizen.stages.register import ONNX_DIR, ONNX_TAG, onnx_form, pip_requirements

    rng = np.random.default_rng(seed)
    risk = frame["late_ratio_180d"].fillna(0) * 3 + frame["requested_to_credit_limit"].fillna(1)
    label = (risk + rng.normal(0, 0.7, len(frame)) > np.quantile(risk, 0.7)).astype(int)
    inputs = model_inputs(frame, [])  # the frame holds no keys
    train = rt.params.train.model_copy(
        update={"max_iter": 15 + seed, "min_samples_leaf": 10, "calibration_folds": 2}
    )
    model = build(inputs, train).fit(frame[inputs.all], label)
    example = frame[inputs.all].head(5)
    onnx = onnx_form(model, inputs, frame, rt.params.register_.onnx)
    tracking.configure(rt.settings, "serving-test")
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        logged = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict_proba(example)[:, 1]),
            input_example=example,
            serialization_format="skops",
            skops_trusted_types=audited_trusted_types(skops.io.dumps(model)),
            pip_requirements=pip_requirements(),
            registered_model_name=model_name,
        )
        log_background(frame[inputs.all].head(30))  # as `evaluate` logs it, for /explain
        (Path(tmp) / "model.onnx").write_bytes(onnx.serialized)
        mlflow.log_artifact(str(Path(tmp) / "model.onnx"), ONNX_DIR)
    number = str(logged.registered_model_version)
    client = MlflowClient()
    tags = {"feature_service": SERVICE, "feature_service_version": "1", "holdout": '{"rows":1}'}
    for key, value in tags.items():
        client.set_model_version_tag(model_name, number, f"kaizen.{key}", value)
    client.set_model_version_tag(model_name, number, ONNX_TAG, f"{ONNX_DIR}/model.onnx")
    return number


class World:
    def __init__(self, small: SmallStore, home: Path, versions: list[str]):
        self.small, self.home, self.versions = small, home, versions
        self.frame = pd.DataFrame()  # the feature rows the versions were trained on

    def runtime(self, lake: Path, **serve: Any) -> Runtime:
        production = serve.pop("production", {})
        settings = self.small.settings.model_copy(
            update={"runtime_dir": self.home / "runtime", "lake_root": str(lake)}
        )
        rt = Runtime(settings)
        p = rt.params
        promote = p.promote.model_copy(
            update={"production": p.promote.production.model_copy(update=production)}
        )
        rt.__dict__["params"] = p.model_copy(
            update={"serve": p.serve.model_copy(update=serve), "promote": promote}
        )
        return rt

    def aliases(self, rt: Runtime, champion: str | None, challenger: str | None = None) -> None:
        from kaizen.model.registry import client

        registry = client(rt)
        for alias, number in (("champion", champion), ("challenger", challenger)):
            if number is None:
                registry.delete_registered_model_alias(rt.model_name, alias)
            else:
                registry.set_registered_model_alias(rt.model_name, alias, number)


@pytest.fixture(scope="module")
def world(small_store: SmallStore, tmp_path_factory: pytest.TempPathFactory) -> World:
    home = tmp_path_factory.mktemp("serving")
    store = small_store.store()
    rng = np.random.default_rng(3)
    ids = [int(i) for i in rng.integers(1, 201, 900)]
    rows = online_rows(store, ids, [float(a) for a in rng.uniform(50, 5000, len(ids)).round(2)])
    frame = typed(rows)
    numeric = frame.select_dtypes("number").columns
    frame[numeric] = frame[numeric].fillna(0.0)  # a column all-NaN in a fold breaks binning
    w = World(small_store, home, [])
    w.frame = frame
    rt = w.runtime(home / "lake")
    w.versions = [register_version(rt, frame, 1), register_version(rt, frame, 7)]
    return w


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def client_for(world: World, rt: Runtime, **kwargs: Any) -> TestClient:
    predictor = build_predictor(rt, store=world.small.store(), **kwargs)
    predictor.refresher.refresh()  # loaded before the first request
    return TestClient(build_app(predictor, TOKEN))


@pytest.fixture
def api(world: World, lake: Path) -> Iterator[TestClient]:
    rt = world.runtime(lake)
    world.aliases(rt, world.versions[0])
    with client_for(world, rt) as client:
        yield client


def test_every_route_but_health_needs_the_token(api: TestClient) -> None:
    body = {"customer_id": 5, "requested_amount": 100.0}
    wrong = [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}]
    routes = [("POST", PREDICT), ("POST", BATCH), ("GET", METADATA)]
    routes += [("POST", EXPLAIN), ("GET", "/metrics"), ("GET", "/docs"), ("GET", "/nope")]
    routes += [("GET", "/nope/health"), ("POST", "/nope/predict")]
    for method, path in routes:
        for headers in wrong:
            response = api.request(method, path, headers=headers, json=body)
            assert response.status_code == 401, (method, path, headers)
            assert response.content == b'{"detail":"Unauthorized"}'
    health = api.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "projects": {PROJECT: "ok"}}
    assert api.get(f"/{PROJECT}/health").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"customer_id": 5}, "requested_amount: is required but missing"),
        (
            {"customer_id": 5, "requested_amount": -3},
            "requested_amount: Input should be greater than 0",
        ),
        ({"customer_id": 5, "requested_amount": 0}, "greater than 0"),
        (
            {"customer_id": "5", "requested_amount": 10},
            "customer_id: Input should be a valid integer",
        ),
        ({"customer_id": 5.5, "requested_amount": 10}, "customer_id"),
        ({"customer_id": 5, "requested_amount": 10, "amount": 1}, "amount: is not a known field"),
        ({"customer_id": 5, "requested_amount": 10, "request_id": ""}, "request_id"),
    ],
)
def test_bad_input_is_a_one_line_422(api: TestClient, body: dict, message: str) -> None:
    response = api.post(PREDICT, headers=AUTH, json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert message in detail and "\n" not in detail


def test_bad_batches_are_422(api: TestClient) -> None:
    too_many = {"requests": [{"customer_id": 5, "requested_amount": 1.0}] * 501}
    response = api.post(BATCH, headers=AUTH, json=too_many)
    assert response.status_code == 422 and "at most 500 rows" in response.json()["detail"]
    assert api.post(BATCH, headers=AUTH, json={"requests": []}).status_code == 422
    broken = api.post(PREDICT, headers={**AUTH, "content-type": "application/json"}, content=b"{")
    assert broken.status_code == 422 and "\n" not in broken.json()["detail"]


def test_predict_and_batch_give_the_registered_models_scores(api: TestClient, world: World) -> None:
    from kaizen.model.versions import load

    ids, amounts = [5, 17, 33, STALE_ID], [500.0, 80.5, 2500.0, 500.0]
    single = []
    for i, a in zip(ids, amounts, strict=True):
        response = api.post(PREDICT, headers=AUTH, json={"customer_id": i, "requested_amount": a})
        assert response.status_code == 200, response.text
        single.append(response.json())
    batch = api.post(
        BATCH,
        headers=AUTH,
        json={
            "requests": [
                {"customer_id": i, "requested_amount": a} for i, a in zip(ids, amounts, strict=True)
            ]
        },
    )
    assert batch.status_code == 200, batch.text
    batched = batch.json()["results"]
    rt = world.runtime(world.home / "lake")
    version = load(rt, world.versions[0])
    expected = version.score(typed(online_rows(world.small.store(), ids, amounts)))
    assert [r["probability"] for r in single] == pytest.approx(expected.tolist(), abs=1e-12)
    assert [r["probability"] for r in batched] == pytest.approx(expected.tolist(), abs=1e-12)
    threshold = rt.params.serve.decision_threshold
    below, at_or_above = rt.params.serve.decisions
    for r in single[:3]:
        assert r["model_version"] == world.versions[0] and r["alias"] == "champion"
        assert r["decision"] == (at_or_above if r["probability"] >= threshold else below)
        assert r["reason"] is None
    assert single[0]["feature_freshness"] == {"fresh": True, "stale_views": [], "missing_views": []}
    assert single[3]["feature_freshness"]["stale_views"] == ["customer_activity"]
    assert single[3]["feature_freshness"]["fresh"] is False
    assert single[3]["decision"] == batched[3]["decision"] == rt.params.serve.refer_decision
    assert len({r["request_id"] for r in single + batched}) == len(single + batched)


# -- what the online store cannot vouch for is never decided by the threshold -----------------


def test_an_unknown_entity_is_a_404_naming_its_key_and_nothing_is_logged(
    world: World, lake: Path
) -> None:
    rt = world.runtime(lake)
    world.aliases(rt, world.versions[0])
    ids = [5, MISSING_ID, MISSING_ID + 1]
    with client_for(world, rt) as api:
        one = api.post(
            PREDICT, headers=AUTH, json={"customer_id": MISSING_ID, "requested_amount": 1.0}
        )
        batch = api.post(
            BATCH,
            headers=AUTH,
            json={"requests": [{"customer_id": i, "requested_amount": 10.0} for i in ids]},
        )
        text = api.get("/metrics", headers=AUTH).text
    assert one.status_code == 404 and batch.status_code == 404
    assert one.json() == {
        "detail": f"unknown entity customer_id={MISSING_ID}: the online store has no features for it"
    }
    assert batch.json()["detail"] == (
        f"unknown entities (2) customer_id={MISSING_ID}; customer_id={MISSING_ID + 1}: "
        "the online store has no features for them"
    )
    where = str(world.small.root)
    assert not any(where in r.text or "127.0.0.1" in r.text for r in (one, batch))
    assert (
        f'kaizen_prediction_errors_total{{project="{PROJECT}",reason="unknown_entity"}} 2.0' in text
    )
    assert read_predictions(rt).empty  # nothing scored, nothing logged: not even customer 5


def test_incomplete_features_are_referred_unless_the_policy_says_score(
    world: World, lake: Path
) -> None:
    fresh = {"customer_id": 5, "requested_amount": 500.0}
    stale = {"customer_id": STALE_ID, "requested_amount": 500.0}  # its activity is 10 days old
    answers: dict[str, list[dict[str, Any]]] = {}
    for policy in ("refer", "score"):
        rt = world.runtime(lake / policy, incomplete_policy=policy)
        world.aliases(rt, world.versions[0])
        with client_for(world, rt) as api:
            answers[policy] = [
                api.post(PREDICT, headers=AUTH, json=b).json() for b in (fresh, stale)
            ]
            assert api.get(METADATA, headers=AUTH).json()["incomplete_policy"] == policy
        logged = read_predictions(rt).set_index("customer_id")
        assert logged.loc[STALE_ID, "decision"] == answers[policy][1]["decision"]
    # Thirty days on, every view of customer 5 is past its TTL: referred too, not unknown.
    rt = world.runtime(lake / "later")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    with client_for(world, rt, clock=lambda: later) as api:
        all_stale = api.post(PREDICT, headers=AUTH, json=fresh)
    serve = rt.params.serve
    below, at_or_above = serve.decisions

    def by_threshold(answer: dict[str, Any]) -> str:
        return at_or_above if answer["probability"] >= serve.decision_threshold else below

    (refer_fresh, refer_stale), (score_fresh, score_stale) = answers["refer"], answers["score"]
    assert refer_fresh["decision"] == by_threshold(refer_fresh) and refer_fresh["reason"] is None
    assert refer_stale["decision"] == serve.refer_decision == "review"
    assert refer_stale["reason"] == (
        "incomplete features (stale customer_activity): referred (serve.incomplete_policy: refer)"
    )
    # `score` is the behaviour before the policy: the threshold decides on what is there.
    assert score_stale["decision"] == by_threshold(score_stale) and score_stale["reason"] is None
    assert score_stale["probability"] == refer_stale["probability"]  # the score is the same
    assert score_fresh == {**refer_fresh, "request_id": score_fresh["request_id"]}
    assert all_stale.status_code == 200, all_stale.text
    body = all_stale.json()
    assert (
        body["decision"] == serve.refer_decision
        and body["feature_freshness"]["missing_views"] == []
    )
    views = sorted(body["feature_freshness"]["stale_views"])
    assert len(views) == 4 and body["reason"].startswith(
        f"incomplete features (stale {', '.join(views)})"
    )


def test_a_partly_missing_entity_is_referred(world: World, lake: Path) -> None:
    from kaizen.featurestore.online import EntityFeatures, ViewFreshness

    rt = world.runtime(lake)
    predictor = build_predictor(rt, store=world.small.store())  # not started: decide() only
    now = dt.datetime.now(dt.UTC)
    here = ViewFreshness(now, dt.timedelta(0), dt.timedelta(days=3), stale=False, found=True)
    old = ViewFreshness(now, dt.timedelta(days=9), dt.timedelta(days=3), stale=True, found=True)
    gone = ViewFreshness(None, None, dt.timedelta(days=3), stale=False, found=False)
    partial = EntityFeatures({"customer_id": 7}, {}, {"a": here, "c": gone, "b": gone, "d": old})
    whole = EntityFeatures({"customer_id": 7}, {}, {"a": here})
    assert predictor.decide(0.01, partial) == (
        "review",
        "incomplete features (missing b, c; stale d): referred (serve.incomplete_policy: refer)",
    )
    assert predictor.decide(0.01, whole) == ("approve", None)
    assert predictor.decide(0.99, whole) == ("review", None)
    scoring = build_predictor(
        world.runtime(lake, incomplete_policy="score"), store=world.small.store()
    )
    assert scoring.decide(0.01, partial) == ("approve", None)


def test_the_onnx_form_serves_the_registered_scores(world: World, lake: Path) -> None:
    from kaizen.model.versions import load

    rt = world.runtime(lake, model_format="onnx")
    world.aliases(rt, world.versions[0])
    ids, amounts = [5, 17, 33, STALE_ID], [500.0, 80.5, 2500.0, 500.0]
    requests = [
        {"customer_id": i, "requested_amount": a} for i, a in zip(ids, amounts, strict=True)
    ]
    with client_for(world, rt) as api:
        batch = api.post(BATCH, headers=AUTH, json={"requests": requests})
        meta = api.get(METADATA, headers=AUTH).json()
    assert batch.status_code == 200, batch.text
    assert meta["champion"]["form"] == "onnx"
    expected = load(rt, world.versions[0]).score(
        typed(online_rows(world.small.store(), ids, amounts))
    )
    served = [r["probability"] for r in batch.json()["results"]]
    # Within the tolerance registration checked, and not the same computation.
    assert served == pytest.approx(expected.tolist(), abs=rt.params.register_.onnx.parity_atol)
    assert served != expected.tolist()


def test_path_traversal_with_the_token_reads_no_file(api: TestClient) -> None:
    paths = [
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/docs/..%2F..%2F..%2Fetc%2Fpasswd",
        "//etc/passwd",
    ]
    answers = {p: api.get(p, headers=AUTH) for p in paths}
    assert {p: r.status_code for p, r in answers.items() if not 400 <= r.status_code < 500} == {}
    assert not any("root:" in r.text for r in answers.values())


def test_canary_routing_is_stable_and_close_to_the_share() -> None:
    ids = range(1, 20_001)
    buckets = [canary_bucket(i, "salt-a") for i in ids]
    share = sum(b < 0.1 for b in buckets) / len(buckets)
    assert 0.09 < share < 0.11
    assert buckets == [canary_bucket(i, "salt-a") for i in ids]  # deterministic
    assert buckets[:50] != [canary_bucket(i, "salt-b") for i in range(1, 51)]  # salted
    # ... and independent of the process (no hash randomization).
    script = "from kaizen.serving.routing import canary_bucket;print([canary_bucket(i,'salt-a') for i in range(1,51)])"
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(out.stdout) == buckets[:50]
    assert route(7, "canary", 0.1, "s", has_challenger=False).served == "champion"
    assert route(7, "shadow", 0.1, "s", has_challenger=True).shadow


def test_canary_sends_a_stable_share_of_customers_to_the_challenger(
    world: World, lake: Path
) -> None:
    rt = world.runtime(lake, production={"mode": "canary", "canary_share": 0.3})
    world.aliases(rt, world.versions[0], world.versions[1])
    salt = rt.params.serve.canary_salt
    ids = list(range(1, 201))
    with client_for(world, rt) as api:
        body = {"requests": [{"customer_id": i, "requested_amount": 100.0} for i in ids]}
        first = api.post(BATCH, headers=AUTH, json=body).json()["results"]
        again = api.post(BATCH, headers=AUTH, json=body).json()["results"]
    assert [r["alias"] for r in first] == [r["alias"] for r in again]
    for i, r in zip(ids, first, strict=True):
        to_challenger = canary_bucket(i, salt) < 0.3
        assert r["alias"] == ("challenger" if to_challenger else "champion")
        assert r["model_version"] == world.versions[1 if to_challenger else 0]
    share = sum(r["alias"] == "challenger" for r in first) / len(first)
    assert 0.2 < share < 0.4
    logged = read_predictions(rt)
    assert set(logged["role"]) == {"served"} and len(logged) == 400  # no shadow rows in canary


def test_shadow_logs_two_rows_per_request_and_they_read_back(world: World, lake: Path) -> None:
    rt = world.runtime(lake, production={"mode": "shadow"})
    world.aliases(rt, world.versions[0], world.versions[1])
    with client_for(world, rt) as api:
        answer = api.post(
            PREDICT,
            headers=AUTH,
            json={
                "customer_id": 5,
                "requested_amount": 700.0,
                "invoice_id": "inv-1",
                "request_id": "req-1",
            },
        ).json()
        api.post(PREDICT, headers=AUTH, json={"customer_id": STALE_ID, "requested_amount": 9.5})
    # Leaving the client shuts the app down: the log is flushed.
    assert answer["alias"] == "champion" and answer["request_id"] == "req-1"
    files = sorted((lake / "predictions").rglob("*"))
    parts = [f for f in files if f.is_file()]
    assert parts and all(f.name.startswith("part-") and f.suffix == ".parquet" for f in parts)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert {f.parent.name for f in parts} == {f"ds={today}"}
    logged = read_predictions(rt, start_ds=today, end_ds=today)
    assert list(logged.columns) == log_columns(rt.project) and len(logged) == 4
    assert list(logged.columns)[:5] == [
        "request_id", "ts", "customer_id", "invoice_id", "requested_amount"
    ]  # fmt: skip
    assert logged["requested_amount"].dtype == "float64"
    one = logged[logged["request_id"] == "req-1"].set_index("role")
    assert sorted(one.index) == ["served", "shadow"]
    assert one.loc["served", "probability"] == pytest.approx(answer["probability"])
    assert one.loc["served", "model_version"] == world.versions[0]
    assert (one.loc["shadow", "alias"], one.loc["shadow", "model_version"]) == (
        "challenger",
        world.versions[1],
    )
    assert one.loc["shadow", "probability"] != one.loc["served", "probability"]
    assert one.loc["served", "invoice_id"] == "inv-1" and one.loc["served", "fresh"]
    features = json.loads(one.loc["served", "features"])
    assert features["requested_amount"] == 700.0 and "late_ratio_180d" in features
    assert (
        str(logged["ts"].dtype) == "datetime64[us, UTC]" and logged["customer_id"].dtype == "int64"
    )
    assert logged["error"].isna().all() and (logged["latency_ms"] > 0).all()
    assert not logged[logged["customer_id"] == STALE_ID]["fresh"].any()
    assert read_predictions(rt, start_ds="2000-01-01", end_ds="2000-01-02").empty
    with pytest.raises(Exception, match="not a date"):
        read_predictions(rt, start_ds="yesterday")


def test_a_full_log_queue_drops_rows_and_never_fails_a_request(world: World, lake: Path) -> None:
    rt = world.runtime(lake, log_queue_max=2, log_flush_rows=1, log_flush_seconds=60)
    world.aliases(rt, world.versions[0])
    release = threading.Event()

    def stuck_writer(_lake: Any, rows: list[dict[str, Any]]) -> list[str]:
        release.wait(30)  # a lake that hangs
        return []

    with client_for(world, rt, writer=stuck_writer) as api:
        for i in range(1, 21):
            response = api.post(
                PREDICT, headers=AUTH, json={"customer_id": i, "requested_amount": 10.0}
            )
            assert response.status_code == 200
        metrics = api.get("/metrics", headers=AUTH).text
        release.set()
    dropped = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith(f'kaizen_prediction_log_dropped_total{{project="{PROJECT}"}} ')
    )
    assert dropped >= 15


@pytest.mark.parametrize("online_read", ["kaizen", "feast"])
def test_no_champion_and_a_broken_store_are_clear_503s(
    world: World, lake: Path, online_read: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = world.runtime(lake, online_read=online_read)
    world.aliases(rt, None)
    with client_for(world, rt) as api:
        health = api.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == f"no champion loaded for {PROJECT}"
        assert api.get(f"/{PROJECT}/health").status_code == 503
        response = api.post(PREDICT, headers=AUTH, json={"customer_id": 5, "requested_amount": 1.0})
        assert (
            response.status_code == 503
            and "no model is loaded under the alias 'champion'" in response.json()["detail"]
        )

    from kaizen.featurestore.online_stores import MonotonicSqliteOnlineStore

    def unreachable(*_args: Any) -> Any:
        raise ConnectionError("online store unreachable")

    # Both read paths open the store's connection: Feast's SDK and Kaizen's direct read.
    monkeypatch.setattr(MonotonicSqliteOnlineStore, "_get_conn", unreachable)
    world.aliases(rt, world.versions[0])
    predictor = build_predictor(rt, store=world.small.store())
    predictor.refresher.refresh()
    with TestClient(build_app(predictor, TOKEN)) as api:
        response = api.post(PREDICT, headers=AUTH, json={"customer_id": 5, "requested_amount": 1.0})
        assert response.status_code == 503
        assert response.json()["detail"].startswith("online features unavailable")
        assert "unreachable" not in response.text  # the cause is the server log's, not the client's
    logged = read_predictions(rt)
    assert len(logged) == 1 and logged["probability"].isna().all()
    assert "unreachable" in logged["error"].iloc[0]


def test_metadata_and_metrics(world: World, lake: Path) -> None:
    rt = world.runtime(lake, production={"mode": "shadow"})
    world.aliases(rt, world.versions[0], world.versions[1])
    with client_for(world, rt) as api:
        api.post(PREDICT, headers=AUTH, json={"customer_id": 5, "requested_amount": 1.0})
        api.post(PREDICT, headers=AUTH, json={"customer_id": 5})
        meta = api.get(METADATA, headers=AUTH).json()
        text = api.get("/metrics", headers=AUTH).text
    assert meta["champion"]["version"] == world.versions[0]
    assert meta["challenger"]["version"] == world.versions[1]
    assert meta["champion"]["feature_service"] == SERVICE
    assert meta["champion"]["manifest"]["feature_service"] == SERVICE
    assert meta["routing"] == {"mode": "shadow", "canary_share": 0.1, "active": True}
    assert "kaizen_prediction_latency_seconds_bucket" in text
    assert meta["project"] == PROJECT and meta["model_name"] == MODEL
    assert meta["request"] == {
        "join_keys": ["customer_id"],
        "fields": ["requested_amount"],
        "row_id": "invoice_id",
    }
    v1, v2 = world.versions
    assert 'kaizen_predictions_total{alias="champion",decision=' in text
    labels = f'project="{PROJECT}"'
    assert (
        f'model_version="{v1}",{labels},role="served"' in text
        and f'model_version="{v2}",{labels},role="shadow"' in text
    )
    assert f'kaizen_prediction_errors_total{{{labels},reason="invalid_request"}} 1.0' in text
    samples = [line for line in text.splitlines() if line.startswith("kaizen")]
    assert samples and all(labels in line for line in samples)  # every family, by project


def test_the_explainer_warm_up_is_a_gauge_a_scraper_and_the_bench_can_wait_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The warm-up shares the GIL with requests; the gauge says when it is over (or failed)."""
    from kaizen.model import explain
    from kaizen.serving.app import _warm_explainer
    from kaizen.serving.metrics import ServingMetrics

    def gauge(m: ServingMetrics) -> str:
        return next(
            line
            for line in m.render().decode().splitlines()
            if line.startswith(f'kaizen_explainer_warm{{project="{PROJECT}"}} ')
        ).split()[-1]

    calls: list[int] = []
    monkeypatch.setattr(explain, "warm_up", lambda: calls.append(1))
    metrics = ServingMetrics()
    metrics.for_project(PROJECT)
    assert gauge(metrics) == "0.0"  # not warm before it ran
    _warm_explainer(metrics)
    assert calls == [1] and gauge(metrics) == "1.0"

    def broken() -> None:
        raise ImportError("no shap here")

    monkeypatch.setattr(explain, "warm_up", broken)
    failed = ServingMetrics()
    failed.for_project(PROJECT)
    _warm_explainer(failed)  # logged, never raised: /explain compiles on first use instead
    assert gauge(failed) == "-1.0"


def test_serve_params_and_the_platform_component(tmp_path: Path) -> None:
    from kaizen.ops.components import components
    from kaizen.ops.health import _judge
    from kaizen.params import ServeParams

    with pytest.raises(ValueError, match="log_flush_rows"):
        ServeParams.model_validate(
            {
                "decision_threshold": 0.2,
                "decisions": ["approve", "review"],
                "freshness_policy": "refuse",
                "incomplete_policy": "refer",
                "refer_decision": "review",
                "alias_refresh_seconds": 5,
                "canary_salt": "s",
                "batch_max_rows": 10,
                "log_queue_max": 10,
                "log_flush_rows": 11,
                "log_flush_seconds": 1,
                "online_timeout_seconds": 1.0,
                "model_format": "sklearn",
                "online_read": "kaizen",
            }
        )
    (api,) = [
        c for c in components(Settings(_env_file=None, home=tmp_path)) if c.name == "prediction-api"
    ]
    assert api.argv[1:] == ["serve"] and api.port == 6570
    assert api.health_url == "http://127.0.0.1:6570/health"
    assert _judge(api, 503, {"status": "no champion loaded"}, "")[0] is True
    assert _judge(api, 500, {}, "")[0] is False


def test_without_a_token_kaizen_serve_refuses_to_start(tmp_path: Path) -> None:
    from kaizen.serving.server import require_token

    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")}
    port = free_port()
    env.update({"KAIZEN_HOME": str(tmp_path), "KAIZEN_PREDICTION_API_PORT": str(port)})
    result = subprocess.run(
        [KAIZEN, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "KAIZEN_PREDICTION_API_TOKEN" in result.stderr
    with pytest.raises(ConfigError, match="too short"):
        require_token(Settings(_env_file=None, home=tmp_path, prediction_api_token="short"))


# -- an alias flip under concurrent traffic, on a real uvicorn server ---------------------------


def test_flipping_the_champion_under_traffic_fails_no_request(
    world: World, lake: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import uvicorn

    from kaizen.model.registry import client

    rt = world.runtime(lake, alias_refresh_seconds=0.2)
    world.aliases(rt, world.versions[0])
    v1, v2 = world.versions
    predictor = build_predictor(rt, store=world.small.store())
    predictor.refresher.refresh()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(predictor, TOKEN),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    flipped = threading.Event()
    stop = threading.Event()
    seen: list[tuple[float, str]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def traffic(worker: int) -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=30, trust_env=False) as http:
            n = 0
            while not stop.is_set():
                n += 1
                body = {"customer_id": 1 + (worker * 37 + n) % 200, "requested_amount": 250.0}
                try:
                    response = http.post(PREDICT, json=body)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))
                    continue
                with lock:
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text}")
                    else:
                        seen.append((time.monotonic(), response.json()["model_version"]))

    caplog.set_level(logging.INFO, logger="kaizen.serving.app")
    workers = [threading.Thread(target=traffic, args=(w,)) for w in range(8)]
    try:
        for w in workers:
            w.start()
        time.sleep(1.5)
        client(rt).set_registered_model_alias(MODEL, "champion", v2)
        moved_at = time.monotonic()
        flipped.set()
        deadline = time.monotonic() + 45
        while predictor.deployment.versions()["champion"] != v2:
            assert time.monotonic() < deadline, "the champion was never swapped"
            time.sleep(0.05)
        swapped_at = time.monotonic()
        time.sleep(1.5)
    finally:
        stop.set()
        for w in workers:
            w.join(60)
        server.should_exit = True
        thread.join(30)
    assert not failures, failures[:5]
    before = [v for t, v in seen if t < moved_at]
    after = [v for t, v in seen if t > swapped_at + 0.5]
    assert before and set(before) == {v1}
    assert after and set(after) == {v2}
    assert {v for _, v in seen} == {v1, v2}
    assert len(seen) > 100
    assert f"alias champion moved: version {v1} -> {v2}" in caplog.text
    logged = read_predictions(rt)
    assert len(logged) == len(seen) and logged["error"].isna().all()
    print(
        f"\n{len(seen)} requests by 8 threads, 0 failed; swap {swapped_at - moved_at:.2f}s after the move"
    )


def test_past_its_in_flight_limit_the_api_sheds_at_once_and_never_its_health(
    world: World, lake: Path
) -> None:
    """32 concurrent clients against 4 slots, on a store read that serves one at a time."""
    from overload import drive, judge, one_at_a_time, serving

    import kaizen.serving.predictor as predictor_module

    rt = world.runtime(lake, model_format="onnx")  # the lighter form: the box is shared
    world.aliases(rt, world.versions[0])
    predictor = build_predictor(rt, store=world.small.store())
    predictor.refresher.refresh()
    limit, body = 4, {"customer_id": 5, "requested_amount": 250.0}
    app = build_app(predictor, TOKEN, max_in_flight=limit)
    with one_at_a_time(predictor_module, "read_features", 0.03), serving(app) as url:
        health = ("/health", f"/{PROJECT}/health")
        single, answers = drive(url, PREDICT, body, AUTH, clients=32, health=health)
    measured = judge(answers, PREDICT, limit, single)
    shed = next(a for a in answers if a.status == 503)
    assert app.shed == measured["shed"] and shed.path == PREDICT
    print("\nprediction API shedding:", {k: round(v, 1) for k, v in measured.items()})


def test_explain_gives_the_drivers_of_the_prediction_that_would_be_served(
    world: World, lake: Path
) -> None:
    rt = world.runtime(lake, production={"mode": "canary", "canary_share": 0.3})
    world.aliases(rt, world.versions[0], world.versions[1])
    salt = rt.params.serve.canary_salt
    champion_id = next(i for i in range(1, 201) if canary_bucket(i, salt) >= 0.3)
    challenger_id = next(i for i in range(1, 201) if canary_bucket(i, salt) < 0.3)
    with client_for(world, rt) as api:
        body = {"customer_id": champion_id, "requested_amount": 700.0}
        assert api.post(EXPLAIN, json=body).status_code == 401
        served = {champion_id: world.versions[0], challenger_id: world.versions[1]}
        served[STALE_ID] = world.versions[1 if canary_bucket(STALE_ID, salt) < 0.3 else 0]
        for customer in (champion_id, challenger_id, STALE_ID):  # the last one is referred
            body = {"customer_id": customer, "requested_amount": 700.0}
            predicted = api.post(PREDICT, headers=AUTH, json=body).json()
            started = time.perf_counter()
            response = api.post(EXPLAIN, headers=AUTH, json={**body, "top_k": 100})
            print(f"{EXPLAIN} {1000 * (time.perf_counter() - started):.0f} ms")
            assert response.status_code == 200, response.text
            out = response.json()
            assert out["model_version"] == predicted["model_version"]
            assert out["model_version"] == served[customer]
            assert out["alias"] == predicted["alias"] and out["decision"] == predicted["decision"]
            assert out["reason"] == predicted["reason"]
            assert out["probability"] == pytest.approx(predicted["probability"], abs=1e-12)
            contributions = [c["contribution"] for c in out["contributions"]]
            assert out["base_value"] + sum(contributions) == pytest.approx(
                out["probability"],
                abs=len(contributions) * 1e-6,  # each rounded to 1e-6
            )
            assert [abs(c) for c in contributions] == sorted(map(abs, contributions))[::-1]
        assert out["reason"] and "stale customer_activity" in out["reason"]
        unknown = api.post(EXPLAIN, headers=AUTH, json={**body, "customer_id": MISSING_ID})
        assert unknown.status_code == 404 and f"customer_id={MISSING_ID}" in unknown.text
        top = api.post(EXPLAIN, headers=AUTH, json={**body, "top_k": 3}).json()
        assert top["contributions"] == out["contributions"][:3]
        default = api.post(EXPLAIN, headers=AUTH, json=body).json()
        assert len(default["contributions"]) == rt.params.explain.api_top_k
        bad = api.post(EXPLAIN, headers=AUTH, json={**body, "top_k": 0})
        assert bad.status_code == 422 and bad.json()["detail"].startswith("top_k:")


# -- faults: the online store goes away --------------------------------------------------


def _start_redis(port: int, data: Path) -> Any:
    import shutil
    import subprocess
    import time

    from support import service_unavailable, tcp_open

    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        service_unavailable("Redis", "no redis-server binary to start a private one")
    data.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not tcp_open("127.0.0.1", port, 0.2):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"private redis-server did not start on {port}")
        time.sleep(0.1)
    return proc


@pytest.mark.faults
@pytest.mark.services
def test_redis_down_answers_503_within_the_timeout_and_recovers(
    world: World, lake: Path, tmp_path: Path
) -> None:
    """A private Redis (the shared one is never stopped): killed, the API answers 503 naming
    the online store within `serve.online_timeout_seconds`; restarted, it answers again."""
    import signal
    import time

    from kaizen.featurestore.store import apply, open_store
    from kaizen.lake import PUBLISHED
    from kaizen.stages.materialize import materialize

    port = free_port()
    redis_proc = _start_redis(port, tmp_path / "redis")
    try:
        rt = world.runtime(lake, online_timeout_seconds=0.5)
        settings = rt.settings.model_copy(
            update={
                "feast_online_store": "redis",
                "redis_connection": f"127.0.0.1:{port}",
                "feast_data_dir": tmp_path / "feast",
                "lake_root": world.small.settings.lake_root,
            }
        )
        redis_rt = Runtime(settings)
        redis_rt.__dict__["params"] = rt.params
        apply(settings)
        days = sorted(redis_rt.lake.partitions(PUBLISHED, "customer_profile"))
        end = (dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1)).isoformat()
        materialize(days[0], end, redis_rt)
        assert open_store(settings).list_feature_views()
        world.aliases(rt, world.versions[0])
        predictor = build_predictor(redis_rt)
        predictor.refresher.refresh()
        body = {"customer_id": 5, "requested_amount": 100.0}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with TestClient(build_app(predictor, TOKEN)) as client:
            before = client.post(PREDICT, json=body, headers=auth)
            assert before.status_code == 200, before.text

            redis_proc.send_signal(signal.SIGKILL)
            redis_proc.wait()
            started = time.monotonic()
            down = client.post(PREDICT, json=body, headers=auth)
            took = time.monotonic() - started
            assert down.status_code == 503, down.text
            assert "online features unavailable" in down.json()["detail"]
            assert "127.0.0.1" not in down.text and str(port) not in down.text  # no internal host
            assert took < 5 * 0.5, f"503 took {took:.2f}s"  # connect refused or timed out

            redis_proc = _start_redis(port, tmp_path / "redis")  # the same data (AOF)
            again = None
            for _ in range(20):  # the client reconnects on its next call
                again = client.post(PREDICT, json=body, headers=auth)
                if again.status_code == 200:
                    break
                time.sleep(0.2)
            assert again is not None and again.status_code == 200, again.text
            assert again.json()["probability"] == pytest.approx(before.json()["probability"])
    finally:
        redis_proc.kill()
        redis_proc.wait()


# -- several projects in one process, the request model, a replayed day ------------------------


def copy_project(dest_root: Path, name: str) -> Path:
    """projects/credit_risk under another name (kaizen.yaml, its model, its Feast project)."""
    import re
    import shutil

    folder = dest_root / name
    ignore = shutil.ignore_patterns("data", "__pycache__", ".airflow", "uncommitted")
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "projects" / PROJECT, folder, ignore=ignore
    )
    declaration = folder / "kaizen.yaml"
    text = re.sub(r"(?m)^name: credit_risk$", f"name: {name}", declaration.read_text())
    text = re.sub(r"(?m)^(  (?:name|experiment)): credit_risk$", rf"\1: {name}", text)
    declaration.write_text(text)
    repo = folder / "feature_repo" / "feature_store.yaml"
    repo.write_text(re.sub(r"(?m)^project: .*$", f"project: {name}", repo.read_text()))
    return folder


def test_the_request_model_is_the_projects_and_must_match_its_feature_service(
    world: World,
) -> None:
    from types import SimpleNamespace

    from kaizen.serving.schemas import request_model

    rt = world.runtime(world.home / "lake")
    models = request_model(rt.project, rt.schema.service(SERVICE), ["customer_id"])
    assert models is request_model(rt.project, rt.schema.service(SERVICE), ["customer_id"])
    assert sorted(models.predict.model_fields) == [
        "customer_id", "invoice_id", "request_id", "requested_amount"
    ]  # fmt: skip
    for bad in ({"customer_id": 2**63, "requested_amount": 1.0}, {"customer_id": 1,
                "requested_amount": float("nan")}):  # fmt: skip
        with pytest.raises(ValueError):
            models.predict(**bad)
    undeclared = SimpleNamespace(
        name="svc", request_fields={"requested_amount": "float64", "x": "float64"}
    )
    with pytest.raises(
        ConfigError, match=r"kaizen.yaml: request.fields: .*needs the request fields \['x'\]"
    ):
        request_model(rt.project, undeclared)
    unused = SimpleNamespace(name="svc", request_fields={})
    with pytest.raises(
        ConfigError, match=r"request.fields: \['requested_amount'\] are declared but"
    ):
        request_model(rt.project, unused)
    with pytest.raises(ConfigError, match=r"entity.join_keys: .*'store_id'"):
        request_model(rt.project, rt.schema.service(SERVICE), ["customer_id", "store_id"])


def test_one_process_serves_two_projects_each_with_its_own_model(
    world: World, tmp_path: Path
) -> None:
    from kaizen.model.versions import load

    other = "credit_risk_b"
    folder = copy_project(tmp_path / "projects", other)
    first = world.runtime(tmp_path / "lake_a")
    settings = world.small.settings.model_copy(update={"runtime_dir": world.home / "runtime"})
    given = {k: getattr(settings, k) for k in ("home", "feast_data_dir", "gx_uncommitted_dir")}
    second = Runtime(
        Settings(
            _env_file=None,
            **given,
            project=str(folder),
            runtime_dir=world.home / "runtime",
            raw_root=str(tmp_path / "raw_b"),
            lake_root=str(tmp_path / "lake_b"),
        )
    )
    assert (second.project.name, second.model_name) == (other, other)
    number = register_version(second, world.frame, 11, model_name=other)
    world.aliases(first, world.versions[0])
    world.aliases(second, None)
    store = world.small.store()
    predictors = [build_predictor(rt, store=store) for rt in (first, second)]
    for predictor in predictors:
        predictor.refresher.refresh()
    body = {"customer_id": 17, "requested_amount": 640.0}
    with TestClient(build_app(predictors, TOKEN)) as api:
        health = api.get("/health")
        assert health.status_code == 503, health.text
        assert health.json() == {
            "status": f"no champion loaded for {other}",
            "projects": {PROJECT: "ok", other: "no champion loaded"},
        }
        assert api.get(f"/{other}/health").status_code == 503
        assert api.post(f"/{other}/predict", headers=AUTH, json=body).status_code == 503
        world.aliases(second, number)
        predictors[1].refresher.refresh()  # the refresher thread's job, without the wait
        assert api.get("/health").json() == {
            "status": "ok",
            "projects": {PROJECT: "ok", other: "ok"},
        }
        answers = {}
        for name in (PROJECT, other):
            response = api.post(f"/{name}/predict", headers=AUTH, json=body)
            assert response.status_code == 200, response.text
            answers[name] = response.json()
            meta = api.get(f"/{name}/metadata", headers=AUTH).json()
            assert meta["project"] == name and meta["model_name"] == name
        unknown = api.post("/nope/predict", headers=AUTH, json=body)
        assert unknown.status_code == 404
        assert (
            unknown.json()["detail"]
            == f"no project 'nope' is served here (serving {PROJECT}, {other})"
        )
        assert api.post("/nope/predict", json=body).status_code == 401
        assert api.get(f"/{PROJECT}/predict", headers=AUTH).status_code == 405
        text = api.get("/metrics", headers=AUTH).text
    features = typed(online_rows(store, [17], [640.0]))
    expected = {
        PROJECT: load(first, world.versions[0]).score(features)[0],
        other: load(second, number).score(features)[0],
    }
    for name, answer in answers.items():
        assert answer["probability"] == pytest.approx(expected[name], abs=1e-12), name
    assert expected[PROJECT] != pytest.approx(expected[other], abs=1e-9)
    for name in (PROJECT, other):
        assert (
            f'kaizen_predictions_total{{alias="champion",decision="{answers[name]["decision"]}",'
            in text
        )
        assert f'project="{name}",role="served"}} 1.0' in text
        logged = read_predictions(first if name == PROJECT else second)
        assert len(logged) == 1 and logged["request_id"].iloc[0] == answers[name]["request_id"]
    with pytest.raises(ConfigError, match="would write one prediction log"):
        build_app(
            [predictors[0], build_predictor(second_sharing(second, first), store=store)], TOKEN
        )


def second_sharing(rt: Runtime, other: Runtime) -> Runtime:
    """`rt` with `other`'s lake root: the two projects' logs would collide."""
    shared = Runtime(rt.settings.model_copy(update={"lake_root": other.settings.lake_root}))
    shared.__dict__["params"] = rt.params
    return shared


def test_kaizen_traffic_replays_a_days_requests_under_their_row_ids(world: World) -> None:
    from kaizen.sampler import sample
    from kaizen.serving.traffic import replay_day

    rt = world.runtime(world.small.root / "lake")  # the store's lake: its silver sources
    world.aliases(rt, world.versions[0])
    written: list[dict[str, Any]] = []
    predictor = build_predictor(
        rt, store=world.small.store(), writer=lambda _lake, rows: written.extend(rows) or []
    )
    predictor.refresher.refresh()
    ds = (world.small.midnight - dt.timedelta(days=1)).date().isoformat()
    end = world.small.midnight.date().isoformat()
    requests = sample(rt, ds, end)
    assert len(requests) > 0
    report = replay_day(rt, ds, predictor=predictor)
    assert report.requests == len(requests) and report.failed == 0
    assert report.served == {world.versions[0]: len(requests)}
    assert len(written) == len(requests) == report.flushed
    assert sorted(r["invoice_id"] for r in written) == sorted(requests["invoice_id"].astype(str))
    assert all(r["request_id"] == r["invoice_id"] for r in written)
    by_id = requests.set_index(requests["invoice_id"].astype(str))
    for row in written:
        assert row["customer_id"] == by_id.loc[row["invoice_id"], "customer_id"]
        assert row["requested_amount"] == pytest.approx(
            by_id.loc[row["invoice_id"], "requested_amount"]
        )
