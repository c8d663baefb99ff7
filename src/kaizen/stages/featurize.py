"""`featurize`: the credit-risk feature views for day `ds`, computed from silver.

Inputs are the validated history the views need: every customers and payments partition up
to `ds` (profiles and open balances are all-time), and the orders of the longest activity
window. The three sources must have passed the gate for `ds` itself; an earlier day that is
still in quarantine is left out and named in the log. Output goes to `features_staged`;
`validate_features` publishes it to `features`, where Feast reads it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pyarrow as pa

from kaizen.errors import InputError
from kaizen.interval import parse_ds
from kaizen.lake import Partition
from kaizen.logs import get_logger
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed
from kaizen.transforms.views import VIEWS

log = get_logger(__name__)
SOURCES = ("customers", "orders", "payments")
STAGED = "features_staged"


def _window(rt: Runtime, source: str, ds: str) -> list[str]:
    """The silver dates `source` contributes to day `ds`."""
    dates = [d for d in rt.lake.partitions("silver", source) if d <= ds]
    if source == "orders":  # only the longest activity window matters
        days = max(rt.params.featurize.activity_windows_days)
        first = (dt.date.fromisoformat(ds) - dt.timedelta(days=days)).isoformat()
        dates = [d for d in dates if d >= first]
    return dates


def _gaps(dates: list[str], ds: str, since: str | None) -> list[str]:
    if not dates:
        return []
    start = dt.date.fromisoformat(since or dates[0])
    have = set(dates)
    span = (dt.date.fromisoformat(ds) - start).days + 1
    return [
        d
        for d in ((start + dt.timedelta(days=i)).isoformat() for i in range(span))
        if d not in have
    ]


def _inputs_pandas(rt: Runtime, windows: dict[str, list[str]]) -> dict[str, pd.DataFrame]:
    frames = {}
    for source, dates in windows.items():
        table = rt.lake.read_many("silver", source, dates)
        frames[source] = table.to_pandas()
    return frames


def _compute(
    rt: Runtime, windows: dict[str, list[str]], ds: str, engine: str
) -> dict[str, pd.DataFrame]:
    p = rt.params.featurize
    if engine == "pandas":
        from kaizen.transforms import features_pandas

        return features_pandas.compute_features(**_inputs_pandas(rt, windows), ds=ds, p=p)
    from kaizen.spark import get_spark
    from kaizen.transforms import features_spark

    spark = get_spark(rt.settings)
    frames: dict[str, Any] = {}
    for source, dates in windows.items():
        if rt.lake.is_local:
            files = [f for d in dates for f in rt.lake.file_urls(Partition("silver", source, d))]
            frames[source] = spark.read.parquet(*files)
        else:  # no s3a connector here: through Arrow, in one chunk (see kaizen.spark)
            table = rt.lake.read_many("silver", source, dates).combine_chunks()
            frames[source] = spark.createDataFrame(table.to_pandas())
    views = features_spark.compute_features(**frames, ds=ds, p=p)
    return features_spark.to_pandas(views, p)


def featurize(ds: str, rt: Runtime | None = None, engine: str | None = None) -> StageResult:
    rt = rt or Runtime()
    ds = parse_ds(ds)
    engine = engine or rt.settings.engine or "pandas"
    result = StageResult("featurize", ds)
    with timed(result, log, rt):
        for source in SOURCES:
            if not rt.lake.exists(Partition("silver", source, ds)):
                held = rt.lake.exists(Partition("quarantine", source, ds))
                why = (
                    "it is in quarantine (replay it once fixed)"
                    if held
                    else "run ingest and validate first"
                )
                raise InputError(f"cannot featurize {ds}: no silver {source} for that day; {why}")
        windows = {source: _window(rt, source, ds) for source in SOURCES}
        first_day = rt.lake.partitions("silver", "customers")[0]
        for source, dates in windows.items():
            gaps = _gaps(dates, ds, first_day if source != "orders" else None)
            if gaps:
                log.warning(
                    "featurize %s: %s has no silver for %s (quarantined?); computed without them",
                    ds,
                    source,
                    ", ".join(gaps[:10]) + (" ..." if len(gaps) > 10 else ""),
                )
        views = _compute(rt, windows, ds, engine)
        inputs = {
            s: {"first": d[0], "last": d[-1], "partitions": len(d)} for s, d in windows.items()
        }
        outputs = []
        for view in VIEWS:
            frame = views[view]
            part = Partition(STAGED, view, ds)
            rt.lake.write(
                part,
                pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None),
                meta={"view": view, "engine": engine, "inputs": inputs},
            )
            outputs.append(rt.lake.url(part))
        result.rows_in = sum(
            rt.lake.manifest(Partition("silver", s, d))["rows"]
            for s, dd in windows.items()
            for d in dd
        )
        result.rows_out = len(views[VIEWS[0]])
        result.output = rt.lake.url(f"{STAGED}/*/ds={ds}")
        result.details = {"engine": engine, "views": {v: len(views[v]) for v in VIEWS}}
    return result
