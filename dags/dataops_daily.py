"""dataops_daily: a day's raw drops become validated features in the online store.

Per declared source (mapped at run time, so onboarding a source changes no DAG code): wait
for the drop, `ingest` it to bronze, `validate` it into silver or quarantine. Then, once
every source of the day passed: `featurize`, `validate_features` (publish or quarantine),
and (with the Feast repo `apply`-ed) `materialize` the interval into Feast's online store,
which emits the
`credit_risk_features` asset with the date in its extra for training to follow.

A quarantined batch fails its task without retries (the verdict would not change) and
stops that interval's downstream tasks; other sources and intervals go on. Fix the data,
then trigger `replay_batch`, then clear the interval's failed tasks.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, get_current_context, task, task_group

from kaizen.dagkit import (
    DEFAULT_ARGS,
    FEATURES_ASSET_NAME,
    START_DATE,
    interval_ds,
    run_stage,
    runtime,
)

FEATURES = Asset(FEATURES_ASSET_NAME)


@dag(
    dag_id="dataops_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=True,
    max_active_runs=1,  # features are computed from history: one day after the other
    default_args=DEFAULT_ARGS,
    tags=["kaizen", "dataops"],
    doc_md=__doc__,
)
def dataops_daily() -> None:
    @task
    def declared_sources() -> list[str]:
        return runtime().catalog.names

    @task_group(group_id="source", prefix_group_id=False)
    def per_source(source: str) -> None:
        @task.sensor(
            poke_interval=300,
            timeout=int(dt.timedelta(hours=6).total_seconds()),
            mode="reschedule",
            map_index_template="{{ kaizen_source }}",
        )
        def wait_for_raw(source: str) -> bool:
            context = get_current_context()
            context["kaizen_source"] = source  # type: ignore[typeddict-unknown-key]
            from kaizen.stages.ingest import raw_exists

            return raw_exists(source, interval_ds(context), runtime())

        @task(map_index_template="{{ kaizen_source }}")
        def ingest(source: str) -> dict:
            context = get_current_context()
            context["kaizen_source"] = source  # type: ignore[typeddict-unknown-key]
            from kaizen.stages.ingest import ingest as stage

            return run_stage(stage, source, interval_ds(context), runtime())

        @task(map_index_template="{{ kaizen_source }}")
        def validate(source: str) -> dict:
            context = get_current_context()
            context["kaizen_source"] = source  # type: ignore[typeddict-unknown-key]
            from kaizen.stages.validate import validate as stage

            return run_stage(stage, source, interval_ds(context), runtime())

        wait_for_raw(source) >> ingest(source) >> validate(source)

    @task
    def featurize() -> dict:
        from kaizen.stages.featurize import featurize as stage

        return run_stage(stage, interval_ds(get_current_context()), runtime())

    @task
    def validate_features() -> dict:
        from kaizen.stages.validate_features import validate_features as stage

        return run_stage(stage, interval_ds(get_current_context()), runtime())

    @task
    def apply() -> dict:
        """Keep the Feast registry in step with the deployed repo (a no-op when in sync)."""
        from kaizen.featurestore.store import apply as stage

        return run_stage(stage, runtime().settings)

    @task(outlets=[FEATURES])
    def materialize() -> dict:
        context = get_current_context()
        ds = interval_ds(context)
        end = (dt.date.fromisoformat(ds) + dt.timedelta(days=1)).isoformat()
        from kaizen.stages.materialize import materialize as stage

        result = run_stage(stage, ds, end, runtime())
        context["outlet_events"][FEATURES].extra = {"ds": ds, "rows": result["rows_out"]}
        return result

    sources = per_source.expand(source=declared_sources())
    published = sources >> featurize() >> validate_features()
    [published, apply()] >> materialize()


dataops_daily()
