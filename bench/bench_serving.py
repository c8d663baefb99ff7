"""Row 6: the prediction API over loopback against its own parts measured in process.

* `/predict` p50 and p99 (bearer token, JSON, uvicorn, one online read, one predict_proba,
  the prediction log hand-off) from `kaizen serve` in a child process, one request at a time
  on a keep-alive connection, once its explainer warm-up is over (`kaizen_explainer_warm`);
* the baseline, in this process, in the same run and interleaved request by request: the p99
  of `read_features` (the same feature service, policy, store and `serve.online_read`) plus
  the p99 of the loaded model's one-row predict on those features. Goal: the API within
  1.3x of that sum;
* throughput (requests/s) with 1 and 2 uvicorn workers, 8 client threads in this process
  (the clients share the machine's cores with the server: a floor, not a ceiling);
* both registered forms of the model (`serve.model_format`): scikit-learn (row 6) and ONNX
  Runtime (row 6-onnx, and 6f: what ONNX saves per request against scikit-learn).

The store is SQLite with synthetic features of `customers` (Feast's own repo, a workspace
copy); the model is the production pipeline trained on them and registered in a private
MLflow store as `champion`. Features are a past day's, so the freshness policy is `mark`
on both sides (a `refuse` would null every value and predict on nothing).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from credit_risk.features.schema import VIEWS

from bench.bench_feast_common import (
    REPO,
    ThroughputRow,
    apply_repo,
    cleanup,
    load_average,
    percentile,
    workspace,
    write_days,
)
from bench.bench_feast_materialize import DAY, _materialize
from bench.common import PROJECT, PROJECT_NAME, Row, child_env

SERVICE = "credit_risk_v1"
MODEL = "credit_risk"
PREDICT = f"/{PROJECT_NAME}/predict"  # each served project has its own routes
TOKEN = "bench-token-" + "b" * 24
CLIENT_THREADS = 8


def _typed(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        values = frame[column]
        if any(isinstance(v, str) for v in values):
            frame[column] = values.map(lambda v: np.nan if v is None else v).astype(object)
        else:
            frame[column] = pd.to_numeric(values, errors="coerce").astype("float64").fillna(0.0)
    return frame


def _register(rt: Any, store: Any, customers: int) -> str:
    import mlflow
    import skops.io
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from kaizen.featurestore.online import read_features
    from kaizen.model import tracking
    from kaizen.model.data import model_inputs
    from kaizen.model.pipeline import build
    from kaizen.model.serialization import audited_trusted_types
    from kaizen.stages.register import ONNX_DIR, ONNX_TAG, onnx_form, pip_requirements

    rng = np.random.default_rng(5)
    rows = [
        {"customer_id": int(c), "requested_amount": float(a)}
        for c, a in zip(
            rng.integers(1, customers + 1, 3000), rng.uniform(50, 5000, 3000).round(2), strict=True
        )
    ]
    now = dt.datetime.now(dt.UTC)
    entities = read_features(store, SERVICE, rows, now, "mark").entities
    frame = _typed(
        [{**e.values, "requested_amount": e.request["requested_amount"]} for e in entities]
    )
    risk = frame["late_ratio_180d"] * 3 + frame["requested_to_credit_limit"]
    label = (risk + rng.normal(0, 0.5, len(frame)) > np.quantile(risk, 0.9)).astype(int)
    inputs = model_inputs(frame, rt.project.key_columns)
    model = build(inputs, rt.params.train).fit(frame[inputs.all], label)  # production params
    example = frame[inputs.all].head(5)
    onnx = onnx_form(model, inputs, frame, rt.params.register_.onnx)
    tracking.configure(rt.settings, "bench-serving")
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        logged = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict_proba(example)[:, 1]),
            input_example=example,
            serialization_format="skops",
            skops_trusted_types=audited_trusted_types(skops.io.dumps(model)),
            pip_requirements=pip_requirements(),
            registered_model_name=MODEL,
        )
        (Path(tmp) / "model.onnx").write_bytes(onnx.serialized)
        mlflow.log_artifact(str(Path(tmp) / "model.onnx"), ONNX_DIR)
    number = str(logged.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(MODEL, number, "kaizen.feature_service", SERVICE)
    client.set_model_version_tag(MODEL, number, ONNX_TAG, f"{ONNX_DIR}/model.onnx")
    client.set_registered_model_alias(MODEL, "champion", number)
    return number


class Api:
    """`kaizen serve` in a child process on a free loopback port."""

    def __init__(self, env: dict[str, str], workers: int, log: Path, cpus: set[int] | None = None):
        from kaizen.seaweed import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**env, "KAIZEN_PREDICTION_API_PORT": str(self.port)}
        kaizen = str(Path(sys.executable).with_name("kaizen"))
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [kaizen, "serve", "--workers", str(workers)],
                env=env,
                cwd=env["KAIZEN_HOME"],
                stdout=out,
                stderr=subprocess.STDOUT,
                # uvicorn's workers inherit the server's core, set before it starts
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )

    def __enter__(self) -> Api:
        import httpx

        deadline = time.monotonic() + 120
        with httpx.Client(timeout=2, trust_env=False) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"kaizen serve exited:\n{self.log.read_text()[-2000:]}")
                try:
                    if client.get(f"{self.url}/health").status_code == 200 and self._warm(client):
                        return self
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no health:\n{self.log.read_text()[-2000:]}")
                time.sleep(0.2)

    def _warm(self, client: Any) -> bool:
        """Whether the explainer's background compile is over: it holds the GIL often enough
        to double the p99 of requests served meanwhile, and the rows measure steady state."""
        metrics = client.get(f"{self.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        for line in metrics.text.splitlines():
            if line.startswith("kaizen_explainer_warm") and not line.startswith("#"):
                return float(line.split()[1]) != 0
        raise RuntimeError("the API exposes no kaizen_explainer_warm gauge")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def split_cores() -> tuple[set[int] | None, set[int] | None]:
    """(server cores, load-generator cores): apart when there are two, so neither steals
    the other's CPU mid-request; (None, None) on one core."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return {allowed[0]}, set(allowed[1:])


