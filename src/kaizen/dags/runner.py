"""Run Kaizen's DAGs through Airflow from Python: the demo, the tests and the benchmarks.

A DAG is named `<project>.<dag>` (`dag_id(project, dag)`), e.g. `<project>.training`;
only that project's `dags/` is parsed to find it. Each run is a real DagRun in Airflow's
metadata database (`dag.test`, in this process), so it shows in the UI afterwards exactly
like a scheduled run. Airflow reads its configuration when first imported, so
`airflow_environ()` must be applied before anything imports it.

A day's run is keyed the way the scheduler and a backfill key it: logical date = the start
of the day's data interval (see `day_run`), so a backfill finds the demo's runs by day.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaizen.config import Settings
from kaizen.errors import KaizenError
from kaizen.interval import parse_ds
from kaizen.logs import get_logger

log = get_logger(__name__)


def dag_id(project: str, dag: str) -> str:
    """The id of a project's DAG: `<project>.<dag>` (see kaizen.dags.factories)."""
    return f"{project}.{dag}"


def dag_folder(dag_id: str, settings: Settings) -> Path:
    """Where to parse for `dag_id`: its project's dags/ for a `<project>.<dag>` id under the
    DAGs folder (one project's import errors never stop another's runs), else the folder."""
    project, sep, _ = dag_id.partition(".")
    folder = Path(settings.dags_folder) / project / "dags"
    return folder if sep and folder.is_dir() else Path(settings.dags_folder)


def airflow_environ(settings: Settings) -> dict[str, str]:
    """The environment every Airflow process of this project runs with.

    The same for `dag.test` here, for `kaizen up`'s api-server, scheduler, dag-processor and
    triggerer, and for the tasks they run. No secret is in it: the admin password reaches
    Airflow through the passwords file (written by `kaizen up`, mode 600).
    """
    from kaizen.ops.layout import HOST, Layout

    home = settings.airflow_home
    api = f"http://{HOST}:{settings.airflow_port}"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # projects/.airflowignore is a regexp: Airflow's glob rules emit a DeprecationWarning
        # (pathspec's GitWildMatchPattern) on every parse of every DAG file.
        "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": "regexp",
        # Sized for two cores: more workers only queue for the same CPUs.
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", "4"),
        # SQLite is enough for LocalExecutor in Airflow 3 (it has no SequentialExecutor left);
        # point this variable at Postgres to scale out.
        "AIRFLOW__CORE__EXECUTOR": os.environ.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": os.environ.get(
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}"
        ),
        # The api-server (UI, REST and the execution API the task runners call) on loopback.
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        # Every UI and API call authenticated: one admin, its password in a 0600 file.
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow_admin_username}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
            Layout.from_settings(settings).airflow_passwords
        ),
        "KAIZEN_HOME": str(settings.home),
        "GX_ANALYTICS_ENABLED": "false",
    }


