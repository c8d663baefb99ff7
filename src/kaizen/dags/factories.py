"""The platform's DAGs, built for the project whose `dags/` file calls the factory.

A project's DAG file is two lines: `from kaizen.dags.factories import training` and
`training(__file__)`. The project is the folder above that `dags/` (its name prefixes the
DAG id, `<project>.<dag>`, and the asset names, `<project>.features` and
`<project>.retrain_request`), so every project gets the same DAGs without their ids or
assets ever clashing in one Airflow. Imports only airflow.sdk, pendulum and the standard
library: the stages are imported inside the tasks, never when a DAG is parsed.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
    task_group,
)

from kaizen.dags.tasks import (
    DEFAULT_ARGS,
    START_DATE,
    features_asset_name,
    give_back_run_lease,
    interval_ds,
    retrain_asset_name,
    run_stage,
    runtime,
    take_run_lease,
    triggering_events,
)

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def project_of(dag_file: str) -> tuple[str, str]:
    """(the project's folder, its name) of a DAG file at projects/<name>/dags/<file>.py."""
    folder = Path(dag_file).resolve().parents[1]
    if not NAME.match(folder.name):
        raise ValueError(
            f"{dag_file}: a DAG file lives in <project>/dags/ and the project's name is "
            f"lower_snake_case (got {folder.name!r})"
        )
    return str(folder), folder.name


def _doc(text: str, name: str) -> str:
    return text.replace("<project>", name)


def daily_interval(cron: str) -> CronDataIntervalTimetable:
    """The schedule of every daily DAG keyed by its data interval (dataops_daily, monitor):
    one-day intervals in UTC. Airflow keys such a run by logical date = its interval's start;
    the scheduler's runs, a backfill's, the demo's (`kaizen.dags.runner.run_daily`) and
    `interval_ds` all follow it. Used with DAILY_RUNS."""
    return CronDataIntervalTimetable(cron, timezone="UTC")


# Caught up from START_DATE, one run at a time. Airflow counts max_active_runs over scheduled
# and manual runs only: a backfill has its own `max_active_runs` (1 is the UI's default, the
# REST API's is 10), and runs of two sources side by side; `one_run_at_a_time` closes that.
DAILY_RUNS: dict[str, Any] = {"start_date": START_DATE, "catchup": True, "max_active_runs": 1}

# A run waiting for the run lease looks again this often, holding no worker slot meanwhile,
# and gives up (the run fails, saying so) after LEASE_WAIT.
LEASE_POKE_SECONDS = 30.0
LEASE_WAIT = dt.timedelta(hours=12)


def one_run_at_a_time(
    built: DAG, project_dir: str | None = None, poke_seconds: float = LEASE_POKE_SECONDS
) -> DAG:
    """Every run of `built` holds its DAG's run lease (`kaizen.run_lease`) from its first task
    to its last, whoever started it (scheduler, trigger, backfill): a run that finds another
    one holding it waits in `take_run_lease`. `give_back_run_lease` is the run's teardown: it
    runs when the work failed too, and clearing a task re-takes the lease with it."""
    roots, leaves = list(built.roots), list(built.leaves)
    with built:
        # Taking is idempotent, so a failed try costs nothing to retry; and one can fail with
        # no fault of its own: a scheduler slower than the poke interval to hear that a try
        # rescheduled itself takes the next try, already running, for one killed externally.
        @task.sensor(
            task_id="take_run_lease",
            poke_interval=poke_seconds,
            mode="reschedule",
            timeout=int(LEASE_WAIT.total_seconds()),
            retries=5,
            retry_delay=dt.timedelta(seconds=poke_seconds),
            retry_exponential_backoff=False,
        )
        def take() -> bool:
            return take_run_lease(get_current_context(), project_dir)

        @task(task_id="give_back_run_lease")
        def give_back() -> None:
            give_back_run_lease(get_current_context(), project_dir)

        taken = take()
        taken >> roots
        leaves >> give_back().as_teardown(setups=taken)
    return built


def dataops_daily(dag_file: str) -> DAG:
    """<project>.dataops_daily: a day's raw drops become validated features in the online store.

    Per declared source (mapped at run time, so onboarding a source changes no DAG code): wait
    for the drop, `ingest` it to bronze, `validate` it into silver or quarantine. Then, once
    every source of the day passed: `featurize`, `validate_features` (publish or quarantine),
    and (with the Feast repo `apply`-ed) `materialize` the interval into Feast's online store,
    which emits the `<project>.features` asset with the date in its extra for training to
    follow.

    A quarantined batch fails its task without retries (the verdict would not change) and
    stops that interval's downstream tasks; other sources and intervals go on. Fix the data,
    then trigger `<project>.replay_batch`, then clear the interval's failed tasks.
    """
    folder, name = project_of(dag_file)
    features = Asset(features_asset_name(name))

    @dag(
        dag_id=f"{name}.dataops_daily",
        schedule=daily_interval("0 0 * * *"),
        **DAILY_RUNS,  # features are computed from history: one day after the other
        default_args=DEFAULT_ARGS,
        tags=["kaizen", name, "dataops"],
        doc_md=_doc(dataops_daily.__doc__ or "", name),
    )
    def build() -> None:
        @task
        def declared_sources() -> list[str]:
            return runtime(folder).catalog.names

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

                return raw_exists(source, interval_ds(context), runtime(folder))

            @task(map_index_template="{{ kaizen_source }}")
            def ingest(source: str) -> dict:
                context = get_current_context()
                context["kaizen_source"] = source  # type: ignore[typeddict-unknown-key]
                from kaizen.stages.ingest import ingest as stage

                return run_stage(stage, source, interval_ds(context), runtime(folder))

            @task(map_index_template="{{ kaizen_source }}")
            def validate(source: str) -> dict:
                context = get_current_context()
                context["kaizen_source"] = source  # type: ignore[typeddict-unknown-key]
                from kaizen.stages.validate import validate as stage

                return run_stage(stage, source, interval_ds(context), runtime(folder))

            wait_for_raw(source) >> ingest(source) >> validate(source)

        @task
        def featurize() -> dict:
            from kaizen.stages.featurize import featurize as stage

            return run_stage(stage, interval_ds(get_current_context()), runtime(folder))

        @task
        def validate_features() -> dict:
            from kaizen.stages.validate_features import validate_features as stage

            return run_stage(stage, interval_ds(get_current_context()), runtime(folder))

        @task
        def apply() -> dict:
            """Keep the Feast registry in step with the deployed repo (a no-op when in sync)."""
            from kaizen.featurestore.store import apply as stage

            return run_stage(stage, runtime(folder).settings)

        @task(outlets=[features])
        def materialize() -> dict:
            context = get_current_context()
            ds = interval_ds(context)
            end = (dt.date.fromisoformat(ds) + dt.timedelta(days=1)).isoformat()
            from kaizen.stages.materialize import materialize as stage

            result = run_stage(stage, ds, end, runtime(folder))
            context["outlet_events"][features].extra = {"ds": ds, "rows": result["rows_out"]}
            return result

        sources = per_source.expand(source=declared_sources())
        published = sources >> featurize() >> validate_features()
        [published, apply()] >> materialize()

    return one_run_at_a_time(build(), folder)


def training(dag_file: str) -> DAG:
    """<project>.training: the project's DVC training pipeline, run by the scheduler.

    Triggered by the `<project>.features` asset (every materialized interval), by the
    monitor's `<project>.retrain_request` asset (an actionable breach on clean data, at most
    once per cooldown) and weekly. A features-triggered run trains only once
    `train.retrain_min_new_labels` more labels are final than the newest model was trained
    on; a retrain request, a weekly or a manual run always trains. `repro` runs the same
    `dvc repro` of the project's dvc.yaml a data scientist runs (training_set -> train ->
    evaluate -> register), waiting for DVC's lock rather than failing on it, one run at a
    time. It ends with a registered version at the `candidate` alias, waiting for the
    promotion gates.
    """
    folder, name = project_of(dag_file)
    features = Asset(features_asset_name(name))
    retrain = Asset(retrain_asset_name(name))

    @dag(
        dag_id=f"{name}.training",
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable("0 4 * * 1", timezone="UTC"),
            assets=features | retrain,
        ),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # with DVC's lock, a second run waits; it never fails on the lock
        default_args={**DEFAULT_ARGS, "retry_delay": dt.timedelta(minutes=5)},
        dagrun_timeout=dt.timedelta(hours=3),
        tags=["kaizen", name, "training"],
        doc_md=_doc(training.__doc__ or "", name),
        params={"force": Param(False, type="boolean", description="train even without new labels")},
    )
    def build() -> None:
        @task.short_circuit
        def new_labels() -> bool:
            context = get_current_context()
            run = context["dag_run"]
            run_type = str(getattr(run.run_type, "value", run.run_type))
            if run_type != "asset_triggered" or context["params"].get("force"):
                return True
            requests = triggering_events(context, retrain.name)
            if requests:  # the monitor already applied its guards (clean data, cooldown)
                print(f"retrain requested by the monitor: {[e.extra for e in requests]}")
                return True
            from kaizen.stages.training_set import new_labels_since_last_model

            rt = runtime(folder)
            fresh, version = new_labels_since_last_model(rt)
            print(f"{fresh} more final labels than version {version} was trained on")
            return fresh >= rt.params.train.retrain_min_new_labels

        @task(execution_timeout=dt.timedelta(hours=2))
        def repro() -> dict:
            context = get_current_context()
            from kaizen.stages.repro import repro as stage

            run = f"{context['dag'].dag_id}/{context['run_id']}"
            return run_stage(stage, runtime(folder), airflow_run=run)

        new_labels() >> repro()

    return one_run_at_a_time(build(), folder)


