"""DAG integrity: every project's DAGs import from the platform's factories, parsing stays
light, two projects' DAGs live side by side in one Airflow, and a real run lands bronze."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from credit_risk.simulate import Fault, simulate
from support import REPO, small_world

from kaizen.config import Settings
from kaizen.dags.runner import airflow_environ
from kaizen.lake import Lake, Partition

HEAVY = [
    "pandas",
    "pyspark",
    "feast",
    "mlflow",
    "great_expectations",
    "sklearn",
    "dvc",
    "pyarrow",
    "numpy",
]
PROJECTS = REPO / "projects"  # the DAGs folder: every project's dags/ (projects/.airflowignore)
DAGS = PROJECTS / "credit_risk" / "dags"
DAG_FILES = sorted(p.name for p in DAGS.glob("*.py"))
DAG_IDS = {
    f"credit_risk.{d}" for d in ("dataops_daily", "training", "promote", "monitor", "replay_batch")
}
FACTORIES = REPO / "src" / "kaizen" / "dags"

PARSE = textwrap.dedent("""
    import json, sys, time
    started = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    heavy = sorted(m for m in sys.argv[2].split(",") if m in sys.modules)
    def assets(d):
        condition = getattr(d.timetable, "asset_condition", None)
        names, todo = [], [condition] if condition is not None else []
        while todo:
            item = todo.pop()
            if hasattr(item, "objects"):
                todo += list(item.objects)
            else:
                names.append(item.name)
        return sorted(names)
    dags = {d.dag_id: {"tags": sorted(d.tags), "catchup": d.catchup, "tasks": sorted(d.task_ids),
                       "retries": min(t.retries for t in d.tasks), "timetable": type(d.timetable).__name__,
                       "max_active_runs": d.max_active_runs,
                       "roots": sorted(t.task_id for t in d.roots),
                       "setups": sorted(t.task_id for t in d.tasks if t.is_setup),
                       "teardowns": sorted(t.task_id for t in d.tasks if t.is_teardown),
                       "assets": assets(d),
                       "outlets": {t.task_id: sorted(o.name for o in t.outlets) for t in d.tasks if t.outlets}}
            for d in bag.dags.values()}
    print(json.dumps({"errors": bag.import_errors, "dags": dags, "heavy": heavy}))
""")


ASSET_EVENTS = textwrap.dedent("""
    import json
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    with create_session() as session:
        asset = session.query(AssetModel).filter(AssetModel.name == "credit_risk.features").one()
        rows = session.query(AssetEvent).filter(AssetEvent.asset_id == asset.id).all()
        print(json.dumps([e.extra for e in rows]))
""")


@pytest.fixture(scope="session")
def airflow_env(_isolated_environment: Path) -> dict[str, str]:
    """One migrated Airflow home for the whole test session."""
    settings = Settings(_env_file=None, home=REPO, airflow_home=_isolated_environment / "airflow")
    env = {**os.environ, **airflow_environ(settings), "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    airflow = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return env


@pytest.fixture(scope="session")
def parsed(airflow_env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PARSE, str(PROJECTS), ",".join(HEAVY)],
        env=airflow_env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.airflow
def test_every_dag_file_imports_without_error(parsed: dict) -> None:
    assert parsed["errors"] == {}
    assert sorted(f"{d.split('.', 1)[1]}.py" for d in DAG_IDS) == DAG_FILES
    assert set(parsed["dags"]) >= DAG_IDS
    for dag_id in DAG_IDS:
        assert "credit_risk" in parsed["dags"][dag_id]["tags"]


def test_a_project_dag_file_is_only_its_factory_call() -> None:
    """Each DAG file names its factory and nothing else: the DAG is the platform's."""
    for name in DAG_FILES:
        tree = ast.parse((DAGS / name).read_text())
        body = [n for n in tree.body if not isinstance(n, ast.Expr | ast.ImportFrom)]
        imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
        assert body == [] and [i.module for i in imports] == ["kaizen.dags.factories"], name
        calls = [
            n.value for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
        ]
        assert [ast.unparse(c) for c in calls] == [f"{imports[0].names[0].name}(__file__)"], name


