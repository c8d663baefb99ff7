"""Monitoring on the labelled world: a registered champion, a prediction log built from real
requests, and the monitor stage with its drift, positive-rate, skew, alert and retrain rules."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr
from support import REPO, make_settings

from kaizen.lake import Partition
from kaizen.model.metrics import score
from kaizen.monitoring import business, drift, trigger
from kaizen.monitoring.alerts import Breach
from kaizen.monitoring.predictions import log_schema, read_predictions
from kaizen.monitoring.reference import reference_of, version_at
from kaizen.monitoring.window import offline_features, window_days, window_requests
from kaizen.params import load_params
from kaizen.runtime import Runtime
from kaizen.stages.monitor import monitor

# The holdout of a model trained on the labelled world is the invoices of 2026-01-11..15
# (labels final by 2026-02-14); a window inside it is the stable case.
STABLE_DS = "2026-01-15"
LOG_DAYS = ["2026-01-12", "2026-01-13", "2026-01-14", "2026-01-15"]
# What the simulated shock does to requests: dearer orders (x1.25 and a dearer category mix).
SHOCKED = {
    "requested_amount": 1.8,
    "requested_to_credit_limit": 1.8,
    "requested_plus_open_to_limit": 1.6,
    "aov_30d": 1.6,
    "aov_90d": 1.6,
    "spend_30d": 1.6,
    "spend_90d": 1.6,
}


def _params(rt: Runtime, **monitor: object) -> Runtime:
    p = rt.params
    rt.__dict__["params"] = p.model_copy(
        update={
            "evaluate": p.evaluate.model_copy(update={"holdout_days": 5}),
            "monitor": p.monitor.model_copy(update=monitor),
        }
    )
    return rt


@pytest.fixture(scope="module")
def world(labelled_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The labelled world with a trained, registered model at @champion (set directly: the
    promotion gates are not under test here)."""
    from kaizen.featurestore.store import apply
    from kaizen.model.registry import client
    from kaizen.stages.evaluate import evaluate
    from kaizen.stages.register import register
    from kaizen.stages.train import train
    from kaizen.stages.training_set import training_set

    root = tmp_path_factory.mktemp("monitor-world")
    shutil.copytree(labelled_world / "lake", root / "lake")
    rt = _params(Runtime(make_settings(root)))
    apply(rt.settings)
    work = root / "work"
    training_set(work / "ts.parquet", rt)
    train(work / "ts.parquet", work / "model", rt)
    evaluate(work / "ts.parquet", work / "model", work / "eval", rt)
    number = register(
        work / "ts.parquet", work / "model", work / "eval", work / "registered.json", rt
    ).details["version"]
    client(rt).set_registered_model_alias("credit_risk", "champion", number)
    return root


def _runtime(world: Path, tmp_path: Path, **monitor: object) -> Runtime:
    """A fresh lake (a copy of the world's) with the world's Feast registry and MLflow."""
    shutil.copytree(world / "lake", tmp_path / "lake")
    extra = {k: monitor.pop(k) for k in list(monitor) if k.startswith("alert_")}
    settings = make_settings(tmp_path, **extra).model_copy(
        update={"feast_data_dir": world / "feast", "runtime_dir": world / "runtime"}
    )
    monitor.setdefault("retrain_persist_days", 1)  # persistence has its own test
    return _params(Runtime(settings), **monitor)


def write_log(rt: Runtime, days: list[str], shift: dict[str, float] | None = None) -> pd.DataFrame:
    """A prediction log as the serving API writes it: each invoice of `days` scored by the
    champion at its issue instant with the features Feast serves for that instant."""
    champion = version_at(rt, "champion")
    frame = offline_features(rt, window_requests(rt, days), champion.feature_service)
    frame = frame.sort_values(["event_timestamp", "invoice_id"]).reset_index(drop=True)
    served = frame[champion.inputs].copy()
    for column, factor in (shift or {}).items():
        served[column] = served[column] * factor
    probability = champion.score(served)
    features = [
        json.dumps({k: (None if pd.isna(v) else v) for k, v in row.items()}, default=float)
        for row in served.to_dict("records")
    ]
    log = pd.DataFrame(
        {
            "request_id": [uuid.uuid4().hex for _ in range(len(frame))],
            "ts": frame["event_timestamp"],
            "customer_id": frame["customer_id"].astype("int64"),
            "invoice_id": frame["invoice_id"].astype(str),
            "requested_amount": frame["requested_amount"].astype(float),
            "model_version": str(champion.number),
            "alias": "champion",
            "role": "served",
            "probability": probability,
            "decision": np.where(probability > 0.5, "review", "approve"),
            "features": features,
            "fresh": True,
            "latency_ms": 3.0,
            "error": None,
        }
    )
    root = Path(rt.settings.lake_root) / "predictions"
    for ds, rows in log.groupby(log["ts"].dt.strftime("%Y-%m-%d")):
        (root / f"ds={ds}").mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(rows, schema=log_schema(rt.project), preserve_index=False)
        pq.write_table(table, root / f"ds={ds}" / f"part-{uuid.uuid4().hex}.parquet")
    return log


