"""`training_set`: labelled invoices joined point in time with the model's feature service.

The entity frame comes from the labels: each invoice at the instant it was issued, with the
amount as the request-time `requested_amount`. Only invoices whose label is final by the
cut-off are used (due date + `late_after_days` has passed), so the late ones are not
under-counted among recent invoices. Features come from Feast's `get_historical_features`
with the feature service: for each invoice, each view's latest row at or before the issue
instant and within its TTL. Nothing from after the issue instant can leak in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kaizen.errors import InputError
from kaizen.interval import parse_ds
from kaizen.logs import get_logger
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed
from kaizen.stages.validate_features import PUBLISHED
from kaizen.transforms.invoices import invoice_states
from kaizen.transforms.views import ENTITY, EVENT_TIMESTAMP, VIEWS, as_of, midnight_utc

log = get_logger(__name__)
LABEL = "label"
KEYS = ["invoice_id", ENTITY, EVENT_TIMESTAMP]


def labelled_invoices(
    payments: pd.DataFrame, cutoff: pd.Timestamp, late_after_days: int
) -> pd.DataFrame:
    """Invoices whose late-or-not label is final at `cutoff`: the entity frame's rows."""
    states = invoice_states(payments, cutoff, late_after_days)
    final = midnight_utc(states["due_date"]) + pd.Timedelta(days=late_after_days) <= cutoff
    rows = states[final]
    return pd.DataFrame(
        {
            "invoice_id": rows["invoice_id"].to_numpy(),
            ENTITY: rows["customer_id"].to_numpy(),
            EVENT_TIMESTAMP: rows["issued_ts"].to_numpy(),
            "requested_amount": rows["amount"].to_numpy(),
            LABEL: rows["is_late"].astype("int64").to_numpy(),
        }
    )


def published_days(rt: Runtime) -> list[str]:
    """Days every feature view has published."""
    published = [rt.lake.partitions(PUBLISHED, v) for v in VIEWS]
    return sorted(set(published[0]).intersection(*published[1:]))


def resolve_cutoff(rt: Runtime, cutoff: str | None) -> str:
    """`latest` (the default in params.yaml) is the newest day with published features."""
    cutoff = cutoff or str(rt.params.training_set.cutoff)
    if cutoff != "latest":
        return parse_ds(cutoff)
    days = published_days(rt)
    if not days:
        raise InputError("no published features yet: run featurize and validate_features first")
    return days[-1]


def build_training_set(
    rt: Runtime, cutoff_ds: str, start_ds: str | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    from kaizen.featurestore.store import open_store

    cutoff_ds = parse_ds(cutoff_ds)
    cutoff = as_of(cutoff_ds)
    common = published_days(rt)
    if not common:
        raise InputError("no published features yet: run featurize and validate_features first")
    if start_ds is None:
        lookback = pd.Timestamp(cutoff_ds) - pd.Timedelta(days=rt.params.training_set.lookback_days)
        start_ds = lookback.date().isoformat()
    # Invoices issued before the first features existed would join to nothing.
    first_features = as_of(common[0])
    start = (
        max(first_features, as_of(parse_ds(start_ds)) - pd.Timedelta(days=1))
        if start_ds
        else first_features
    )
    dates = [d for d in rt.lake.partitions("silver", "payments") if d <= cutoff_ds]
    table = rt.lake.read_many("silver", "payments", dates)
    if table is None:
        raise InputError(f"no silver payments up to {cutoff_ds}")
    entity = labelled_invoices(table.to_pandas(), cutoff, rt.params.featurize.late_after_days)
    entity = entity[entity[EVENT_TIMESTAMP] >= start]
    if entity.empty:
        raise InputError(
            f"no invoice issued from {start:%Y-%m-%d} has a final label by {cutoff_ds}"
        )
    store = open_store(rt.settings)
    service = store.get_feature_service(rt.params.feature_store.service)
    joined = store.get_historical_features(entity_df=entity, features=service).to_df()
    joined = joined.sort_values([EVENT_TIMESTAMP, "invoice_id"], kind="stable").reset_index(
        drop=True
    )
    joined[EVENT_TIMESTAMP] = pd.to_datetime(joined[EVENT_TIMESTAMP], utc=True).dt.as_unit("us")
    info = {
        "cutoff": cutoff_ds,
        "first_issued": str(joined[EVENT_TIMESTAMP].min()),
        "last_issued": str(joined[EVENT_TIMESTAMP].max()),
        "rows": len(joined),
        "positives": int(joined[LABEL].sum()),
        "late_rate": round(float(joined[LABEL].mean()), 6),
        "feature_service": service.name,
        "features": sorted(
            c for c in joined.columns if c not in (*KEYS, LABEL, "requested_amount")
        ),
    }
    return joined, info


def training_set(
    out: str | Path, rt: Runtime | None = None, cutoff: str | None = None, start: str | None = None
) -> StageResult:
    """Write the training set to `out` (parquet) and its description beside it (`.json`)."""
    rt = rt or Runtime()
    out = Path(out)
    cutoff = resolve_cutoff(rt, cutoff)
    result = StageResult("training_set", f"labels final by {cutoff}")
    with timed(result, log, rt):
        frame, info = build_training_set(rt, cutoff, start)
        out.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        tmp = out.with_suffix(".tmp")
        pq.write_table(table, tmp)
        info["sha256"] = hashlib.sha256(tmp.read_bytes()).hexdigest()
        tmp.replace(out)  # readers never see a half-written training set
        out.with_suffix(".json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        result.rows_in = result.rows_out = len(frame)
        result.output = str(out)
        result.details = info
        log.info(
            "training set: %d invoices, late rate %.3f, %s .. %s",
            info["rows"],
            info["late_rate"],
            info["first_issued"],
            info["last_issued"],
        )
    return result


def final_labels(rt: Runtime, cutoff: str | None = None) -> int:
    """How many invoices have a final label by `cutoff` (default: the latest features day)."""
    cutoff_ds = resolve_cutoff(rt, cutoff)
    dates = [d for d in rt.lake.partitions("silver", "payments") if d <= cutoff_ds]
    table = rt.lake.read_many("silver", "payments", dates)
    if table is None:
        return 0
    return len(
        labelled_invoices(table.to_pandas(), as_of(cutoff_ds), rt.params.featurize.late_after_days)
    )


def new_labels_since_last_model(rt: Runtime) -> tuple[int, str]:
    """How many labels became final since the newest registered version's cut-off, and that
    version (`-` when none): the train DAG retrains on it past `train.retrain_min_new_labels`.

    Counted over the whole history on both sides. The training set keeps only
    `training_set.lookback_days`, so comparing against its row count would count every label
    that slid out of the window as new: once the history is longer than the window, that
    asked for a retrain every day."""
    from kaizen.model.registry import latest_version

    version = latest_version(rt)
    tags = (version.tags or {}) if version else {}
    now = final_labels(rt)
    if cutoff := tags.get("kaizen.training_set_cutoff"):
        before = final_labels(rt, cutoff)
    else:  # registered before the cut-off was tagged
        before = int(tags.get("kaizen.training_set_rows", 0))
    return now - before, str(getattr(version, "version", "-"))
