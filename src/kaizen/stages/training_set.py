"""`training_set`: the project's labelled rows joined point in time with the feature service.

The entity frame comes from the label hook: each row at its event time, with its join keys
and request-time fields, and what is known of its label at the cut-off (`state`: resolved
positive, resolved negative or censored; `elapsed_days`; `resolved_days`), never a model
input. With `train.labels: final` only rows whose label is final by the cut-off are used,
so positives that take time to show are not under-counted among recent rows; with
`censored` the unresolved rows come too, for a fit that reads their state
(kaizen.model.hazard) instead of waiting a whole label horizon for them. Features come
from Feast's `get_historical_features` with the feature service: for each row, each view's
latest row at or before the event time and within its TTL. Nothing later can leak in.
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
from kaizen.labels import (
    CENSORED,
    EVENT_TIMESTAMP,
    FINAL_TS,
    LABEL,
    LABEL_TIMES,
    STATE,
    final_rows,
    label_states,
)
from kaizen.lake import PUBLISHED
from kaizen.logs import get_logger
from kaizen.model.data import LABEL_STATE
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed
from kaizen.transforms.contract import as_of

log = get_logger(__name__)


def published_days(rt: Runtime) -> list[str]:
    """Days every feature view of the model's service has published."""
    views = rt.schema.service(rt.params.training_set.feature_service).views
    published = [rt.lake.partitions(PUBLISHED, v) for v in views]
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


def training_rows(states: pd.DataFrame, at: pd.Timestamp, labels: str) -> pd.DataFrame:
    """The labelled rows (with their states as of `at`, the cut-off) a training set holds:
    `final`, those whose label is final by `at`; `censored`, every one, resolved or not."""
    if labels == "final":
        states = states[states[FINAL_TS] <= at]
    return states.reset_index(drop=True)


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
    # Rows from before the first features existed would join to nothing.
    first_features = as_of(common[0])
    start = (
        max(first_features, as_of(parse_ds(start_ds)) - pd.Timedelta(days=1))
        if start_ds
        else first_features
    )
    row_id = rt.project.row_id
    labels = rt.params.train.labels
    entity = training_rows(label_states(rt, cutoff_ds), cutoff, labels).drop(columns=LABEL_TIMES)
    entity = entity[(entity[EVENT_TIMESTAMP] >= start) & (entity[EVENT_TIMESTAMP] < cutoff)]
    if entity.empty:
        which = "has a final label" if labels == "final" else "is labelled"
        raise InputError(f"no row from {start:%Y-%m-%d} {which} by {cutoff_ds}")
    store = open_store(rt.settings)
    service = store.get_feature_service(rt.params.training_set.feature_service)
    joined = store.get_historical_features(entity_df=entity, features=service).to_df()
    joined = joined.sort_values([EVENT_TIMESTAMP, row_id], kind="stable").reset_index(drop=True)
    joined[EVENT_TIMESTAMP] = pd.to_datetime(joined[EVENT_TIMESTAMP], utc=True).dt.as_unit("us")
    resolved = joined[joined[STATE] != CENSORED]
    info = {
        "cutoff": cutoff_ds,
        "labels": labels,
        "censored": int((joined[STATE] == CENSORED).sum()),
        "first_issued": str(joined[EVENT_TIMESTAMP].min()),
        "last_issued": str(joined[EVENT_TIMESTAMP].max()),
        "rows": len(joined),
        "positives": int(resolved[LABEL].sum()),  # a censored row's label is provisional
        "positive_rate": round(float(resolved[LABEL].mean()), 6),
        "feature_service": service.name,
        "keys": rt.project.key_columns,
        "request_fields": rt.project.request_fields,
        "features": sorted(
            c
            for c in joined.columns
            if c not in (*rt.project.key_columns, LABEL, *LABEL_STATE, *rt.project.request_fields)
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
    which = "final" if rt.params.train.labels == "final" else "resolved or censored"
    result = StageResult("training_set", f"labels {which} by {cutoff}")
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
            "training set: %d rows, positive rate %.3f (%s), %s .. %s",
            info["rows"],
            info["positive_rate"],
            rt.project.declaration.label.positive,
            info["first_issued"],
            info["last_issued"],
        )
    return result


def final_labels(rt: Runtime, cutoff: str | None = None) -> int:
    """How many rows have a final label by `cutoff` (default: the latest features day)."""
    return len(final_rows(rt, resolve_cutoff(rt, cutoff)))


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
