"""monitor: every day, is the champion still right about the world it serves?

`monitor` runs the stage of the same name for the day (data and prediction drift against the
champion's holdout, the 30-day late rate, live quality of champion and challenger, skew,
freshness): it writes the day's HTML report to the lake and MLflow (its address is in the
task log) and alerts each breach once. When it recorded a retrain request (an actionable
breach, no quarantined data in the window, outside the cooldown), `request_retrain` emits the
`credit_risk_retrain_request` asset, which the train DAG also follows. Monitoring never
moves an alias: the retrained version waits at `candidate` for the promotion gates.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, get_current_context, task

from kaizen.dagkit import (
    DEFAULT_ARGS,
    RETRAIN_ASSET_NAME,
    START_DATE,
    interval_ds,
    run_stage,
    runtime,
)

RETRAIN = Asset(RETRAIN_ASSET_NAME)


@dag(
    dag_id="monitor",
    # 05:00 UTC: after the day's DataOps run (00:00) has published its features.
    schedule=CronDataIntervalTimetable("0 5 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=True,  # trends, alert episodes and the cooldown follow the days in order
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    dagrun_timeout=dt.timedelta(hours=1),
    tags=["kaizen", "monitoring"],
    doc_md=__doc__,
)
def monitor_dag() -> None:
    @task
    def monitor() -> dict:
        from kaizen.stages.monitor import monitor as stage

        result = run_stage(stage, interval_ds(get_current_context()), runtime())
        print(f"monitoring report: {result['details']['report']}")
        return result

    @task.short_circuit
    def retrain_requested(result: dict) -> bool:
        retrain = result["details"]["retrain"]
        print(f"retrain requested: {retrain['requested']} ({retrain.get('why', '')})")
        return bool(retrain["requested"])

    @task(outlets=[RETRAIN])
    def request_retrain(result: dict) -> dict:
        context = get_current_context()
        retrain = result["details"]["retrain"]
        extra = {"ds": result["interval"], "breaches": retrain["breaches"]}
        context["outlet_events"][RETRAIN].extra = extra
        return extra

    result = monitor()
    retrain_requested(result) >> request_retrain(result)


monitor_dag()
