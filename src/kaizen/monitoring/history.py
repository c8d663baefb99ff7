"""The monitor's daily outputs in the lake, and the history the trend plots are drawn from.

Each run commits one partition `monitoring/<model>/ds=<ds>/` (atomic and replaced on a
rerun, like every lake partition): a long table of the day's numbers (section, key, metric,
value) for trends, and `metrics.json` and `report.html` as attachments.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa

from kaizen.lake import Partition
from kaizen.runtime import Runtime

LAYER = "monitoring"
SCHEMA = pa.schema(
    [(name, pa.string()) for name in ("ds", "section", "key", "metric")] + [("value", pa.float64())]
)
COLUMNS = SCHEMA.names


def partition(rt: Runtime, ds: str) -> Partition:
    return Partition(LAYER, rt.model_name, ds)


def rows_of(ds: str, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The day's numbers in long form: what the trend plots need."""
    rows = []

    def add(section: str, key: str, metric: str, value: Any) -> None:
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, int | float):
            rows.append(
                {"ds": ds, "section": section, "key": key, "metric": metric, "value": float(value)}
            )

    drift = metrics.get("data_drift") or {}
    for f in drift.get("features", []):
        add("data_drift", f["feature"], "psi", f["psi"])
        add("data_drift", f["feature"], "p_value", f["p_value"])
    add("data_drift", "all", "share", drift.get("share"))
    pred = metrics.get("prediction_drift") or {}
    add("prediction_drift", "probability", "psi", pred.get("psi"))
    positive = metrics.get("positive_rate") or {}
    add("positive_rate", "all", "rate", positive.get("rate"))
    add("positive_rate", "all", "labels", positive.get("labels"))
    for version, q in (metrics.get("quality") or {}).items():
        for metric in ("roc_auc", "brier", "rows"):
            add("quality", f"v{version}", metric, q.get(metric))
    for feature, share in ((metrics.get("skew") or {}).get("features") or {}).items():
        add("skew", feature, "mismatch_share", share)
    for view, f in (metrics.get("freshness") or {}).items():
        add("freshness", view, "lag_days", f.get("lag_days"))
    return rows


def write(rt: Runtime, ds: str, metrics: dict[str, Any], html: str) -> str:
    """Commit the day's partition; returns the report's address."""
    rows = rows_of(ds, metrics)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    part = partition(rt, ds)
    body = json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n"
    rt.lake.write(
        part,
        pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False),
        meta={"kind": "monitoring", "model": rt.model_name},
        attachments={"metrics.json": body.encode(), "report.html": html.encode()},
    )
    return rt.lake.url(f"{part.relpath}/report.html")


def history(rt: Runtime, ds: str, days: int) -> pd.DataFrame:
    """The long rows of the runs in the `days` before `ds` (today's are added by the caller)."""
    name = rt.model_name
    first = (pd.Timestamp(ds) - pd.Timedelta(days=days)).date().isoformat()
    dates = [d for d in rt.lake.partitions(LAYER, name) if first <= d < ds]
    table = rt.lake.read_many(LAYER, name, dates)
    return table.to_pandas() if table is not None else pd.DataFrame(columns=COLUMNS)


def previous_metrics(rt: Runtime, ds: str) -> dict[str, Any] | None:
    """The metrics of the newest run before `ds` (None on the first run)."""
    dates = [d for d in rt.lake.partitions(LAYER, rt.model_name) if d < ds]
    if not dates:
        return None
    blob = rt.lake.read_attachment(partition(rt, dates[-1]), "metrics.json")
    return json.loads(blob)
