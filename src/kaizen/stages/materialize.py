"""`materialize`: load published features of a data interval into Feast's online store.

Keyed by the interval `[start, end)` of partition dates, plus `materialize_overlap_days`
before `start` so a late recompute of a recent day reaches the store. Days are loaded oldest
first, each view in chunks of `materialize_chunk_rows`, so memory stays bounded however
long the range. The online stores keep the newer-or-equal value (see
`kaizen.featurestore.online_stores`), so an older window loaded after a newer one never
rolls a value back, and a rerun after a crash converges to the same state.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from kaizen.errors import InputError
from kaizen.interval import date_range, parse_ds
from kaizen.lake import PUBLISHED, Partition
from kaizen.logs import get_logger
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed

log = get_logger(__name__)


def interval_days(start: str, end: str, overlap_days: int) -> list[str]:
    """Partition dates of [start - overlap, end)."""
    first = dt.date.fromisoformat(parse_ds(start))
    last = dt.date.fromisoformat(parse_ds(end)) - dt.timedelta(days=1)
    if last < first:
        raise InputError(f"empty interval [{start}, {end}): end must be after start")
    return date_range(first - dt.timedelta(days=overlap_days), last)


def unseen(table: pa.Table, keys: list[str], seen: pa.Table | None) -> pa.Table:
    """The rows of `table` whose join keys are not in `seen` (one key or several)."""
    if seen is None or not seen.num_rows:
        return table
    if len(keys) == 1:
        return table.filter(pc.invert(pc.is_in(table.column(keys[0]), value_set=seen.column(0))))
    marked = seen.append_column("_seen", pa.repeat(True, seen.num_rows))
    joined = table.join(marked, keys, join_type="left outer")
    return (
        joined.filter(pc.is_null(joined.column("_seen")))
        .drop_columns(["_seen"])
        .select(table.column_names)
    )


def materialize(start: str, end: str, rt: Runtime | None = None) -> StageResult:
    from kaizen.featurestore.arrow_rows import write_batch
    from kaizen.featurestore.store import open_store

    rt = rt or Runtime()
    fs = rt.params.feature_store
    days = interval_days(start, end, fs.materialize_overlap_days)
    result = StageResult("materialize", f"[{parse_ds(start)}, {parse_ds(end)})")
    with timed(result, log, rt):
        store = open_store(rt.settings)
        loaded, missing = [], []
        # Newest day first: an entity's newest row in the interval is the one the store must
        # end up with, so rows of entities already written are skipped (older days then cost
        # only their new entities). Memory: one day plus the set of entity keys.
        views = rt.schema.views
        written: dict[str, pa.Table | None] = dict.fromkeys(views)
        for index, ds in enumerate(reversed(days), 1):
            for view in views:
                part = Partition(PUBLISHED, view, ds)
                if not rt.lake.exists(part):
                    missing.append(f"{view} {ds}")
                    continue
                table = rt.lake.read_table(part)
                result.rows_in += table.num_rows
                keys = list(views[view].join_keys)
                fresh = unseen(table, keys, written[view])
                for batch in fresh.to_batches(max_chunksize=fs.materialize_chunk_rows):
                    write_batch(store, view, batch)
                seen = fresh.select(keys)
                written[view] = (
                    seen if written[view] is None else pa.concat_tables([written[view], seen])
                )
                result.rows_out += fresh.num_rows
            loaded.append(ds)
            if index % 10 == 0 or index == len(days):
                log.info(
                    "materialize: %d/%d days read (back to %s), %d rows written of %d",
                    index,
                    len(days),
                    ds,
                    result.rows_out,
                    result.rows_in,
                )
        if missing:
            log.warning(
                "materialize: no published features for %s",
                ", ".join(missing[:9]) + (" ..." if len(missing) > 9 else ""),
            )
        if not result.rows_in:
            raise InputError(
                f"nothing to materialize in {result.interval}: no published features (run featurize and validate_features)"
            )
        # Record the interval in the registry, as `feast materialize` would.
        first = dt.datetime.combine(dt.date.fromisoformat(days[0]), dt.time(), dt.UTC)
        last = dt.datetime.combine(
            dt.date.fromisoformat(days[-1]), dt.time(), dt.UTC
        ) + dt.timedelta(days=2)
        for view in views:
            store.registry.apply_materialization(
                store.get_feature_view(view), store.project, first, last, commit=True
            )
        result.output = f"feast online store ({rt.settings.feast_online_store})"
        result.details = {"days": loaded, "missing": missing}
    return result