def test_the_factories_import_only_airflow_sdk_pendulum_and_the_standard_library() -> None:
    """What a DAG file pulls in at parse time, read from the source: the stages and every
    heavy library are imported inside the tasks."""
    allowed = {"airflow.sdk", "pendulum", "kaizen.dags.tasks", "__future__"}
    for name in ("factories.py", "tasks.py", "__init__.py"):
        tree = ast.parse((FACTORIES / name).read_text())
        for node in tree.body:  # module level only: the tasks import lazily
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".", 1)[0]
                assert module in allowed or top in sys.stdlib_module_names, (name, module)


@pytest.mark.airflow
def test_parsing_dags_imports_nothing_heavy(parsed: dict) -> None:
    assert parsed["heavy"] == []


@pytest.mark.airflow
def test_dataops_daily_is_a_daily_interval_with_retries_and_catchup(parsed: dict) -> None:
    dag = parsed["dags"]["credit_risk.dataops_daily"]
    assert dag["timetable"] == "CronDataIntervalTimetable"
    assert dag["catchup"] is True and dag["max_active_runs"] == 1
    assert dag["retries"] >= 2
    assert "dataops" in dag["tags"]
    assert {
        "declared_sources",
        "wait_for_raw",
        "ingest",
        "validate",
        "featurize",
        "validate_features",
        "apply",
        "materialize",
    } <= set(dag["tasks"])
    assert "credit_risk.replay_batch" in parsed["dags"]


SHAPE = textwrap.dedent("""
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    def shape(folder, dag_id):
        bag = DagBag(dag_folder=folder)
        assert not bag.import_errors, bag.import_errors
        d = bag.dags[dag_id]
        return {t.task_id: sorted(t.upstream_task_ids) for t in d.tasks}
    print(json.dumps([shape(sys.argv[1], "credit_risk.dataops_daily"), shape(sys.argv[2], "dataops_floor")]))
""")


