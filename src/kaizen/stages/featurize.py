"""`featurize`: the project's feature views for day `ds`, computed from silver.

Inputs are the validated history the declaration asks for (`features.inputs`: every
partition up to `ds`, or the trailing N days), handed to the project's transform for the
engine. Every source must have passed the gate for `ds` itself; an earlier day still in
quarantine is left out and named in the log. The result is stamped with the day's as-of
instant and cast to the Feast repo's schema, then written to `features_staged`;
`validate_features` publishes it to `features`, where Feast reads it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pyarrow as pa

from kaizen.errors import ConfigError, InputError
from kaizen.interval import parse_ds
from kaizen.lake import STAGED, Partition
from kaizen.logs import get_logger
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed
from kaizen.transforms.contract import EVENT_TIMESTAMP, as_of, conform

log = get_logger(__name__)


def _window(rt: Runtime, source: str, ds: str) -> list[str]:
    """The silver dates `source` contributes to day `ds` (kaizen.yaml `features.inputs`)."""
    dates = [d for d in rt.lake.partitions("silver", source) if d <= ds]
    reach = rt.project.declaration.features.inputs[source]
    if reach != "all":
        first = (dt.date.fromisoformat(ds) - dt.timedelta(days=reach)).isoformat()
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
    transform = rt.project.transform(engine)
    if engine == "pandas":
        return transform(_inputs_pandas(rt, windows), ds, rt.project_params)
    from kaizen.spark import get_spark

    spark = get_spark(rt.settings)
    frames: dict[str, Any] = {}
    for source, dates in windows.items():
        if rt.lake.is_local:
            files = [f for d in dates for f in rt.lake.file_urls(Partition("silver", source, d))]
            frames[source] = spark.read.parquet(*files)
        else:  # no s3a connector here: through Arrow, in one chunk (see kaizen.spark)
            table = rt.lake.read_many("silver", source, dates).combine_chunks()
            frames[source] = spark.createDataFrame(table.to_pandas())
    views = transform(frames, ds, rt.project_params)
    zone = spark.conf.get("spark.sql.session.timeZone")
    out = {}
    for name, frame in views.items():
        pdf = frame.toPandas()
        for column in pdf.columns:  # Spark hands back naive wall-clock times in its zone
            if pd.api.types.is_datetime64_dtype(pdf[column]) and pdf[column].dt.tz is None:
                pdf[column] = pdf[column].dt.tz_localize(zone)
        out[name] = pdf
    return out


def shaped(rt: Runtime, views: dict[str, pd.DataFrame], ds: str) -> dict[str, pd.DataFrame]:
    """The transform's frames as published: stamped with as_of(ds), cast to the repo's
    schema, sorted by the join keys; one line naming what the transform got wrong."""
    schema = rt.schema
    where = rt.project.where(f"features.transforms ({ds})")
    unknown = sorted(set(views) - set(schema.views))
    missing = sorted(set(schema.views) - set(views))
    if unknown or missing:
        raise ConfigError(
            f"{where}: returned views {sorted(views)}; the Feast repo declares "
            f"{sorted(schema.views)} (missing {missing}, unknown {unknown})"
        )
    out = {}
    for name, view in schema.views.items():
        frame = views[name].assign(**{EVENT_TIMESTAMP: as_of(ds)})
        try:
            out[name] = conform(frame, view.dtypes, sort_by=list(view.join_keys))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: view {name}: {exc}") from None
        if out[name].duplicated(list(view.join_keys)).any():
            raise ConfigError(f"{where}: view {name} has more than one row per entity")
    return out


def featurize(ds: str, rt: Runtime | None = None, engine: str | None = None) -> StageResult:
    rt = rt or Runtime()
    ds = parse_ds(ds)
    engine = engine or rt.settings.engine or "pandas"
    result = StageResult("featurize", ds)
    with timed(result, log, rt):
        sources = list(rt.project.declaration.features.inputs)
        for source in sources:
            if not rt.lake.exists(Partition("silver", source, ds)):
                held = rt.lake.exists(Partition("quarantine", source, ds))
                why = (
                    "it is in quarantine (replay it once fixed)"
                    if held
                    else "run ingest and validate first"
                )
                raise InputError(f"cannot featurize {ds}: no silver {source} for that day; {why}")
        windows = {source: _window(rt, source, ds) for source in sources}
        reach = rt.project.declaration.features.inputs
        for source, dates in windows.items():
            since = rt.lake.partitions("silver", source)[0] if reach[source] == "all" else None
            gaps = _gaps(dates, ds, since)
            if gaps:
                log.warning(
                    "featurize %s: %s has no silver for %s (quarantined?); computed without them",
                    ds,
                    source,
                    ", ".join(gaps[:10]) + (" ..." if len(gaps) > 10 else ""),
                )
        views = shaped(rt, _compute(rt, windows, ds, engine), ds)
        inputs = {
            s: {"first": d[0], "last": d[-1], "partitions": len(d)} for s, d in windows.items()
        }
        outputs = []
        for view in views:
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
        result.rows_out = max(len(v) for v in views.values())
        result.output = rt.lake.url(f"{STAGED}/*/ds={ds}")
        result.details = {"engine": engine, "views": {v: len(f) for v, f in views.items()}}
    return result
