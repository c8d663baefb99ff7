"""What the DAG factories' tasks share. Imports only the standard library and pendulum.

DAG files import this at parse time, so it must stay light: tasks reach the stages lazily
through `runtime(project_dir)`. A test checks that parsing a DAG pulls in no heavy library.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pendulum

# The install's root: KAIZEN_HOME, else the checkout this package was installed from.
KAIZEN_HOME = os.environ.get("KAIZEN_HOME") or str(Path(__file__).resolve().parents[3])
# The first interval a schedule covers; set it to the first day raw data exists.
START_DATE = pendulum.parse(os.environ.get("KAIZEN_DAG_START_DATE", "2026-01-01"), tz="UTC")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "kaizen",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=20),
}


def features_asset_name(project: str) -> str:
    """Emitted once per materialized interval (its date in the event's extra)."""
    return f"{project}.features"


def retrain_asset_name(project: str) -> str:
    """Emitted by the monitor when an actionable breach on clean data asks for a new model."""
    return f"{project}.retrain_request"


def runtime(project_dir: str | Path) -> Any:
    """The stage runtime of the project at `project_dir`, for this task; imported here so
    DAG parsing never pays for it. Its settings are the process's explicit ones for that
    project (`Settings.for_project`): two projects' tasks never share settings."""
    os.environ.setdefault("KAIZEN_HOME", KAIZEN_HOME)
    from kaizen.config import get_settings
    from kaizen.logs import quiet_third_party
    from kaizen.runtime import Runtime

    quiet_third_party()  # Airflow owns the task log's handlers and format
    return Runtime(get_settings().for_project(str(project_dir)))


def run_stage(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run a stage in a task. A verdict on the data (quarantine) or bad input fails the task
    at once: retrying cannot change it. Anything else (a flaky store) is left to the retries.
    The stage returns its result (`.to_dict()`) or already a dict (the XCom)."""
    from airflow.sdk.exceptions import AirflowFailException

    from kaizen.errors import ConfigError, InputError, KaizenError, RawFileError

    try:
        result = fn(*args, **kwargs)
        return result if isinstance(result, dict) else result.to_dict()
    except RawFileError as exc:
        if exc.kind in ("missing", "unreadable"):
            raise
        raise AirflowFailException(str(exc)) from None
    except (ConfigError, InputError) as exc:
        raise AirflowFailException(str(exc)) from None
    except KaizenError as exc:
        if getattr(exc, "exit_code", 2) == 3:  # another writer holds the partition: retry
            raise
        raise AirflowFailException(str(exc)) from None


def triggering_events(context: Any, asset_name: str) -> list[Any]:
    """The asset events of `asset_name` that triggered this run (none for other runs)."""
    events = context.get("triggering_asset_events") or {}
    found: list[Any] = []
    for asset in events:
        if getattr(asset, "name", None) == asset_name:
            found += list(events[asset])
    return found


def interval_ds(context: Any) -> str:
    """The partition date of a daily run: the day its one-day data interval starts (UTC).

    A day's run is keyed by logical date = the start of its data interval: the scheduler and
    a backfill make their runs so, and so does `kaizen.dags.runner.run_daily` (the demo). A
    manual trigger keyed by a day but without that day's interval does not: Airflow gives it
    the interval ENDING at its logical date, so it would process the day before under the
    next day's key, and a backfill of that next day would find the key taken and skip it.
    Such a run fails here, before any stage runs, and without retries (a retry cannot fix
    it). A trigger whose logical date is no day's key (e.g. "now") with an explicit one-day
    interval takes nobody's key and is run."""
    from airflow.sdk.exceptions import AirflowFailException

    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    logical = context.get("logical_date")
    if start is None or end is None:  # asset-triggered and manual runs without an interval
        raise AirflowFailException(
            "this task needs a run with a data interval (a scheduled run or a backfill)"
        )
    start, end = pendulum.instance(start), pendulum.instance(end)
    key = pendulum.instance(logical) if logical is not None else None
    takes_a_days_key = key is not None and key != start and key.time() == start.time()
    if end != start.add(days=1) or takes_a_days_key:
        raise AirflowFailException(
            f"a day's run has logical date = its data interval start and a one-day interval; "
            f"this run has logical date {logical} and interval [{start}, {end}): backfill the "
            "day instead, or trigger it with logical_date = data_interval_start = the day and "
            "data_interval_end = the next day"
        )
    return start.in_timezone("UTC").date().isoformat()


def _run_lease(context: Any, project_dir: str | None) -> Any:
    from kaizen.config import get_settings
    from kaizen.records import RecordStore
    from kaizen.run_lease import RunLease

    settings = runtime(project_dir).settings if project_dir else get_settings()
    return RunLease(RecordStore.from_settings(settings), context["dag"].dag_id)


def take_run_lease(context: Any, project_dir: str | None) -> bool:
    """The first task of a run: True once this run holds its DAG's run lease (`kaizen.run_lease`);
    False while another run of the DAG that still runs holds it (the sensor waits)."""
    dag_id, run_id = context["dag"].dag_id, context["run_id"]

    def running(other: str) -> bool:
        count = context["ti"].get_dr_count(
            dag_id=dag_id, run_ids=[other], states=["queued", "running"]
        )
        return count > 0

    holding = _run_lease(context, project_dir).take(run_id, running)
    if holding.holder == run_id:  # the usual case, kept off the console: the lease's log has it
        return True
    print(
        f"{dag_id}: run {holding.holder} holds the run lease (since {holding.since}); one run "
        "at a time: this run waits for it to end"
    )
    return False


def give_back_run_lease(context: Any, project_dir: str | None) -> None:
    """The teardown of a run: it runs whether the run's work succeeded or failed."""
    dag_id, run_id = context["dag"].dag_id, context["run_id"]
    if not _run_lease(context, project_dir).give_back(run_id):
        print(f"{dag_id}: run {run_id} did not hold the run lease; nothing to give back")