@pytest.mark.airflow
def test_bench_row_8s_floor_dag_keeps_dataops_dailys_shape(airflow_env: dict[str, str]) -> None:
    """Row 8-floor is only Airflow's fixed cost if it runs the very same tasks and edges."""
    proc = subprocess.run(
        [sys.executable, "-c", SHAPE, str(PROJECTS), str(REPO / "bench" / "dags")],
        env=airflow_env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    real, floor = json.loads(proc.stdout.strip().splitlines()[-1])
    assert floor == real and len(real) >= 8


LEASE = {"take_run_lease", "give_back_run_lease"}


@pytest.mark.airflow
def test_every_one_run_at_a_time_dag_holds_the_run_lease_from_first_task_to_teardown(
    parsed: dict,
) -> None:
    """max_active_runs=1 is counted apart for a backfill's runs: the lease holds across them."""
    for dag_id, dag in parsed["dags"].items():
        if dag["max_active_runs"] != 1 or not dag_id.startswith("credit_risk."):
            continue
        assert dag["roots"] == ["take_run_lease"], dag_id
        assert dag["setups"] == ["take_run_lease"], dag_id
        assert dag["teardowns"] == ["give_back_run_lease"], dag_id
    wrapped = {d for d, v in parsed["dags"].items() if set(v["tasks"]) >= LEASE}
    assert {
        f"credit_risk.{n}" for n in ("dataops_daily", "monitor", "training", "promote")
    } <= wrapped


@pytest.mark.airflow
def test_monitor_is_daily_and_its_retrain_request_schedules_training(parsed: dict) -> None:
    dag = parsed["dags"]["credit_risk.monitor"]
    assert dag["timetable"] == "CronDataIntervalTimetable" and dag["catchup"] is True
    assert dag["max_active_runs"] == 1
    assert dag["retries"] >= 2 and "monitoring" in dag["tags"]
    assert set(dag["tasks"]) == {"monitor", "retrain_requested", "request_retrain", *LEASE}
    # Only the task behind the short circuit emits the request; training follows it.
    assert dag["outlets"] == {"request_retrain": ["credit_risk.retrain_request"]}
    assert parsed["dags"]["credit_risk.training"]["assets"] == [
        "credit_risk.features",
        "credit_risk.retrain_request",
    ]
    materialize = parsed["dags"]["credit_risk.dataops_daily"]["outlets"]
    assert materialize == {"materialize": ["credit_risk.features"]}


def _parse(folder: Path, env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PARSE, str(folder), ",".join(HEAVY)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.airflow
def test_two_projects_dags_parse_side_by_side_without_clashing(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    """A second project (credit_risk's DAG files copied into another project folder) gets the
    same DAGs under its own ids, assets and tags; only each project's dags/ is parsed."""
    projects = tmp_path / "projects"
    projects.mkdir()
    shutil.copy(PROJECTS / ".airflowignore", projects / ".airflowignore")
    for name in ("credit_risk", "second_project"):
        shutil.copytree(DAGS, projects / name / "dags")
        # Beside dags/, a Python file Airflow would import (it names both words) and fail on.
        (projects / name / "src").mkdir()
        (projects / name / "src" / "boom.py").write_text("# airflow dag\nraise SystemExit(1)\n")
    if (PROJECTS / "churn" / "dags").is_dir():  # the repo's own second project, as it is
        shutil.copytree(PROJECTS / "churn" / "dags", projects / "churn" / "dags")
    parsed = _parse(projects, airflow_env)
    assert parsed["errors"] == {} and parsed["heavy"] == []
    names = [p.name for p in projects.iterdir() if p.is_dir()]
    for name in names:
        ids = {
            f"{name}.{d}"
            for d in ("dataops_daily", "training", "promote", "monitor", "replay_batch")
        }
        assert ids <= set(parsed["dags"]), (name, sorted(parsed["dags"]))
        assert parsed["dags"][f"{name}.training"]["assets"] == [
            f"{name}.features",
            f"{name}.retrain_request",
        ]
        assert all(name in parsed["dags"][i]["tags"] for i in ids)
    assert len(parsed["dags"]) == 5 * len(names)


@pytest.mark.airflow
def test_every_project_in_the_repo_parses_in_one_dagbag(parsed: dict) -> None:
    """Every project with a dags/ folder: its five DAGs, prefixed by its name."""
    projects = sorted(p.parent.name for p in PROJECTS.glob("*/dags") if p.is_dir())
    assert "credit_risk" in projects
    for name in projects:
        assert f"{name}.dataops_daily" in parsed["dags"], name
    assert all(d.split(".", 1)[0] in projects for d in parsed["dags"])


RUN_DAY = textwrap.dedent("""
    import json, sys
    from kaizen.config import get_settings
    from kaizen.dags.runner import run_daily
    [o] = run_daily(sys.argv[1], [sys.argv[2]], get_settings())
    print("OUT " + json.dumps([o.state, o.failed_tasks, o.errors]))
""")


def _run_day(env: dict[str, str], dag_id: str, ds: str) -> tuple[str, list[str], dict, str]:
    """One day of a daily DAG through the demo's runner (the scheduler's run of that day)."""
    proc = subprocess.run(
        [sys.executable, "-c", RUN_DAY, dag_id, ds],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("OUT "))
    state, failed, errors = json.loads(line[4:])
    return state, failed, errors, log


@pytest.mark.airflow
@pytest.mark.slow
def test_a_days_run_lands_and_gates_its_interval(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    raw, lake_root = tmp_path / "raw", tmp_path / "lake"
    simulate(small_world(days=3), str(raw), faults=[Fault.parse("2026-01-02:orders:nulls")])
    env = {
        **airflow_env,
        "KAIZEN_RAW_ROOT": str(raw),
        "KAIZEN_LAKE_ROOT": str(lake_root),
        "KAIZEN_GX_UNCOMMITTED_DIR": str(tmp_path / "gx"),
        # `apply` runs in the first run too: never into the project's own data/feast.
        "KAIZEN_FEAST_DATA_DIR": str(tmp_path / "feast"),
    }
    airflow = Path(sys.executable).with_name("airflow")
    lake = Lake(str(lake_root))
    # `airflow dags test DAG 2026-01-03` keys its run by 01-03 but gives it the interval
    # ENDING then, [01-02, 01-03): the run fails before any stage, and the lake stays empty.
    keyed_by_end = subprocess.run(
        [str(airflow), "dags", "test", "credit_risk.dataops_daily", "2026-01-03"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert keyed_by_end.returncode != 0
    assert "logical date = its data interval start" in keyed_by_end.stdout + keyed_by_end.stderr
    assert all(lake.partitions("bronze", s) == [] for s in ("customers", "orders", "payments"))
    # The day's run as the scheduler and a backfill make it: logical date 01-02, [01-02, 01-03).
    state, failed, errors, log = _run_day(env, "credit_risk.dataops_daily", "2026-01-02")
    # Every source lands in bronze and is gated; the bad orders batch is quarantined and
    # fails only its own branch, the other sources reach silver.
    for source in ("customers", "payments"):
        assert lake.partitions("silver", source) == ["2026-01-02"], log[-3000:]
        assert lake.manifest(Partition("silver", source, "2026-01-02"))["rows"] > 0
    assert lake.partitions("silver", "orders") == []
    assert lake.partitions("quarantine", "orders") == ["2026-01-02"]
    assert state == "failed" and "validate[orders]=failed" in failed, failed
    assert "expect_column_values_to_not_be_null(customer_id)" in errors["validate[orders]"]
    assert "Data Docs:" in log  # the task log says where to open them
    # Upstream re-lands a corrected drop; an operator replays the batch from Airflow.
    simulate(small_world(days=3), str(raw), overwrite=True)
    replayed = subprocess.run(
        [
            str(airflow),
            "dags",
            "test",
            "credit_risk.replay_batch",
            "--conf",
            '{"source": "orders", "ds": "2026-01-02"}',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replayed.returncode == 0, (replayed.stdout + replayed.stderr)[-3000:]
    assert lake.partitions("silver", "orders") == ["2026-01-02"]
    assert lake.partitions("quarantine", "orders") == []
    # The day's run again: now every source passes, features are published and
    # materialized, and the features asset carries the date for training to follow.
    state, failed, errors, log = _run_day(env, "credit_risk.dataops_daily", "2026-01-02")
    assert (state, failed) == ("success", []), (errors, log[-3000:])
    assert lake.partitions("features", "customer_profile") == ["2026-01-02"]
    events = subprocess.run(
        [sys.executable, "-c", ASSET_EVENTS], env=env, capture_output=True, text=True, timeout=120
    )
    assert events.returncode == 0, events.stderr[-2000:]
    assert '"ds": "2026-01-02"' in events.stdout


FAILING_DAG = textwrap.dedent("""
    import pendulum
    from airflow.sdk import dag, task

    @dag(dag_id="fails", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
    def fails():
        @task(retries=0)
        def given():
            return 1

        @task(retries=0)
        def boom(x):
            raise ValueError(f"the reason is {x + 41}")

        boom(given())

    fails()
""")

RUN_FAILING = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from kaizen.config import Settings
    from kaizen.dags.runner import run_once
    settings = Settings(_env_file=None, home=Path(sys.argv[1]), airflow_home=Path(sys.argv[2]),
                        dags_folder=Path(sys.argv[3]))
    o = run_once("fails", settings)
    print("OUT " + json.dumps([o.state, o.failed_tasks, o.errors, o.failures()]))
""")


@pytest.mark.airflow
@pytest.mark.slow
def test_a_failed_task_reports_its_error(airflow_env: dict[str, str], tmp_path: Path) -> None:
    """`dag.test` keeps no task logs: the outcome carries each failed task's exception."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "fails.py").write_text(FAILING_DAG)
    env = {**airflow_env, "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    home = airflow_env["AIRFLOW_HOME"]
    proc = subprocess.run(
        [sys.executable, "-c", RUN_FAILING, str(REPO), home, str(dags)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("OUT "))
    state, failed, errors, failures = json.loads(line[4:])
    assert (state, failed) == ("failed", ["boom=failed"])
    assert errors == {"boom": "ValueError: the reason is 42"}
    assert failures == "boom=failed: ValueError: the reason is 42"


RUN_BESIDE_A_RUNNING_RUN = textwrap.dedent("""
    import sys
    from pathlib import Path
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from kaizen.config import Settings
    from kaizen.dags.runner import run_once
    from kaizen.errors import KaizenError
    settings = Settings(_env_file=None, home=Path(sys.argv[1]), airflow_home=Path(sys.argv[2]),
                        dags_folder=Path(sys.argv[3]))
    run_once("fails", settings)
    with create_session() as session:  # as if the scheduler were running that run now
        newest = session.query(DagRun).filter(DagRun.dag_id == "fails").order_by(DagRun.id.desc())
        newest.first().state = "running"
        print("RUNS", session.query(DagRun).filter(DagRun.dag_id == "fails").count())
    try:
        run_once("fails", settings)
    except KaizenError as exc:
        print("OUT " + str(exc))
    with create_session() as session:  # ended again: other tests run "fails" too
        print("RUNS", session.query(DagRun).filter(DagRun.dag_id == "fails").count())
        session.query(DagRun).filter(DagRun.state == "running").update({"state": "failed"})
""")


@pytest.mark.airflow
@pytest.mark.slow
def test_the_runner_never_starts_a_run_beside_a_running_one(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    """`dag.test` runs past the scheduler's max_active_runs: the runner checks it itself."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "fails.py").write_text(FAILING_DAG)
    env = {**airflow_env, "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_BESIDE_A_RUNNING_RUN,
            str(REPO),
            airflow_env["AIRFLOW_HOME"],
            str(dags),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    [refused] = [x[4:] for x in proc.stdout.splitlines() if x.startswith("OUT ")]
    assert re.fullmatch(
        r"fails already has 1 run\(s\) running \(manual__[^)]+\): one run at a time; "
        r"wait for it to end, then run again",
        refused,
    ), refused
    before, after = [x for x in proc.stdout.splitlines() if x.startswith("RUNS ")]
    assert before == after  # the refused run was never created


def test_a_stage_fails_its_task_at_once_on_bad_input_and_is_retried_otherwise() -> None:
    """Retrying a bad params file or a quarantined batch cannot help: fail now. `apply`
    returns a plain dict and goes through the same rule (it used to retry a ConfigError,
    which held `dags test` on its backoff while everything downstream had already failed)."""
    from airflow.sdk.exceptions import AirflowFailException

    from kaizen.dags.tasks import run_stage
    from kaizen.errors import ConfigError

    def bad_params() -> dict:
        raise ConfigError("params.yaml: parameters file not found")

    def flaky() -> dict:
        raise ConnectionError("redis is restarting")

    assert run_stage(lambda: {"entities": 1}) == {"entities": 1}
    with pytest.raises(AirflowFailException, match="parameters file not found"):
        run_stage(bad_params)
    with pytest.raises(ConnectionError):  # left to the task's retries
        run_stage(flaky)
    source = (FACTORIES / "factories.py").read_text()
    assert "return run_stage(stage, runtime(folder).settings)" in source  # the apply task


DAY = "2026-01-02T00:00:00+00:00"


@pytest.mark.parametrize(
    ("start", "end", "logical", "ds"),
    [
        (DAY, "2026-01-03T00:00:00+00:00", DAY, "2026-01-02"),  # scheduled, backfill, demo
        (DAY, "2026-01-03T00:00:00+00:00", "2026-12-07T16:03:11+00:00", "2026-01-02"),  # "now"
        (
            "2026-01-02T05:00:00+00:00",
            "2026-01-03T05:00:00+00:00",
            "2026-01-02T05:00:00+00:00",
            "2026-01-02",
        ),  # monitor's 05:00 intervals
        # `airflow dags test DAG 2026-01-02`, a trigger keyed by the day without its interval:
        ("2026-01-01T00:00:00+00:00", DAY, DAY, None),
        (DAY, "2026-01-04T00:00:00+00:00", DAY, None),  # not one day
        (None, None, None, None),  # no interval at all
    ],
)
def test_a_days_run_is_keyed_by_its_interval_start_or_fails_at_once(
    start: str | None, end: str | None, logical: str | None, ds: str | None
) -> None:
    import pendulum
    from airflow.sdk.exceptions import AirflowFailException

    from kaizen.dags.tasks import interval_ds

    def at(value: str | None) -> object:
        return None if value is None else pendulum.parse(value)

    context = {"data_interval_start": at(start), "data_interval_end": at(end)}
    context["logical_date"] = at(logical)
    if ds is not None:
        assert interval_ds(context) == ds
    else:
        with pytest.raises(AirflowFailException, match="data interval"):
            interval_ds(context)


SIDE_BY_SIDE = textwrap.dedent("""
    import datetime as dt, json, sys
    from kaizen.config import get_settings
    from kaizen.dags.runner import dag_id, run_daily
    from kaizen.pipeline_status import quarantined
    from kaizen.runtime import Runtime

    ds = sys.argv[1]
    base = get_settings()  # no project selected: each in turn, in one Airflow home
    worlds = {  # small worlds; credit_risk's orders drop of the day has null keys
        "credit_risk": ({"customers": 150}, [f"{ds}:orders:nulls"]),
        "churn": ({"users": 80}, []),
    }
    out = {}
    for name, (world, faults) in worlds.items():
        rt = Runtime(base.for_project(name))
        rt.project.hook("generator")(rt.project_params, rt.settings.raw_root,
                                     start=dt.date.fromisoformat(ds), days=1, faults=faults, **world)
        [run] = run_daily(dag_id(name, "dataops_daily"), [ds], rt.settings)
        out[name] = {
            "state": run.state,
            "failed": run.failed_tasks,
            "lake": rt.settings.lake_root,
            "quarantined": [(r["source"], r["ds"]) for r in quarantined(rt)["rows"]],
            "published": {v: rt.lake.partitions("features", v) for v in rt.schema.views},
        }
    print("SIDE " + json.dumps(out))
""")


@pytest.mark.airflow
@pytest.mark.slow
def test_a_quarantined_batch_in_one_project_never_blocks_another(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    """credit_risk's DataOps run quarantines a bad drop and fails; churn's run of the same day,
    in the same Airflow, publishes its features and sees nothing of the other's quarantine."""
    ds = "2026-01-01"
    env = {k: v for k, v in airflow_env.items() if k != "KAIZEN_PROJECT"}
    for key, folder in (
        ("RAW_ROOT", "raw"),
        ("LAKE_ROOT", "lake"),
        ("FEAST_DATA_DIR", "feast"),
        ("GX_UNCOMMITTED_DIR", "gx"),
    ):
        env[f"KAIZEN_{key}"] = str(tmp_path / "{project}" / folder)
    env["KAIZEN_GX_DATA_DOCS"] = "failures"
    proc = subprocess.run(
        [sys.executable, "-c", SIDE_BY_SIDE, ds],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("SIDE "))
    credit, churn = (json.loads(line[5:])[n] for n in ("credit_risk", "churn"))
    assert credit["state"] == "failed" and any("validate" in t for t in credit["failed"]), credit
    assert credit["quarantined"] == [["orders", ds]]
    assert churn["state"] == "success" and churn["failed"] == [], churn
    assert churn["quarantined"] == []
    assert churn["published"] and all(days == [ds] for days in churn["published"].values())
    assert credit["lake"] == str(tmp_path / "credit_risk" / "lake") != churn["lake"]
