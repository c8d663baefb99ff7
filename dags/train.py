"""train: the DVC training pipeline, run by the scheduler.

Triggered by the `credit_risk_features` asset (every materialized interval), by the
monitor's `credit_risk_retrain_request` asset (an actionable breach on clean data, at most
once per cooldown) and weekly. A features-triggered run trains only once
`train.retrain_min_new_labels` more invoices have a final label than the newest model was
trained on; a retrain request, a weekly or a manual run always trains.
`repro` runs the same `dvc repro` a data scientist runs (training_set -> train -> evaluate
-> register), waiting for DVC's lock rather than failing on it, one run at a time. It ends
with a registered version at the `candidate` alias, waiting for the promotion gates.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

from kaizen.dagkit import (
    DEFAULT_ARGS,
    FEATURES_ASSET_NAME,
    RETRAIN_ASSET_NAME,
    START_DATE,
    run_stage,
    runtime,
    triggering_events,
)

FEATURES = Asset(FEATURES_ASSET_NAME)
RETRAIN = Asset(RETRAIN_ASSET_NAME)


@dag(
    dag_id="train",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 4 * * 1", timezone="UTC"),
        assets=FEATURES | RETRAIN,
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # with DVC's lock, a second run waits; it never fails on the lock
    default_args={**DEFAULT_ARGS, "retry_delay": dt.timedelta(minutes=5)},
    dagrun_timeout=dt.timedelta(hours=3),
    tags=["kaizen", "training"],
    doc_md=__doc__,
    params={"force": Param(False, type="boolean", description="train even without new labels")},
)
def train() -> None:
    @task.short_circuit
    def new_labels() -> bool:
        context = get_current_context()
        run_type = str(getattr(context["dag_run"].run_type, "value", context["dag_run"].run_type))
        if run_type != "asset_triggered" or context["params"].get("force"):
            return True
        requests = triggering_events(context, RETRAIN_ASSET_NAME)
        if requests:  # the monitor already applied its guards (clean data, cooldown)
            print(f"retrain requested by the monitor: {[e.extra for e in requests]}")
            return True
        from kaizen.stages.training_set import new_labels_since_last_model

        rt = runtime()
        fresh, version = new_labels_since_last_model(rt)
        print(f"{fresh} more final labels than version {version} was trained on")
        return fresh >= rt.params.train.retrain_min_new_labels

    @task(execution_timeout=dt.timedelta(hours=2))
    def repro() -> dict:
        context = get_current_context()
        from kaizen.stages.pipeline import repro as stage

        return run_stage(
            stage, runtime(), airflow_run=f"{context['dag'].dag_id}/{context['run_id']}"
        )

    new_labels() >> repro()


train()
