"""The one local platform of the test session, shared by tests/integration/test_platform.py
and test_platform_heal.py: `kaizen up` costs over a minute here (most of it Airflow's db
migrate), so the two files no longer start one each.

Its DAGs folder is every project's (as `make up` parses them) plus one probe DAG the heal
tests run. Tests that stop it (`kaizen down`) leave it stopped; the `platform` fixture starts
it again in the same home for the next test that asks (a second start migrates nothing).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import PROBE_DAG_ID, REPO, Platform, kaizen

PROBE_SLOW_S = 20  # long enough to kill the scheduler in the middle of it
# retries=0: a task lost with the scheduler fails the run instead of hiding behind a retry;
# each task appends one line per execution, so a repeat shows.
PROBE_DAG = """
import pathlib, time
import pendulum
from airflow.sdk import dag, task

LOG = pathlib.Path({log!r})


def note(line):
    with LOG.open("a") as out:
        out.write(line + "\\n")


@dag(dag_id={dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
     catchup=False, default_args={{"retries": 0}})
def heal_probe():
    @task
    def slow():
        note("slow start")
        time.sleep({slow_s})
        note("slow end")

    @task
    def after():
        note("after")

    slow() >> after()


heal_probe()
"""


@pytest.fixture(scope="session")
def _local_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """`kaizen up` in a temporary project home on free ports; `kaizen down` at the end."""
    from kaizen.config import Settings
    from kaizen.ops.layout import Layout
    from kaizen.seaweed import free_port

    home = tmp_path_factory.mktemp("platform-home")
    (home / ".env").write_text("# the developer's own line, which must survive\nKAIZEN_X=1\n")
    # projects/ as Airflow sees it (its .airflowignore is relative to the DAGs folder, so
    # the projects are linked one level down, not the folder itself) plus the probe DAG.
    dags, task_log = home / "dags", home / "task-lines.txt"
    dags.mkdir()
    shutil.copy(REPO / "projects" / ".airflowignore", dags / ".airflowignore")
    for project in sorted(p for p in (REPO / "projects").iterdir() if p.is_dir()):
        (dags / project.name).symlink_to(project, target_is_directory=True)
    probe = PROBE_DAG.format(log=str(task_log), dag_id=PROBE_DAG_ID, slow_s=PROBE_SLOW_S)
    (dags / f"{PROBE_DAG_ID}.py").write_text(probe)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAIZEN_", "AIRFLOW"))}
    env.update(
        {
            "KAIZEN_HOME": str(home),
            "KAIZEN_DAGS_FOLDER": str(dags),
            "KAIZEN_RAW_ROOT": str(home / "{project}" / "raw"),
            "KAIZEN_LAKE_ROOT": str(home / "{project}" / "lake"),
            "KAIZEN_PROJECTS_DIR": str(REPO / "projects"),
            "KAIZEN_PROJECT": "credit_risk",
            "KAIZEN_FEAST_DATA_DIR": str(home / "{project}" / "feast"),
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    for name in ("AIRFLOW", "MLFLOW", "FEATURE_SERVER", "PREDICTION_API"):
        env[f"KAIZEN_{name}_PORT"] = str(free_port())
    started = time.monotonic()
    up = kaizen(env, home, "up", "--timeout", "150", timeout=200)
    up_seconds = time.monotonic() - started
    try:
        assert up.returncode == 0, f"kaizen up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        settings = Settings(_env_file=home / ".env", home=home)
        assert settings.airflow_admin_password and settings.mlflow_admin_password
        yield Platform(
            home=home,
            env=env,
            layout=Layout(home / ".kaizen"),
            airflow_home=home / ".airflow",
            airflow=f"http://127.0.0.1:{env['KAIZEN_AIRFLOW_PORT']}",
            mlflow=f"http://127.0.0.1:{env['KAIZEN_MLFLOW_PORT']}",
            airflow_password=settings.airflow_admin_password.get_secret_value(),
            mlflow_password=settings.mlflow_admin_password.get_secret_value(),
            feature_server_token=settings.feature_server_token.get_secret_value(),
            up_output=up.stdout + up.stderr,
            up_seconds=up_seconds,
            task_log=task_log,
        )
    finally:
        kaizen(env, home, "down", timeout=60)


LAST_USER = pytest.StashKey[str]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    users = [
        item.nodeid
        for item in items
        if "platform" in getattr(item, "fixturenames", ()) and here in item.path.parents
    ]
    if users:
        config.stash[LAST_USER] = users[-1]


@pytest.fixture
def platform(_local_platform: Platform, request: pytest.FixtureRequest) -> Iterator[Platform]:
    """The session's platform, running: started again if an earlier test stopped it, and
    stopped after the last test that uses it (not at the end of the session: it would load
    the cores through every later test, e.g. when a heal test failed before its `down`)."""
    p = _local_platform
    if not p.supervisor_alive():
        started = time.monotonic()
        up = p.kaizen("up", "--timeout", "150", timeout=200)
        assert up.returncode == 0, f"kaizen up again:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        print(f"kaizen up again (after a test stopped it): {time.monotonic() - started:.1f}s")
    yield p
    if request.node.nodeid == request.config.stash.get(LAST_USER, None) and p.supervisor_alive():
        p.kaizen("down", timeout=60)
