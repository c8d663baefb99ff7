"""`monitor`: is the champion still right about the world it serves? One run per day `ds`.

Data drift of every model input and prediction drift against the champion's holdout, the
positive rate from delayed labels, live quality of champion and challenger, training-
serving skew, and feature freshness. Breaches are alerted once per episode (log + webhook);
an actionable one (drift, positive rate) on clean data and outside the cooldown records a
retrain request, which the monitor DAG turns into the `<project>.retrain_request` asset.
A day with nothing to judge (no request in the window, no final label) fails in one line:
a report on 0 rows would read as "all clear".
Monitoring never moves an alias. The day's report (HTML with plots) and metrics go to
`<lake>/monitoring/<model>/ds=<ds>/` and to the MLflow experiment `<experiment>-monitoring`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from kaizen.errors import InputError
from kaizen.interval import parse_ds
from kaizen.logs import get_logger
from kaizen.monitoring import alerts, business, drift, history, quality, report, skew, trigger
from kaizen.monitoring.alerts import Breach
from kaizen.monitoring.freshness import freshness
from kaizen.monitoring.predictions import logged_features, read_predictions, served
from kaizen.monitoring.reference import Reference, reference_of, version_at
from kaizen.monitoring.window import offline_features, window_days, window_requests
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed

log = get_logger(__name__)


def _current(
    rt: Runtime, reference: Reference, window_preds: pd.DataFrame, entity: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray, str]:
    """The window's model inputs and champion scores: served (logged) when there is enough
    live traffic, else the offline point-in-time features of the window's requests."""
    p = rt.params.monitor
    live = served(window_preds)
    live = live[live["model_version"].astype(str) == str(reference.version.number)]
    if len(live) >= p.min_rows:
        return logged_features(live), live["probability"].to_numpy(dtype=float), "served"
    frame = offline_features(rt, entity, reference.version.feature_service)
    scores = reference.version.score(frame) if len(frame) else np.array([])
    return frame, scores, "offline (no live traffic yet)" if live.empty else "offline"


def _breaches(metrics: dict[str, Any], rt: Runtime) -> list[Breach]:
    p, champion = rt.params.monitor, metrics.get("champion")
    out = []
    data = metrics.get("data_drift") or {}
    if data.get("breach"):
        out.append(
            Breach(
                f"data_drift.v{champion}",
                "data_drift",
                f"data drift: {len(data['drifted'])} of {len(data['features'])} inputs drifted "
                f"({data['share']:.0%} > {p.drift_share:.0%}): {', '.join(data['drifted'])}",
                actionable=True,
                details={"share": data["share"], "drifted": data["drifted"]},
            )
        )
    pred = metrics.get("prediction_drift") or {}
    if pred.get("breach"):
        out.append(
            Breach(
                f"prediction_drift.v{champion}",
                "prediction_drift",
                f"prediction drift: champion scores PSI {pred['psi']:.3f} > "
                f"{p.prediction_psi_threshold} (mean {pred['reference_mean']:.3f} -> {pred['current_mean']:.3f})",
                actionable=True,
                details={"psi": pred["psi"], "p_value": pred["p_value"]},
            )
        )
    positive = metrics["positive_rate"]
    if positive["breach"]:
        out.append(
            Breach(
                "positive_rate",
                "positive_rate",
                f"positive rate ({rt.project.declaration.label.positive}) {positive['rate']:.1%} "
                f"over {positive['labels']} final labels reached {p.positive_rate_alert:.0%}",
                actionable=True,
                details={"rate": positive["rate"], "labels": positive["labels"]},
            )
        )
    floor = rt.params.promote.floors.roc_auc
    for version, q in (metrics.get("quality") or {}).items():
        if (
            q["alias"] == rt.params.promote.champion_alias
            and q["judged"]
            and q["roc_auc"] is not None
            and q["roc_auc"] < floor
        ):
            out.append(
                Breach(
                    f"quality.v{version}",
                    "quality",
                    f"champion v{version} live ROC AUC {q['roc_auc']:.3f} < floor {floor} "
                    f"on {q['rows']} labelled requests",
                    actionable=False,
                    details={"roc_auc": q["roc_auc"], "rows": q["rows"]},
                )
            )
    sk = metrics.get("skew") or {}
    if sk.get("breach"):
        out.append(
            Breach(
                "skew",
                "skew",
                "training-serving skew: "
                + ", ".join(f"{k} {sk['features'][k]:.1%}" for k in sk["skewed"])
                + f" of requests differ from the offline recomputation (> {p.skew_alert:.0%})",
                actionable=False,
                details={"features": {k: sk["features"][k] for k in sk["skewed"]}},
            )
        )
    for view, f in metrics["freshness"].items():
        if f["breach"]:
            out.append(
                Breach(
                    f"freshness.{view}",
                    "freshness",
                    f"{view} is stale: newest published day {f['newest'] or 'none'}, SLO {f['slo_days']} day(s)",
                    actionable=False,
                    details=f,
                )
            )
    return out


