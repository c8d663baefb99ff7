"""`kaizen status`, the pipeline half: the state of the data and the models at a glance.

Five answers, each read from where it lives: the last good interval per DAG (Airflow's
metadata DB, else the stage-metrics table), the batches waiting in quarantine, the
champion and challenger (MLflow aliases), the drift state (the newest monitoring result)
and the online store's freshness per feature view against its SLO (Feast's materialization
record). Each part is gathered on its own: one that cannot be read says
"unreachable: <reason>" and the others still answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kaizen.runtime import Runtime

PARTS = ("last_good", "quarantine", "models", "drift", "freshness")
TITLES = {
    "last_good": "last good interval per DAG",
    "quarantine": "quarantined batches waiting for replay",
    "models": "models",
    "drift": "drift",
    "freshness": "online store freshness",
}


def collect(rt: Runtime, as_of: dt.date) -> dict[str, dict[str, Any]]:
    """Every part as {"rows": [...], ...} or {"unreachable": reason}."""
    readers: dict[str, Callable[[], dict[str, Any]]] = {
        "last_good": lambda: last_good(rt),
        "quarantine": lambda: quarantined(rt),
        "models": lambda: models(rt),
        "drift": lambda: drift(rt),
        "freshness": lambda: online_freshness(rt, as_of),
    }
    return {name: _guarded(read) for name, read in readers.items()}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _guarded(read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return read()
    except Exception as exc:  # a status report shows what is down; it never crashes on it
        return {"unreachable": _reason(exc)}


# -- last good interval ----------------------------------------------------------------------


def _airflow_rows(settings: Any, query: str) -> list[Any]:
    """Rows of a read-only query on Airflow's metadata DB."""
    import sqlalchemy as sa

    from kaizen.dags.runner import airflow_environ

    url = airflow_environ(settings)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    connect_args: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[-1])
        if not path.exists():  # connecting would create an empty DB
            raise FileNotFoundError(f"no Airflow metadata DB at {path}")
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    elif url.startswith("postgresql"):
        connect_args["connect_timeout"] = 3
    engine = sa.create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query)).mappings().all())
    finally:
        engine.dispose()


def airflow_paused(settings: Any) -> list[str]:
    """The DAGs Airflow holds paused (as it creates them, and as `make demo` leaves them):
    none of their queued runs starts, a trigger's or a backfill's included."""
    rows = _airflow_rows(
        settings, "SELECT dag_id FROM dag WHERE is_paused AND NOT is_stale ORDER BY dag_id"
    )
    return [row["dag_id"] for row in rows]


def airflow_last_good(settings: Any) -> list[dict[str, Any]]:
    """Per DAG, its newest successful run from Airflow's metadata DB."""
    rows = _airflow_rows(
        settings,
        "SELECT dag_id, run_id, data_interval_start, data_interval_end, end_date FROM dag_run"
        " WHERE state = 'success' ORDER BY end_date",
    )
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:  # ordered by end_date: the last one per DAG wins
        start, end = row["data_interval_start"], row["data_interval_end"]
        interval = f"[{_day(start)}, {_day(end)})" if start and end else f"run {row['run_id']}"
        newest[row["dag_id"]] = {
            "dag": row["dag_id"],
            "interval": interval,
            "ended": _iso(row["end_date"]),
        }
    return [newest[k] for k in sorted(newest)]


def last_good(rt: Runtime) -> dict[str, Any]:
    try:
        rows = airflow_last_good(rt.settings)
    except Exception as exc:
        return _last_good_from_metrics(rt, exc)
    try:
        paused = airflow_paused(rt.settings)
    except Exception as exc:  # the runs are still worth showing
        paused = [f"unreadable: {_reason(exc)}"]
    return {"from": "airflow", "rows": rows, "paused": paused}


def _last_good_from_metrics(rt: Runtime, exc: Exception) -> dict[str, Any]:
    from kaizen import stage_metrics

    why = _reason(exc)
    good = stage_metrics.last_good(stage_metrics.read_settings(rt.settings))
    rows = [
        {"dag": r["source"], "interval": r["interval"], "ended": _iso(r["ended_at"])}
        for r in good.to_dict("records")
    ]
    return {"from": f"stage metrics (airflow unreachable: {why})", "rows": rows}


# -- quarantine ------------------------------------------------------------------------------


def quarantined(rt: Runtime) -> dict[str, Any]:
    from kaizen.lake import Partition
    from kaizen.quality.quarantine import SUMMARY, waiting

    rows = []
    for source, ds in waiting(rt.lake, rt.catalog.names):
        part = Partition("quarantine", source, ds)
        manifest = rt.lake.manifest(part) or {}
        reason = manifest.get("reason") or ""
        if not reason:  # a batch quarantined before the manifest carried its reason
            with contextlib.suppress(FileNotFoundError, IndexError, UnicodeDecodeError):
                reason = rt.lake.read_attachment(part, SUMMARY).decode().strip().splitlines()[0]
        rows.append(
            {
                "source": source,
                "ds": ds,
                "rows": manifest.get("rows"),
                "stage": "ingest"
                if manifest.get("validation", {}).get("suite") == "file checks"
                else "validate",
                "reason": reason,
            }
        )
    return {"rows": rows, "replay": f"kaizen -p {rt.project.name} replay --source SOURCE --ds DS"}


# -- models ----------------------------------------------------------------------------------


