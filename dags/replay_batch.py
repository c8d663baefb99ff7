"""replay_batch: re-validate one quarantined batch after a fix, from the Airflow UI.

Trigger it with the batch's source and date. If the raw drop was re-landed, the batch is
re-ingested from it; otherwise the quarantined rows are re-validated under the current
suite. On pass the batch is published to silver and leaves quarantine.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from kaizen.dagkit import DEFAULT_ARGS, START_DATE, run_stage, runtime


@dag(
    dag_id="replay_batch",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    default_args={**DEFAULT_ARGS, "retries": 0},
    tags=["kaizen", "dataops", "replay"],
    doc_md=__doc__,
    params={
        "source": Param(
            "orders",
            type="string",
            pattern="^[a-z][a-z0-9_]*$",
            description="a declared source, e.g. customers, orders, payments",
        ),
        "ds": Param(
            "2026-01-01", type="string", format="date", description="the batch's date, YYYY-MM-DD"
        ),
    },
)
def replay_batch() -> None:
    @task
    def replay() -> dict:
        params = get_current_context()["params"]
        from kaizen.stages.replay import replay as stage

        return run_stage(stage, params["source"], params["ds"], runtime())

    replay()


replay_batch()