def prepare_airflow(settings: Settings) -> None:
    """Point this process at the project's Airflow and migrate its database once."""
    env = airflow_environ(settings)
    for key, value in env.items():
        os.environ.setdefault(key, value)
    if "airflow" in sys.modules and os.environ["AIRFLOW_HOME"] != env["AIRFLOW_HOME"]:
        log.warning(
            "Airflow was imported before its home was set; using %s", os.environ["AIRFLOW_HOME"]
        )
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version

    stamp = home / f".migrated-{version('apache-airflow')}"
    if stamp.exists():
        return
    started = time.perf_counter()
    airflow = Path(sys.executable).with_name("airflow")
    proc = subprocess.run(
        [str(airflow), "db", "migrate"],
        env={**os.environ},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise KaizenError(f"airflow db migrate failed in {home}: {tail[0]}")
    stamp.touch()
    log.info("Airflow metadata database ready in %s (%.1fs)", home, time.perf_counter() - started)


@dataclass
class DagRunOutcome:
    dag_id: str
    ds: str
    state: str
    seconds: float
    failed_tasks: list[str]
    # Each failed task's exception ("task[index]": "Type: message"): `dag.test` keeps no task
    # log files, so without this a failed run says which task failed but never why.
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state == "success"

    def failures(self) -> str:
        """The failed tasks with their errors, e.g. `repro=failed: KaizenError: dvc ...`."""
        return ", ".join(
            f"{task}: {self.errors[task.split('=', 1)[0]]}"
            if task.split("=", 1)[0] in self.errors
            else task
            for task in self.failed_tasks
        )


def run_once(dag_id: str, settings: Settings, conf: dict[str, Any] | None = None) -> DagRunOutcome:
    """Trigger one manual run of a DAG (with `conf` as its params) and wait for it."""
    prepare_airflow(settings)
    from airflow.dag_processing.dagbag import DagBag

    folder = dag_folder(dag_id, settings)
    dag = DagBag(dag_folder=str(folder)).get_dag(dag_id)
    if dag is None:
        raise KaizenError(f"no DAG {dag_id!r} in {folder}")
    _one_at_a_time(dag_id)
    started = time.perf_counter()
    with _task_errors() as errors:
        dag_run = dag.test(run_conf=conf or {})
    outcome = _outcome(dag_id, "manual", dag_run, time.perf_counter() - started, errors)
    log.info("%s: %s in %.1fs", dag_id, outcome.state, outcome.seconds)
    return outcome


def run_daily(
    dag_id: str,
    dates: list[str],
    settings: Settings,
    progress: Callable[[DagRunOutcome, int, int], None] | None = None,
) -> list[DagRunOutcome]:
    """Run a daily-interval DAG once per date, oldest first, each as the run the scheduler or
    a backfill makes for that day (`day_run`): its logical date is the interval's start."""
    prepare_airflow(settings)
    from airflow.dag_processing.dagbag import DagBag

    folder = dag_folder(dag_id, settings)
    bag = DagBag(dag_folder=str(folder))
    if bag.import_errors:
        first = next(iter(bag.import_errors.items()))
        raise KaizenError(f"DAG import error in {first[0]}: {first[1].strip().splitlines()[-1]}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise KaizenError(f"no DAG {dag_id!r} in {folder}")
    outcomes: list[DagRunOutcome] = []
    ordered = sorted(parse_ds(d) for d in dates)
    for ds in ordered:
        info = day_run(dag, ds)
        _one_at_a_time(dag_id)
        started = time.perf_counter()
        with _task_errors() as errors, _as_scheduled(info):
            dag_run = dag.test(logical_date=info.logical_date, run_after=info.run_after)
        if dag_run.logical_date != info.logical_date or (
            dag_run.data_interval_start != info.data_interval.start
        ):  # pragma: no cover - a later Airflow changed how dag.test makes its run
            raise KaizenError(
                f"{dag_id} {ds}: the run got logical date {dag_run.logical_date} and interval "
                f"start {dag_run.data_interval_start}, not {info.logical_date}"
            )
        outcomes.append(_outcome(dag_id, ds, dag_run, time.perf_counter() - started, errors))
        log.info("%s %s: %s in %.1fs", dag_id, ds, outcomes[-1].state, outcomes[-1].seconds)
        if progress is not None:
            progress(outcomes[-1], len(outcomes), len(ordered))
    return outcomes


def day_run(dag: Any, ds: str) -> Any:
    """The DagRunInfo of the day `ds`: the DAG's own timetable asked for its first interval
    starting on that day, exactly as the scheduler's catch-up and a backfill ask it
    (`iter_dagrun_infos_between`). For a daily `CronDataIntervalTimetable` it is
    [ds, ds + 1 day) with logical date ds and run_after ds + 1 day."""
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    day = pendulum.parse(parse_ds(ds), tz="UTC")
    timetable = coerce_to_core_timetable(dag.timetable)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=day, latest=None, catchup=True),
    )
    if info is None or info.data_interval is None or info.logical_date.date() != day.date():
        raise KaizenError(f"{dag.dag_id} has no data interval starting on {ds}")
    return info