def promote(dag_file: str) -> DAG:
    """<project>.promote: the promotion gates on a schedule.

    `promote_staging` judges the newest `candidate` (if any) and makes it the `challenger` or
    rejects it; `promote_production` judges the `challenger` on its live quality and makes it
    the `champion`, demotes it, or waits for more evidence. Every alias move and its reason is
    in the ledger (`kaizen -p <project> ledger`); `kaizen -p <project> rollback` undoes a
    champion change.
    """
    folder, name = project_of(dag_file)

    @dag(
        dag_id=f"{name}.promote",
        schedule=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={**DEFAULT_ARGS, "retries": 1},
        dagrun_timeout=dt.timedelta(hours=1),
        tags=["kaizen", name, "promotion"],
        doc_md=_doc(promote.__doc__ or "", name),
    )
    def build() -> None:
        @task.short_circuit(ignore_downstream_trigger_rules=False)
        def has_candidate() -> bool:
            from kaizen.model.versions import by_alias

            rt = runtime(folder)
            return by_alias(rt, rt.params.register_.candidate_alias) is not None

        @task
        def promote_staging() -> dict:
            from kaizen.promotion.staging import staging
            from kaizen.stages.result import run_step

            rt = runtime(folder)
            return run_stage(
                run_step, "promote_staging", "candidate -> challenger", rt, staging, rt
            )

        @task(trigger_rule="none_failed")
        def promote_production() -> dict:
            from kaizen.promotion.production import production
            from kaizen.stages.result import run_step

            rt = runtime(folder)
            return run_stage(
                run_step, "promote_production", "challenger -> champion", rt, production, rt
            )

        has_candidate() >> promote_staging() >> promote_production()

    return one_run_at_a_time(build(), folder)


