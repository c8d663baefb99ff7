"""promote: the promotion gates on a schedule.

`promote_staging` judges the newest `candidate` (if any) and makes it the `challenger` or
rejects it; `promote_production` judges the `challenger` on its live quality and makes it
the `champion`, demotes it, or waits for more evidence. Every alias move and its reason is
in the ledger (`kaizen ledger`); `kaizen rollback` undoes a champion change.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronTriggerTimetable, dag, task

from kaizen.dagkit import DEFAULT_ARGS, START_DATE, run_stage, runtime


@dag(
    dag_id="promote",
    schedule=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 1},
    dagrun_timeout=dt.timedelta(hours=1),
    tags=["kaizen", "promotion"],
    doc_md=__doc__,
)
def promote() -> None:
    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def has_candidate() -> bool:
        from kaizen.promotion.models import by_alias

        rt = runtime()
        return by_alias(rt, rt.params.register_.candidate_alias) is not None

    @task
    def promote_staging() -> dict:
        from kaizen.promotion.staging import staging
        from kaizen.stages.result import run_step

        rt = runtime()
        return run_stage(run_step, "promote_staging", "candidate -> challenger", rt, staging, rt)

    @task(trigger_rule="none_failed")
    def promote_production() -> dict:
        from kaizen.promotion.production import production
        from kaizen.stages.result import run_step

        rt = runtime()
        return run_stage(
            run_step, "promote_production", "challenger -> champion", rt, production, rt
        )

    has_candidate() >> promote_staging() >> promote_production()


promote()