def models(rt: Runtime) -> dict[str, Any]:
    import os

    from mlflow.exceptions import MlflowException

    from kaizen.model.registry import client
    from kaizen.model.tracking import tracking_uri

    p = rt.params.promote
    aliases = (p.champion_alias, p.challenger_alias)
    uri = tracking_uri(rt.settings)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        # Opening it would create an empty registry; a status report changes nothing.
        return {"rows": [{"alias": a, "version": None} for a in aliases], "note": "no registry yet"}
    # A tracking server that is down must answer in seconds, not after minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    registry = client(rt)
    rows = []
    for alias in aliases:
        try:
            found = registry.get_model_version_by_alias(rt.model_name, alias)
            version = str(found.version)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise  # the registry is unreachable, not the alias unset
            version = None
        rows.append({"alias": alias, "version": version})
    return {"rows": rows}


# -- drift -----------------------------------------------------------------------------------


def drift(rt: Runtime) -> dict[str, Any]:
    from kaizen.monitoring import history

    name = rt.model_name
    dates = rt.lake.partitions(history.LAYER, name)
    if not dates:
        return {"rows": [], "note": "no monitoring run yet"}
    metrics = json.loads(rt.lake.read_attachment(history.partition(rt, dates[-1]), "metrics.json"))
    data = metrics.get("data_drift") or {}
    prediction = metrics.get("prediction_drift") or {}
    breaches = sorted(metrics.get("breaches") or {})
    retrain = metrics.get("retrain") or {}
    return {
        "rows": [
            {
                "ds": dates[-1],
                "state": "breach" if breaches else "ok",
                "data_drift_share": data.get("share"),
                "data_drift_breach": bool(data.get("breach")),
                "prediction_psi": prediction.get("psi"),
                "prediction_drift_breach": bool(prediction.get("breach")),
                "breaches": breaches,
                "retrain_requested": bool(retrain.get("requested")),
                "report": metrics.get("report")
                or rt.lake.url(f"{history.partition(rt, dates[-1]).relpath}/report.html"),
            }
        ]
    }


# -- online freshness ------------------------------------------------------------------------


# `materialize` records a day's rows (stamped at the end of their day) with an exclusive end
# two days after the partition date, as `feast materialize` would for that event time.
END_PAST_NEWEST_DAY = dt.timedelta(days=2)


def online_freshness(rt: Runtime, as_of: dt.date) -> dict[str, Any]:
    """Per feature view: the newest materialized end time, its lag in days and the SLO."""
    from kaizen.featurestore.store import open_store

    store = open_store(rt.settings)
    slo = rt.params.monitor.freshness_slo_days
    rows = []
    for view in rt.schema.views:
        end = store.get_feature_view(view).most_recent_end_time
        newest = (end - END_PAST_NEWEST_DAY).date() if end else None
        lag = (as_of - newest).days if newest else None
        rows.append(
            {
                "view": view,
                "newest_day": newest.isoformat() if newest else None,
                "lag_days": lag,
                "slo_days": slo.get(view),
                "state": "never materialized"
                if lag is None
                else ("stale" if view in slo and lag > slo[view] else "fresh"),
            }
        )
    return {"as_of": as_of.isoformat(), "rows": rows}


# -- rendering -------------------------------------------------------------------------------


def render(report: dict[str, dict[str, Any]]) -> list[str]:
    """Plain lines, none blank (callers split them into columns)."""
    out: list[str] = []
    for name in PARTS:
        part = report[name]
        out.append(f"== {TITLES[name]} ==")
        if "unreachable" in part:
            out.append(f"  unreachable: {part['unreachable']}")
            continue
        out += [f"  {line}" for line in _lines(name, part)]
    return out


def _lines(name: str, part: dict[str, Any]) -> list[str]:
    rows = part.get("rows", [])
    if name == "last_good":
        head = [f"from {part['from']}"]
        paused = (
            [
                f"paused: {', '.join(part['paused'])}: their runs stay queued, a trigger's or a "
                "backfill's too; unpause with `airflow dags unpause DAG_ID` or the UI's toggle"
            ]
            if part.get("paused")
            else []
        )
        return (
            head
            + (
                [f"{r['dag']}: {r['interval']} (ended {r['ended']})" for r in rows]
                or ["no good run yet"]
            )
            + paused
        )
    if name == "quarantine":
        if not rows:
            return ["none"]
        lines = [
            f"{r['source']} {r['ds']}: {r['rows']} rows held, refused at {r['stage']}: "
            f"{r['reason'] or '-'}"
            for r in rows
        ]
        return [*lines, f"replay with: {part['replay']}"]
    if name == "models":
        return [f"{r['alias']}: " + (f"v{r['version']}" if r["version"] else "none") for r in rows]
    if name == "drift":
        if not rows:
            return [part.get("note", "no monitoring run yet")]
        r = rows[0]
        share = "-" if r["data_drift_share"] is None else f"{r['data_drift_share']:.2f}"
        psi = "-" if r["prediction_psi"] is None else f"{r['prediction_psi']:.3f}"
        return [
            f"{r['ds']}: {r['state']}"
            + (f" ({', '.join(r['breaches'])})" if r["breaches"] else ""),
            f"data drift share {share}{' BREACH' if r['data_drift_breach'] else ''},"
            f" prediction PSI {psi}{' BREACH' if r['prediction_drift_breach'] else ''},"
            f" retrain requested: {'yes' if r['retrain_requested'] else 'no'}",
            f"report: {r['report']}",
        ]
    return [f"as of {part['as_of']}"] + [
        f"{r['view']}: {r['state']}, newest {r['newest_day'] or '-'},"
        f" lag {'-' if r['lag_days'] is None else r['lag_days']}d (SLO {r['slo_days']}d)"
        for r in rows
    ]


def _day(value: Any) -> str:
    return value.date().isoformat() if hasattr(value, "date") else str(value)[:10]


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