def monitor(ds: str, rt: Runtime | None = None) -> StageResult:
    rt = rt or Runtime()
    ds = parse_ds(ds)
    p, aliases_p = rt.params.monitor, rt.params.promote
    result = StageResult("monitor", ds)
    with timed(result, log, rt):
        days = window_days(ds, p.current_window_days)
        champion = version_at(rt, aliases_p.champion_alias)
        challenger = version_at(rt, aliases_p.challenger_alias)
        aliases = {
            alias: str(v.number)
            for alias, v in (
                (aliases_p.champion_alias, champion),
                (aliases_p.challenger_alias, challenger),
            )
            if v is not None
        }
        first = (dt.date.fromisoformat(ds) - dt.timedelta(days=p.history_days)).isoformat()
        predictions = read_predictions(rt, first, ds)
        in_window = predictions["ts"].dt.strftime("%Y-%m-%d").isin(days)
        window_preds = predictions[in_window].reset_index(drop=True)
        metrics: dict[str, Any] = {
            "ds": ds,
            "model": rt.model_name,
            "window": [days[0], days[-1]],
            "champion": str(champion.number) if champion else None,
            "challenger": str(challenger.number) if challenger else None,
            "params": p.model_dump(),
            "predictions_in_window": len(window_preds),
        }
        entity = window_requests(rt, days)
        labels = business.final_labels(rt, ds)
        if entity.empty and window_preds.empty and labels.empty:
            raise InputError(
                f"monitor {ds}: nothing to judge: no request in {days[0]}..{days[-1]} and no "
                "final label yet (are ingest, validate and featurize running for this project?)"
            )
        metrics["requests_in_window"] = len(entity)
        reference_scores = current_scores = None
        if champion is None:
            metrics["data_drift"] = {"judged": False, "reason": "no champion yet", "breach": False}
            metrics["prediction_drift"] = {
                "judged": False,
                "reason": "no champion yet",
                "breach": False,
            }
            metrics["skew"] = {"judged": False, "reason": "no champion yet"}
        else:
            reference = reference_of(rt, champion, aliases_p.champion_alias)
            current, current_scores, source = _current(rt, reference, window_preds, entity)
            metrics["current_source"] = source
            categorical = reference.categorical
            numeric = [c for c in reference.inputs if c not in categorical]
            metrics["data_drift"] = drift.data_drift(
                reference.frame, current, numeric, categorical, p
            )
            reference_scores = reference.scores
            metrics["prediction_drift"] = drift.prediction_drift(
                reference_scores, current_scores, p
            )
            metrics["prediction_drift"]["source"] = source
            metrics["skew"] = (
                skew.skew(rt, window_preds, reference.inputs, champion.feature_service, p)
                if not window_preds.empty
                else {"judged": False, "reason": "no live traffic yet"}
            )
        metrics["positive_rate"] = business.positive_rate(labels, ds, p)
        daily_positive = business.daily_positive_rates(labels, ds, p.history_days)
        metrics["quality"] = quality.live_quality(
            predictions, labels, rt.project.row_id, aliases, p
        )
        metrics["freshness"] = freshness(rt, ds, p)

        found = alerts.episodes(_breaches(metrics, rt), history.previous_metrics(rt, ds), ds)
        metrics["breaches"] = {b.key: b.to_dict() for b in found}
        sent = alerts.notify(rt.settings, found, ds)
        metrics["alerts"] = [a["key"] for a in sent]
        metrics["retrain"] = trigger.decide(rt, ds, found, days)

        parts = [
            history.history(rt, ds, p.history_days),
            pd.DataFrame(history.rows_of(ds, metrics)),
        ]
        trend = pd.concat([t for t in parts if not t.empty] or parts[:1], ignore_index=True)
        # Every run on the project's params (plots_every_days 1); a simulated half year draws
        # them weekly and on each day an alert goes out (the page the alert points to), since
        # the figures cost more than the numbers and a breach can last for weeks.
        plots = bool(sent) or dt.date.fromisoformat(ds).toordinal() % p.plots_every_days == 0
        page = report.render(
            metrics,
            trend,
            daily_positive,
            reference_scores,
            current_scores,
            plots,
            rt.project.declaration.label.positive,
        )
        url = history.write(rt, ds, metrics, page)
        metrics["report"] = url
        run_id = _log_to_mlflow(rt, ds, metrics, page)
        log.info("monitoring report for %s: %s (MLflow run %s)", ds, url, run_id)
        result.rows_in = len(window_preds)
        result.rows_out = len(found)
        result.output = url
        result.details = {
            "report": url,
            "mlflow_run_id": run_id,
            "breaches": sorted(metrics["breaches"]),
            "alerts": metrics["alerts"],
            "retrain": metrics["retrain"],
            "data_drift_share": (metrics.get("data_drift") or {}).get("share"),
            "positive_rate": metrics["positive_rate"]["rate"],
        }
    return result


def _log_to_mlflow(rt: Runtime, ds: str, metrics: dict[str, Any], page: str) -> str:
    import mlflow

    from kaizen.model import tracking

    experiment = tracking.configure(rt.settings, f"{rt.experiment}-monitoring")
    numbers = {
        f"{r['section']}.{r['key']}.{r['metric']}": r["value"]
        for r in history.rows_of(ds, metrics)
        if np.isfinite(r["value"])
    }
    with mlflow.start_run(run_name=f"monitor-{ds}", experiment_id=experiment.experiment_id) as run:
        mlflow.set_tags(
            {
                "kaizen.stage": "monitor",
                "kaizen.ds": ds,
                "kaizen.champion": str(metrics.get("champion")),
                "kaizen.breaches": ",".join(sorted(metrics["breaches"])) or "-",
                "kaizen.retrain_requested": str(metrics["retrain"]["requested"]),
            }
        )
        mlflow.log_metrics(numbers)
        mlflow.log_text(page, "report.html")
        mlflow.log_dict(metrics, "metrics.json")
    return run.info.run_id