@contextlib.contextmanager
def pinned(cpus: set[int] | None) -> Iterator[None]:
    allowed = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def _throughput(url: str, customers: int, seconds: float) -> float:
    import httpx

    counts = [0] * CLIENT_THREADS
    errors = [0] * CLIENT_THREADS
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        rng = random.Random(k)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30, trust_env=False) as http:
            while time.monotonic() < stop:
                body = {"customer_id": rng.randint(1, customers), "requested_amount": 250.0}
                if http.post(PREDICT, json=body).status_code == 200:
                    counts[k] += 1
                else:
                    errors[k] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENT_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sum(errors):
        raise RuntimeError(f"{sum(errors)} requests failed during the throughput run")
    return sum(counts) / (time.monotonic() - started)


def _latency(
    api: Api,
    served: Any,
    store: Any,
    policy: str,
    online_read: str,
    customers: int,
    requests: int,
    warmup: int,
) -> dict[str, Any]:
    """API, read and predict times (ms) of `requests` sequential requests, interleaved.

    The client is the standard library's keep-alive HTTPConnection: the row is the API's
    cost, and httpx's own per-request work (~0.26 ms p50 / 0.5 ms p99 more against a raw
    socket responder on this machine) would be counted as the API's."""
    import http.client
    import json

    from kaizen.featurestore.online import read_features

    rng = random.Random(11)
    api_ms: list[float] = []
    read_ms: list[float] = []
    predict_ms: list[float] = []
    clock = time.perf_counter
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    try:
        load_before = load_average()
        for i in range(warmup + requests):
            body = {
                "customer_id": rng.randint(1, customers),
                "requested_amount": round(rng.uniform(50, 5000), 2),
            }
            row = {
                "customer_id": rng.randint(1, customers),
                "requested_amount": body["requested_amount"],
            }
            t0 = clock()
            conn.request("POST", PREDICT, body=json.dumps(body), headers=headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            t1 = clock()
            assert response.status == 200, answer
            (entity,) = read_features(
                store, SERVICE, [row], dt.datetime.now(dt.UTC), policy, online_read
            ).entities
            t2 = clock()
            served.score(served.frame(served.input_rows([{**entity.values, **row}])))
            t3 = clock()
            if i >= warmup:
                api_ms.append((t1 - t0) * 1e3)
                read_ms.append((t2 - t1) * 1e3)
                predict_ms.append((t3 - t2) * 1e3)
        load_after = load_average()
    finally:
        conn.close()
    return {
        "api": api_ms,
        "read": read_ms,
        "predict": predict_ms,
        "load": f"{load_before} -> {load_after}",
    }


def _latency_row(form: str, t: dict[str, Any], requests: int, cpus: tuple[Any, Any]) -> Row:
    p50, p99 = percentile(t["api"], 50), percentile(t["api"], 99)
    r50, r99 = percentile(t["read"], 50), percentile(t["read"], 99)
    m50, m99 = percentile(t["predict"], 50), percentile(t["predict"], 99)
    server_cpus, client_cpus = cpus
    return Row(
        row="6" if form == "sklearn" else f"6-{form}",
        hot_path=(
            "prediction API POST /predict p99 over loopback (token, 1 customer, credit_risk_v1, "
            f"champion, log hand-off), {form} form"
        ),
        baseline="online read p99 + in-process one-row predict p99, same store and model form",
        measured_s=p99 / 1e3,
        baseline_s=(r99 + m99) / 1e3,
        goal="<= 1.3x",
        notes=(
            f"API p50 {p50:.2f} ms, p99 {p99:.2f} ms; read p50 {r50:.2f} / p99 {r99:.2f} ms, "
            f"predict p50 {m50:.2f} / p99 {m99:.2f} ms; {requests:,} sequential requests (stdlib "
            f"http.client, keep-alive), "
            f"interleaved with the baseline; server on cores {sorted(server_cpus or [])}, client on "
            f"{sorted(client_cpus or [])}; load {t['load']}"
        ),
        extra={
            "form": form,
            "p50_ms": p50,
            "p99_ms": p99,
            "read_p99_ms": r99,
            "predict_p99_ms": m99,
            "read_p50_ms": r50,
            "predict_p50_ms": m50,
        },
    )


def run(size: dict[str, Any]) -> list[Row]:
    from kaizen.runtime import Runtime
    from kaizen.serving.deployment import load_served

    customers, requests, warmup = size["customers"], size["requests"], size["warmup"]
    ws = workspace("serving")
    try:
        write_days(ws, list(VIEWS), customers, [DAY])
        base = (
            (PROJECT / "params.yaml")
            .read_text()
            .replace("freshness_policy: refuse", "freshness_policy: mark")
        )
        forms = {}
        for form in ("sklearn", "onnx"):
            forms[form] = ws.root / f"params-{form}.yaml"
            forms[form].write_text(base.replace("model_format: sklearn", f"model_format: {form}"))
        settings = ws.settings(
            "sqlite", runtime_dir=ws.root / "runtime", params_file=forms["sklearn"]
        )
        rt = Runtime(settings)
        store = apply_repo(settings)
        _materialize(rt)
        number = _register(rt, store, customers)
        env = {k: v for k, v in child_env().items() if not k.startswith("KAIZEN_")}
        env.update(
            {
                "KAIZEN_HOME": str(REPO),
                "KAIZEN_PROJECT": PROJECT_NAME,
                "KAIZEN_SERVE_PROJECTS": f'["{PROJECT_NAME}"]',
                "KAIZEN_FEAST_REPO": str(settings.feast_repo),
                "KAIZEN_FEAST_DATA_DIR": str(settings.feast_data_dir),
                "KAIZEN_FEAST_ONLINE_STORE": "sqlite",
                "KAIZEN_FEAST_REGISTRY": "file",
                "KAIZEN_LAKE_ROOT": str(ws.lake_root),
                "KAIZEN_RUNTIME_DIR": str(settings.runtime_dir),
                "KAIZEN_PREDICTION_API_TOKEN": TOKEN,
                "KAIZEN_LOG_LEVEL": "WARNING",
            }
        )
        policy = rt.params.serve.freshness_policy
        online_read = rt.params.serve.online_read  # the baseline reads as the API reads
        cpus = split_cores()
        times: dict[str, dict[str, Any]] = {}
        rps: dict[str, float] = {}
        for form, params in forms.items():
            form_rt = Runtime(settings.model_copy(update={"params_file": params}))
            served = load_served(form_rt, number, "champion")
            assert served.form == form, served.form
            form_env = {**env, "KAIZEN_PARAMS_FILE": str(params)}
            with Api(form_env, 1, ws.root / f"serve-{form}-1.log", cpus[0]) as api, pinned(cpus[1]):
                times[form] = _latency(
                    api, served, store, policy, online_read, customers, requests, warmup
                )
                rps[form] = _throughput(api.url, customers, size["seconds"])
        with Api(
            {**env, "KAIZEN_PARAMS_FILE": str(forms["sklearn"])}, 2, ws.root / "serve-2.log"
        ) as api:
            _throughput(api.url, customers, 1.0)  # warm both workers
            rps2 = _throughput(api.url, customers, size["seconds"])
        t = times["sklearn"]
        baseline_rps = 1e3 / (float(np.mean(t["read"])) + float(np.mean(t["predict"])))
        cores = os.cpu_count()
        sk99, ox99 = percentile(times["sklearn"]["api"], 99), percentile(times["onnx"]["api"], 99)
        sk_m50 = percentile(times["sklearn"]["predict"], 50)
        ox_m50 = percentile(times["onnx"]["predict"], 50)
        return [
            _latency_row("sklearn", times["sklearn"], requests, cpus),
            _latency_row("onnx", times["onnx"], requests, cpus),
            Row(
                row="6f",
                hot_path="prediction API POST /predict p99, ONNX form",
                baseline="the same API serving the scikit-learn form",
                measured_s=ox99 / 1e3,
                baseline_s=sk99 / 1e3,
                goal="report",
                notes=(
                    f"p99 {ox99:.2f} ms vs {sk99:.2f} ms; one-row predict p50 {ox_m50:.2f} ms vs "
                    f"{sk_m50:.2f} ms ({sk_m50 / ox_m50:.0f}x); 1-worker throughput "
                    f"{rps['onnx']:.0f} vs {rps['sklearn']:.0f} req/s"
                ),
                extra={"rps_onnx": rps["onnx"], "rps_sklearn": rps["sklearn"]},
            ),
            ThroughputRow(
                row="6t1",
                hot_path="prediction API throughput, 1 uvicorn worker (req/s), sklearn form",
                baseline="one in-process read + predict at a time (req/s)",
                measured_s=1 / rps["sklearn"],
                baseline_s=1 / baseline_rps,
                goal="report",
                notes=f"{rps['sklearn']:.0f} req/s vs {baseline_rps:.0f} req/s in process; {CLIENT_THREADS} client threads on the same {cores} cores",
                extra={"rps": rps["sklearn"]},
            ),
            ThroughputRow(
                row="6t2",
                hot_path="prediction API throughput, 2 uvicorn workers (req/s), sklearn form",
                baseline="one in-process read + predict at a time (req/s)",
                measured_s=1 / rps2,
                baseline_s=1 / baseline_rps,
                goal="report",
                notes=f"{rps2:.0f} req/s ({rps2 / rps['sklearn']:.2f}x one worker); {CLIENT_THREADS} client threads on the same {cores} cores",
                extra={"rps": rps2},
            ),
        ]
    finally:
        cleanup(ws)