class Webhook:
    """A tiny local HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alert_keys(self) -> list[str]:
        return [a["key"] for a in self.received]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()


# -- drift ------------------------------------------------------------------------------------


def test_a_stable_window_does_not_drift_and_the_report_has_its_plots(
    world: Path, tmp_path: Path
) -> None:
    rt = _runtime(world, tmp_path)
    result = monitor(STABLE_DS, rt)
    details = result.details
    assert result.status == "ok"
    assert details["breaches"] == [] and details["retrain"]["requested"] is False
    metrics = json.loads(
        rt.lake.read_attachment(Partition("monitoring", "credit_risk", STABLE_DS), "metrics.json")
    )
    data = metrics["data_drift"]
    assert data["judged"] and data["current_rows"] >= 100
    assert data["share"] <= rt.params.monitor.drift_share and not data["breach"]
    assert metrics["current_source"].startswith("offline")  # no live traffic: the lake's features
    assert metrics["skew"]["reason"] == "no live traffic yet"
    assert all(not f["breach"] for f in metrics["freshness"].values())
    report = Path(details["report"])
    assert (
        report
        == tmp_path / "lake" / "monitoring" / "credit_risk" / f"ds={STABLE_DS}" / "report.html"
    )
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") and "</html>" in page
    assert page.count("data:image/png;base64,") >= 2  # drift today and over time at least
    for plot in ('id="drift-today"', 'id="drift-trend"', 'id="positive-rate"', 'id="quality"'):
        assert plot in page
    assert "no live traffic yet" in page.lower()
    # ... and the same page is in MLflow, in the monitoring experiment.
    from kaizen.model.registry import client

    run = client(rt).get_run(details["mlflow_run_id"])
    assert client(rt).get_experiment(run.info.experiment_id).name == "credit_risk-monitoring"
    assert {a.path for a in client(rt).list_artifacts(run.info.run_id)} >= {
        "report.html",
        "metrics.json",
    }
    assert run.data.tags["kaizen.ds"] == STABLE_DS
    assert "data_drift.all.share" in run.data.metrics


def test_a_report_without_its_plots_day_still_has_every_table_and_says_why(
    world: Path, tmp_path: Path
) -> None:
    import datetime as dt

    every = 7  # STABLE_DS is not a plot day (and no alert goes out on it)
    assert dt.date.fromisoformat(STABLE_DS).toordinal() % every != 0
    rt = _runtime(world, tmp_path, plots_every_days=every)
    result = monitor(STABLE_DS, rt)
    assert result.details["breaches"] == []
    page = Path(result.details["report"]).read_text()
    assert "data:image/png;base64," not in page
    for plot in ('id="drift-today"', 'id="drift-trend"', 'id="positive-rate"', 'id="quality"'):
        assert plot in page
    assert f"Plots are drawn every {every} days and on alert days" in page
    assert "<h2>Data drift</h2>" in page and "<td>" in page  # the numbers are all there


def test_a_shifted_window_drifts_alerts_once_and_requests_one_retrain(
    world: Path, tmp_path: Path, webhook: Webhook
) -> None:
    rt = _runtime(world, tmp_path, alert_webhook_url=SecretStr(webhook.url))
    write_log(rt, LOG_DAYS, shift=SHOCKED)
    first = monitor("2026-01-14", rt)
    assert any(k.startswith("data_drift.v") for k in first.details["breaches"]), first.details
    # Only the served features were shifted, not the lake's: the monitor sees that as skew too.
    assert "skew" in first.details["breaches"]
    assert first.details["data_drift_share"] > rt.params.monitor.drift_share
    assert first.details["retrain"]["requested"] is True
    drift_alerts = [k for k in webhook.alert_keys() if k.startswith("data_drift.")]
    assert len(drift_alerts) == 1
    # The same breach on a rerun and on the next day: no new alert, no second request.
    again = monitor("2026-01-14", rt)
    nextday = monitor(STABLE_DS, rt)
    assert again.details["alerts"] == [] and nextday.details["alerts"] == []
    assert [k for k in webhook.alert_keys() if k.startswith("data_drift.")] == drift_alerts
    assert nextday.details["retrain"]["requested"] is False
    assert nextday.details["retrain"]["blocked_by"] == "cooldown"
    assert len(trigger.requests(rt)) == 1
    # The report shows served-score drift and the drift trend over the two days.
    page = Path(nextday.details["report"]).read_text()
    assert 'id="scores"' in page and page.count("data:image/png;base64,") >= 3


def test_drift_statistics_separate_a_shock_from_noise(world: Path, tmp_path: Path) -> None:
    rt = _runtime(world, tmp_path)
    reference = reference_of(rt, version_at(rt, "champion"), "champion")
    service = version_at(rt, "champion").feature_service
    current = offline_features(rt, window_requests(rt, window_days(STABLE_DS, 3)), service)
    categorical = reference.categorical
    numeric = [c for c in reference.inputs if c not in categorical]
    p = rt.params.monitor
    stable = drift.data_drift(reference.frame, current, numeric, categorical, p)
    shocked = current.copy()
    for column, factor in SHOCKED.items():
        shocked[column] = shocked[column] * factor
    moved = drift.data_drift(reference.frame, shocked, numeric, categorical, p)
    assert not stable["breach"] and moved["breach"]
    by_name = {f["feature"]: f for f in moved["features"]}
    assert by_name["requested_amount"]["drifted"]
    assert by_name["requested_amount"]["psi"] > p.psi_threshold
    assert by_name["requested_amount"]["p_value"] < p.p_value
    assert not by_name["tenure_days"]["drifted"]  # untouched inputs stay quiet
    assert {"region", "income_band"} <= set(categorical)
    assert {f["test"] for f in moved["features"]} == {"ks", "chisquare"}


def test_the_drift_numbers_are_evidentlys_value_drift_report() -> None:
    """column_drift calls evidently's stat tests without its Report: the numbers must be the
    ones the Report's ValueDrift metrics give on the same frames (NaN, inf, a new category)."""
    import warnings

    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    rng = np.random.default_rng(5)
    n_ref, n_cur = 900, 140
    ref = pd.DataFrame(
        {
            "amount": rng.lognormal(6, 0.5, n_ref),
            "ratio": rng.beta(2, 5, n_ref),
            "region": rng.choice(["north", "south", "east"], n_ref),
        }
    )
    cur = pd.DataFrame(
        {
            "amount": rng.lognormal(6.3, 0.6, n_cur),
            "ratio": rng.beta(2, 4, n_cur),
            "region": rng.choice(["north", "south", "west", None], n_cur),
        }
    )
    ref.loc[::37, "ratio"] = np.nan
    cur.loc[::11, "amount"] = np.inf
    p = load_params(REPO / "projects" / "credit_risk" / "params.yaml").monitor
    ours = drift.column_drift(ref, cur, ["amount", "ratio"], ["region"], p)

    frames = []
    for frame in (ref, cur):
        frame = frame.copy()
        frame["region"] = frame["region"].astype(object).where(frame["region"].notna(), "missing")
        frames.append(frame)
    definition = DataDefinition(
        numerical_columns=["amount", "ratio"], categorical_columns=["region"]
    )
    metrics = []
    for c, test in [("amount", "ks"), ("ratio", "ks"), ("region", "chisquare")]:
        metrics += [ValueDrift(column=c, method="psi"), ValueDrift(column=c, method=test)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = Report(metrics).run(
            Dataset.from_pandas(frames[1], data_definition=definition),
            Dataset.from_pandas(frames[0], data_definition=definition),
        )
    values = [m["value"] for m in run.dict()["metrics"]]
    for i, row in enumerate(ours):
        assert row["psi"] == pytest.approx(values[2 * i], abs=1e-6), row["feature"]
        assert row["p_value"] == pytest.approx(values[2 * i + 1], abs=1e-6), row["feature"]
    assert [r["feature"] for r in ours] == ["amount", "ratio", "region"]
    assert ours[0]["drifted"]  # a shifted amount is found either way


# -- business metric -----------------------------------------------------------------------


def test_the_positive_rate_alerts_at_the_threshold(world: Path, tmp_path: Path) -> None:
    rt = _runtime(world, tmp_path)
    ds = "2026-02-14"
    labels = business.final_labels(rt, ds)
    measured = business.positive_rate(labels, ds, rt.params.monitor)
    assert measured["judged"] and measured["labels"] >= 100 and 0 < measured["rate"] < 0.2
    at = rt.params.monitor.model_copy(update={"positive_rate_alert": measured["rate"]})
    above = rt.params.monitor.model_copy(update={"positive_rate_alert": measured["rate"] + 0.001})
    assert business.positive_rate(labels, ds, at)["breach"] is True  # "reaches": >=
    assert business.positive_rate(labels, ds, above)["breach"] is False
    # Through the stage: the breach is alerted (log only: no webhook set) and is actionable.
    # Requests of mid-January now have final labels: the champion's live quality is measured.
    log = write_log(rt, LOG_DAYS)
    _params(
        rt, positive_rate_alert=measured["rate"], drift_share=1.0, prediction_psi_threshold=10.0
    )
    result = monitor(ds, rt)
    assert "positive_rate" in result.details["breaches"]
    assert "positive_rate" in result.details["alerts"]
    assert result.details["positive_rate"] == measured["rate"]
    assert result.details["retrain"]["requested"] is True
    metrics = json.loads(
        rt.lake.read_attachment(Partition("monitoring", "credit_risk", ds), "metrics.json")
    )
    champion = reference_of(rt, version_at(rt, "champion"), "champion")
    live = metrics["quality"][metrics["champion"]]
    assert live["alias"] == "champion" and live["judged"] and live["rows"] == len(log)
    # The logged scores are the champion's scores of the same requests: the same ROC AUC as
    # its holdout restricted to them.
    same = champion.frame["invoice_id"].astype(str).isin(log["invoice_id"]).to_numpy()
    expected = score(champion.frame["label"].to_numpy()[same], champion.scores[same])
    assert live["roc_auc"] == pytest.approx(expected["roc_auc"], abs=1e-6)
    assert live["brier"] == pytest.approx(expected["brier"], abs=1e-6)


# -- retrain guard --------------------------------------------------------------------------


def test_a_quarantined_day_in_the_window_blocks_the_retrain(world: Path, tmp_path: Path) -> None:
    rt = _runtime(world, tmp_path)
    breach = [Breach("data_drift.v1", "data_drift", "drift", actionable=True)]
    days = window_days("2026-01-14", 3)
    rt.lake.write(Partition("quarantine", "orders", "2026-01-13"), pa.table({"x": [1]}))
    blocked = trigger.decide(rt, "2026-01-14", breach, days)
    assert blocked["requested"] is False and blocked["blocked_by"] == "quarantine"
    assert "orders 2026-01-13" in blocked["why"]
    assert trigger.requests(rt) == []
    # Replayed (the quarantine cleared): the same breach now asks for a retrain.
    rt.lake.delete(Partition("quarantine", "orders", "2026-01-13"))
    assert trigger.decide(rt, "2026-01-14", breach, days)["requested"] is True
    # A breach nobody can retrain away (freshness) never asks.
    stale = [Breach("freshness.customer_profile", "freshness", "stale", actionable=False)]
    assert trigger.decide(rt, "2026-02-01", stale, days)["requested"] is False


def test_a_breach_asks_for_a_retrain_only_once_it_persists(world: Path, tmp_path: Path) -> None:
    rt = _runtime(world, tmp_path, retrain_persist_days=2)
    days = window_days("2026-01-14", 3)
    new = [Breach("data_drift.v1", "data_drift", "drift", True, since="2026-01-14")]
    held = trigger.decide(rt, "2026-01-14", new, days)
    assert held["requested"] is False and held["blocked_by"] == "persistence"
    assert "must last 2 days" in held["why"] and trigger.requests(rt) == []
    lasting = [Breach("data_drift.v1", "data_drift", "drift", True, since="2026-01-13")]
    assert trigger.decide(rt, "2026-01-14", lasting, days)["requested"] is True


def test_at_most_one_retrain_request_per_cooldown(world: Path, tmp_path: Path) -> None:
    rt = _runtime(world, tmp_path, retrain_cooldown_days=7)
    breach = [Breach("positive_rate", "positive_rate", "positive", actionable=True)]

    def ask(ds: str) -> dict:
        return trigger.decide(rt, ds, breach, window_days(ds, 3))

    assert ask("2026-01-20")["requested"] is True
    assert ask("2026-01-21")["blocked_by"] == "cooldown"
    assert ask("2026-01-26")["blocked_by"] == "cooldown"
    assert ask("2026-01-20")["requested"] is True  # a rerun of the asking day asks again
    assert ask("2026-01-27")["requested"] is True  # 7 days later
    assert [r["ds"] for r in trigger.requests(rt)] == ["2026-01-20", "2026-01-27"]


# -- skew -----------------------------------------------------------------------------------


def test_skew_is_zero_for_identical_features_and_names_a_perturbed_one(
    world: Path, tmp_path: Path
) -> None:
    from kaizen.monitoring.skew import skew

    rt = _runtime(world, tmp_path)
    champion = version_at(rt, "champion")
    write_log(rt, ["2026-01-14"])
    log = read_predictions(rt, "2026-01-14", "2026-01-14")
    assert len(log) > 30
    same = skew(rt, log, champion.inputs, champion.feature_service, rt.params.monitor)
    assert same["judged"] and same["max_share"] == 0.0 and not same["breach"]
    assert set(same["features"]) == set(champion.inputs)
    perturbed = log.copy()
    rows = [json.loads(f) for f in perturbed["features"]]
    for row in rows[::2]:
        row["credit_limit"] = (row["credit_limit"] or 0) * 1.1 + 1
    perturbed["features"] = [json.dumps(r) for r in rows]
    moved = skew(rt, perturbed, champion.inputs, champion.feature_service, rt.params.monitor)
    assert moved["breach"] and moved["skewed"] == ["credit_limit"]
    assert moved["features"]["credit_limit"] == pytest.approx(0.5, abs=0.02)
    assert all(v == 0.0 for k, v in moved["features"].items() if k != "credit_limit")


def test_the_train_dag_recognises_a_retrain_request_among_its_triggers() -> None:
    from airflow.sdk import Asset

    from kaizen.dags.tasks import features_asset_name, retrain_asset_name, triggering_events

    FEATURES_ASSET_NAME = features_asset_name("credit_risk")
    RETRAIN_ASSET_NAME = retrain_asset_name("credit_risk")
    features, retrain = Asset(FEATURES_ASSET_NAME), Asset(RETRAIN_ASSET_NAME)
    both = {"triggering_asset_events": {features: ["f"], retrain: ["r1", "r2"]}}
    assert triggering_events(both, RETRAIN_ASSET_NAME) == ["r1", "r2"]
    assert (
        triggering_events({"triggering_asset_events": {features: ["f"]}}, RETRAIN_ASSET_NAME) == []
    )
    assert triggering_events({}, RETRAIN_ASSET_NAME) == []  # a scheduled or manual run


def test_an_unreachable_webhook_is_logged_and_never_fails_monitoring(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    from kaizen.monitoring.alerts import Notifier, notify

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(
        tmp_path,
        alert_webhook_url=SecretStr(f"http://127.0.0.1:{port}/"),
        alert_webhook_timeout_s=0.5,
    )
    breach = Breach(
        "positive_rate", "positive_rate", "positive rate 12%", actionable=True, since="2026-03-01"
    )
    sent = notify(settings, [breach], "2026-03-01", Notifier(settings))
    assert [a["delivered"] for a in sent] == [False]
    assert "not delivered to the webhook" in caplog.text
    assert notify(settings, [breach], "2026-03-02") == []  # the episode was alerted already


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(p_value=2), "monitor.p_value"),
        (lambda m: m.update(positive_rate_alert="high"), "monitor.positive_rate_alert"),
        (lambda m: m.pop("retrain_cooldown_days"), "monitor.retrain_cooldown_days: is required"),
    ],
)
def test_a_bad_monitor_param_is_one_line_naming_the_key(
    tmp_path: Path, change: object, message: str
) -> None:
    import yaml

    from kaizen.errors import ConfigError
    from kaizen.params import load_params

    raw = yaml.safe_load((REPO / "projects" / "credit_risk" / "params.yaml").read_text())
    change(raw["monitor"])  # type: ignore[operator]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message) as err:
        load_params(path)
    assert "\n" not in str(err.value)


def test_every_feature_view_needs_a_freshness_slo(world: Path, tmp_path: Path) -> None:
    """A view of the Feast repo without an SLO would go unwatched: one line naming it."""
    from kaizen.errors import ConfigError
    from kaizen.monitoring.freshness import freshness

    rt = _runtime(world, tmp_path)
    slo = dict(rt.params.monitor.freshness_slo_days)
    slo.pop("customer_payments")
    p = rt.params.monitor.model_copy(update={"freshness_slo_days": slo})
    with pytest.raises(
        ConfigError, match=r"freshness_slo_days must name .*missing \['customer_payments'\]"
    ):
        freshness(rt, STABLE_DS, p)


def test_a_window_with_nothing_to_judge_fails_in_one_line(tmp_path: Path) -> None:
    """No request in the window and no final label: an error, never a report on 0 rows."""
    from kaizen.errors import InputError

    rt = Runtime(make_settings(tmp_path))
    with pytest.raises(InputError, match="nothing to judge") as err:
        monitor("2026-01-10", rt)
    assert "\n" not in str(err.value)