def monitor(dag_file: str) -> DAG:
    """<project>.monitor: every day, is the champion still right about the world it serves?

    `monitor` runs the stage of the same name for the day (data and prediction drift against
    the champion's holdout, the late-label rate, live quality of champion and challenger,
    skew, freshness): it writes the day's HTML report to the lake and MLflow (its address is
    in the task log) and alerts each breach once. When it recorded a retrain request (an
    actionable breach, no quarantined data in the window, outside the cooldown),
    `request_retrain` emits the `<project>.retrain_request` asset, which
    `<project>.training` also follows. Monitoring never moves an alias: the retrained
    version waits at `candidate` for the promotion gates.
    """
    folder, name = project_of(dag_file)
    retrain = Asset(retrain_asset_name(name))

    @dag(
        dag_id=f"{name}.monitor",
        # 05:00 UTC: after the day's DataOps run (00:00) has published its features; in
        # order, one at a time: trends, alert episodes and the cooldown follow the days.
        schedule=daily_interval("0 5 * * *"),
        **DAILY_RUNS,
        default_args=DEFAULT_ARGS,
        dagrun_timeout=dt.timedelta(hours=1),
        tags=["kaizen", name, "monitoring"],
        doc_md=_doc(monitor.__doc__ or "", name),
    )
    def build() -> None:
        @task
        def monitor() -> dict:
            from kaizen.stages.monitor import monitor as stage

            result = run_stage(stage, interval_ds(get_current_context()), runtime(folder))
            print(f"monitoring report: {result['details']['report']}")
            return result

        @task.short_circuit
        def retrain_requested(result: dict) -> bool:
            asked = result["details"]["retrain"]
            print(f"retrain requested: {asked['requested']} ({asked.get('why', '')})")
            return bool(asked["requested"])

        @task(outlets=[retrain])
        def request_retrain(result: dict) -> dict:
            context = get_current_context()
            asked = result["details"]["retrain"]
            extra: dict[str, Any] = {"ds": result["interval"], "breaches": asked["breaches"]}
            context["outlet_events"][retrain].extra = extra
            return extra

        result = monitor()
        retrain_requested(result) >> request_retrain(result)

    return one_run_at_a_time(build(), folder)


def replay_batch(dag_file: str) -> DAG:
    """<project>.replay_batch: re-validate one quarantined batch after a fix, from the UI.

    Trigger it with the batch's source (one of kaizen.yaml's `sources`) and date. If the raw
    drop was re-landed, the batch is re-ingested from it; otherwise the quarantined rows are
    re-validated under the current suite. On pass the batch is published to silver and
    leaves quarantine.
    """
    folder, name = project_of(dag_file)

    @dag(
        dag_id=f"{name}.replay_batch",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        default_args={**DEFAULT_ARGS, "retries": 0},
        tags=["kaizen", name, "dataops", "replay"],
        doc_md=_doc(replay_batch.__doc__ or "", name),
        params={
            "source": Param(
                type="string",
                pattern="^[a-z][a-z0-9_]*$",
                description=f"a source declared in {name}'s kaizen.yaml `sources`",
            ),
            "ds": Param(
                START_DATE.date().isoformat(),
                type="string",
                format="date",
                description="the batch's date, YYYY-MM-DD",
            ),
        },
    )
    def build() -> None:
        @task
        def replay() -> dict:
            params = get_current_context()["params"]
            from kaizen.stages.replay import replay as stage

            return run_stage(stage, params["source"], params["ds"], runtime(folder))

        replay()

    return build()