@contextlib.contextmanager
def _as_scheduled(info: Any) -> Iterator[None]:
    """Make `dag.test`'s run the scheduler's run of that day.

    `dag.test` infers a run's data interval as a manual trigger does (the interval that ENDS
    at its logical date), so a run keyed by the day would process the day before; and it
    stamps the run's start_date with the logical date. Its helper that creates the run is
    given the day's interval, run_after and the wall-clock start for this call only."""
    from airflow.models import dagrun as dagrun_module

    original = dagrun_module.get_or_create_dagrun

    def scheduled(**kwargs: Any) -> Any:
        kwargs.update(
            data_interval=info.data_interval,
            run_after=info.run_after,
            start_date=dt.datetime.now(dt.UTC),
        )
        return original(**kwargs)

    dagrun_module.get_or_create_dagrun = scheduled
    try:
        yield
    finally:
        dagrun_module.get_or_create_dagrun = original


def _one_at_a_time(dag_id: str) -> None:
    """`dag.test` runs in this process, past the scheduler's max_active_runs: refuse to start
    while Airflow has a run of the same DAG running (a scheduled run, a trigger, a backfill)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        running = DagRun.find(dag_id=dag_id, state=DagRunState.RUNNING, session=session)
        ids = [r.run_id for r in running]
    if ids:
        raise KaizenError(
            f"{dag_id} already has {len(ids)} run(s) running ({', '.join(ids[:3])}): one run "
            "at a time; wait for it to end, then run again"
        )


@contextlib.contextmanager
def _task_errors() -> Iterator[dict[tuple[str, int], str]]:
    """Collect the exception of every task `dag.test` runs that ends with one.

    `dag.test` runs each task through `airflow.sdk.definitions.dag._run_task`, which gets the
    task's error back from Airflow's in-process supervisor and drops it. Wrapping that
    function for the duration of one run keeps it; if a later Airflow renames it, runs still
    work and report no errors."""
    errors: dict[tuple[str, int], str] = {}
    try:
        from airflow.sdk.definitions import dag as dag_module
    except ImportError:  # pragma: no cover - Airflow moved the module
        yield errors
        return
    original = getattr(dag_module, "_run_task", None)
    if original is None:  # pragma: no cover
        yield errors
        return

    def recording(*args: Any, **kwargs: Any) -> Any:
        ti = kwargs.get("ti")
        try:
            result = original(*args, **kwargs)
        except Exception as exc:
            if ti is not None:
                errors[(ti.task_id, ti.map_index)] = _describe(exc)
            raise
        error = getattr(result, "error", None)
        if ti is not None and error is not None:
            errors[(ti.task_id, ti.map_index)] = _describe(error)
        return result

    dag_module._run_task = recording
    try:
        yield errors
    finally:
        dag_module._run_task = original


def _describe(exc: BaseException) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _outcome(
    dag_id: str,
    ds: str,
    dag_run: Any,
    seconds: float,
    errors: dict[tuple[str, int], str] | None = None,
) -> DagRunOutcome:
    failed, reasons = [], {}
    for ti in dag_run.get_task_instances():
        if ti.state not in ("success", "skipped"):
            index = f"[{ti.rendered_map_index or ti.map_index}]" if ti.map_index >= 0 else ""
            failed.append(f"{ti.task_id}{index}={ti.state}")
            if reason := (errors or {}).get((ti.task_id, ti.map_index)):
                reasons[f"{ti.task_id}{index}"] = reason
                log.error("%s %s: task %s%s failed: %s", dag_id, ds, ti.task_id, index, reason)
    state = getattr(dag_run.state, "value", dag_run.state)
    return DagRunOutcome(dag_id, ds, str(state), round(seconds, 2), failed, reasons)
