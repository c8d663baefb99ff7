"""`validate_features`: the gate between computed features and the feature store.

Each staged view of day `ds` runs its feature suite. When all pass they are published to
`features/<view>/ds=<ds>` (what Feast's offline store reads and `materialize` loads); when
one fails, the day's views go to quarantine with the result, nothing is published, and the
stage fails with a one-line reason. Bad features never reach the store.
"""

from __future__ import annotations

from typing import Any

from kaizen.errors import BatchQuarantined, InputError
from kaizen.interval import day_bounds, parse_ds
from kaizen.lake import PUBLISHED, STAGED, Partition, lineage
from kaizen.logs import get_logger
from kaizen.quality import gate
from kaizen.quality.quarantine import quarantine
from kaizen.quality.rules import load_feature_rules
from kaizen.quality.suites import feature_suite_name
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed
from kaizen.stages.validate import as_batch, row_count_bounds

log = get_logger(__name__)


def feature_parameters(rt: Runtime, view: str, ds: str) -> dict[str, Any]:
    columns = list(rt.schema.view(view).dtypes)
    rules = load_feature_rules(rt.settings.expectations_dir / "rules", view, columns)
    low, high = row_count_bounds(rt.lake, view, ds, rules.row_count, layer=PUBLISHED)
    return {"as_of": day_bounds(ds)[1].isoformat(), "row_count_min": low, "row_count_max": high}


def validate_features(ds: str, rt: Runtime | None = None, engine: str | None = None) -> StageResult:
    rt = rt or Runtime()
    ds = parse_ds(ds)
    engine = engine or rt.settings.engine or "pandas"
    result = StageResult("validate_features", ds)
    with timed(result, log, rt):
        staged = {view: Partition(STAGED, view, ds) for view in rt.schema.views}
        missing = [v for v, part in staged.items() if not rt.lake.exists(part)]
        if missing:
            raise InputError(
                f"no staged features for {ds} ({', '.join(missing)}): run `kaizen featurize --ds {ds}` first"
            )
        tables = {view: rt.lake.read_table(part) for view, part in staged.items()}
        verdicts = {
            view: gate.run(
                rt.settings,
                feature_suite_name(view),
                engine,
                as_batch(rt, staged[view], table, engine),
                feature_parameters(rt, view, ds),
                run_name=f"{view}-{ds}",
            )
            for view, table in tables.items()
        }
        result.rows_in = sum(t.num_rows for t in tables.values())
        failed = {view: v for view, v in verdicts.items() if not v.success}
        if failed:
            held = []
            for view, table in tables.items():
                verdict = verdicts[view]
                held.append(
                    quarantine(
                        rt.lake,
                        view,
                        ds,
                        table,
                        meta={
                            **lineage(rt.lake.manifest(staged[view]) or {}),
                            "rows_landed": table.num_rows,
                            "validation": {
                                "suite": verdict.suite,
                                "success": verdict.success,
                                "failed": [f.label for f in verdict.failures],
                            },
                        },
                        result=verdict.result,
                        summary=verdict.summary(f"{view} {ds}"),
                        withdraw=(STAGED, PUBLISHED),
                    )
                )
            for view, verdict in failed.items():
                for failure in verdict.failures:
                    log.warning("%s %s: %s", view, ds, failure.describe())
            result.status, result.rows_quarantined, result.output = (
                "quarantined",
                result.rows_in,
                held[0],
            )
            reasons = "; ".join(f"{view}: {v.headline()}" for view, v in failed.items())
            raise BatchQuarantined(f"features {ds} quarantined, nothing published: {reasons}")
        for view, table in tables.items():
            meta = lineage(rt.lake.manifest(staged[view]) or {})
            meta["validation"] = {
                "suite": verdicts[view].suite,
                "engine": engine,
                "success": True,
                "evaluated": verdicts[view].evaluated,
            }
            rt.lake.write(Partition(PUBLISHED, view, ds), table, meta=meta)
            rt.lake.delete(staged[view])
            rt.lake.delete(Partition("quarantine", view, ds))
        result.rows_out = result.rows_in
        result.output = rt.lake.url(f"{PUBLISHED}/*/ds={ds}")
        log.info(
            "features %s published; Data Docs: %s",
            ds,
            next(
                (v.docs_url for v in verdicts.values() if v.docs_url),
                "not rendered (passing batches)",
            ),
        )
    return result
