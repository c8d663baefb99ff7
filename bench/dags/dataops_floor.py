"""dataops_floor: `dataops_daily`'s shape with no work in it, for bench row 8's floor.

The same task ids, the same mapping over the declared sources and the same dependencies,
each task returning at once: what `airflow dags test` costs before any stage runs (the CLI,
the in-process execution API, one supervisor and XCom round per task). The bench checks the
task ids against `credit_risk.dataops_daily` before it trusts the number.
"""

from __future__ import annotations

import os

from airflow.sdk import CronDataIntervalTimetable, dag, task, task_group

from kaizen.dags.tasks import START_DATE


@dag(
    dag_id="dataops_floor",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    tags=["kaizen", "bench"],
    doc_md=__doc__,
)
def dataops_floor() -> None:
    @task
    def declared_sources() -> list[str]:
        from kaizen.dags.tasks import KAIZEN_HOME, runtime

        project = os.environ.get("KAIZEN_PROJECT") or f"{KAIZEN_HOME}/projects/credit_risk"
        return runtime(project).catalog.names  # as many mapped sources as the real DAG

    @task_group(group_id="source", prefix_group_id=False)
    def per_source(source: str) -> None:
        @task.sensor(poke_interval=300, timeout=60, mode="reschedule")
        def wait_for_raw(source: str) -> bool:
            return True

        @task
        def ingest(source: str) -> dict:
            return {"source": source}

        @task
        def validate(source: str) -> dict:
            return {"source": source}

        wait_for_raw(source) >> ingest(source) >> validate(source)

    @task
    def featurize() -> dict:
        return {}

    @task
    def validate_features() -> dict:
        return {}

    @task
    def apply() -> dict:
        return {}

    @task
    def materialize() -> dict:
        return {}

    # The run lease's two tasks (kaizen.dags.factories.one_run_at_a_time), with no lease.
    @task.sensor(poke_interval=300, timeout=60, mode="reschedule")
    def take_run_lease() -> bool:
        return True

    @task
    def give_back_run_lease() -> None:
        return None

    taken = take_run_lease()
    names = declared_sources()
    sources = per_source.expand(source=names)
    published = sources >> featurize() >> validate_features()
    applied = apply()
    taken >> [names, applied]
    [published, applied] >> materialize() >> give_back_run_lease().as_teardown(setups=taken)


dataops_floor()
