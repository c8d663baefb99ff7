"""A backfill through Airflow's REST API v2 after the demo's runs: one key per day, no day
skipped or run twice, one run at a time.

A real Airflow (api-server, scheduler, dag-processor; LocalExecutor on SQLite) runs from its
own AIRFLOW_HOME on a free port. Its DAG is one task wide but scheduled exactly as the
platform's daily DAGs are (`daily_interval`, `DAILY_RUNS`) and keyed by the same
`interval_ds`, so the world stays tiny: four days ending yesterday. The demo's own code path
(`run_daily`) runs the first two days; then a dry run and a backfill of all four go through
the REST API, as the UI sends them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kaizen.config import Settings
from kaizen.dags.runner import airflow_environ
from kaizen.ops.layout import Layout
from kaizen.ops.secrets import write_airflow_passwords
from kaizen.pipeline_status import PARTS, airflow_paused, render
from kaizen.seaweed import free_port

DAG_ID = "tiny.daily"
DAYS = 4
TODAY = dt.datetime.now(dt.UTC).date()
DATES = [(TODAY - dt.timedelta(days=DAYS - i)).isoformat() for i in range(DAYS)]
DEMO_DATES = DATES[:2]

# Scheduled like dataops_daily and wrapped in the same run lease; its one task records the day
# `interval_ds` gives it, the run it ran in and when it worked, so the test sees what each run
# processed and that no two runs worked at once.
TINY_DAG = textwrap.dedent("""
    import json
    import time
    from pathlib import Path

    from airflow.sdk import dag, get_current_context, task

    from kaizen.dags.factories import DAILY_RUNS, daily_interval, one_run_at_a_time
    from kaizen.dags.tasks import interval_ds

    MARKS = Path(__file__).resolve().parents[3] / "marks"


    @dag(dag_id="tiny.daily", schedule=daily_interval("0 0 * * *"), **DAILY_RUNS,
         default_args={"retries": 0})
    def daily():
        @task
        def record():
            context = get_current_context()
            day = interval_ds(context)
            began = time.time()
            time.sleep(WORK_SECONDS)  # long enough for two runs to overlap without the lease
            MARKS.mkdir(exist_ok=True)
            (MARKS / f"{day}__{context['run_id']}").write_text(json.dumps([began, time.time()]))

        record()


    one_run_at_a_time(daily(), poke_seconds=3)
""").replace("WORK_SECONDS", "2")

DEMO = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from kaizen.config import Settings
    from kaizen.dags.runner import run_daily
    settings = Settings(_env_file=None, home=Path(sys.argv[1]), airflow_home=Path(sys.argv[2]),
                        dags_folder=Path(sys.argv[3]))
    runs = run_daily("tiny.daily", sys.argv[4].split(","), settings)
    print("OUT " + json.dumps([[r.ds, r.state] for r in runs]))
""")


@dataclass
class Airflow:
    root: Path
    settings: Settings
    env: dict[str, str]
    url: str
    headers: dict[str, str]
    marks: Path
    demo_seconds: float

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        with httpx.Client(timeout=30, trust_env=False) as client:
            return client.request(
                method, f"{self.url}/api/v2{path}", headers=self.headers, **kwargs
            )


def _wait(what: str, check: object, timeout: float = 120) -> object:
    """Poll `check()` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := check():  # type: ignore[operator]
                return value
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    root = tmp_path_factory.mktemp("backfill")
    dags = root / "projects"
    (dags / "tiny" / "dags").mkdir(parents=True)
    (dags / "tiny" / "dags" / "daily.py").write_text(TINY_DAG)
    settings = Settings(
        _env_file=None,
        home=root,
        airflow_home=root / "airflow",
        dags_folder=dags,
        airflow_port=free_port(),
    )
    password = secrets.token_urlsafe(24)
    write_airflow_passwords(Layout.from_settings(settings).airflow_passwords, "admin", password)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(airflow_environ(settings))
    env.update(
        {
            "KAIZEN_DAG_START_DATE": DATES[0],
            "KAIZEN_LAKE_ROOT": str(root / "lake"),  # where the run lease's log lives
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        }
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    # The demo's code path, before any scheduler runs: the first days, then paused DAGs.
    started = time.monotonic()
    demo = subprocess.run(
        [
            sys.executable,
            "-c",
            DEMO,
            str(root),
            str(root / "airflow"),
            str(dags),
            ",".join(DEMO_DATES),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    demo_seconds = time.monotonic() - started
    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-3000:]
    line = next(x for x in reversed(demo.stdout.splitlines()) if x.startswith("OUT "))
    assert json.loads(line[4:]) == [[d, "success"] for d in DEMO_DATES]
    logs = root / "logs"
    logs.mkdir()
    procs = []
    for name, argv in {
        "api-server": [airflow, "api-server"],
        "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
        "dag-processor": [airflow, "dag-processor"],
    }.items():
        with open(logs / f"{name}.log", "wb") as out:
            procs.append(
                subprocess.Popen(
                    argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
    try:
        url = f"http://127.0.0.1:{settings.airflow_port}"

        def token() -> str | None:
            with httpx.Client(timeout=5, trust_env=False) as client:
                r = client.post(
                    f"{url}/auth/token", json={"username": "admin", "password": password}
                )
            return r.json()["access_token"] if r.status_code in (200, 201) else None

        bearer = _wait("the api-server", token)
        yield Airflow(
            root=root,
            settings=settings,
            env=env,
            url=url,
            headers={"Authorization": f"Bearer {bearer}"},
            marks=root / "marks",
            demo_seconds=demo_seconds,
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _midnight(ds: str) -> str:
    return f"{ds}T00:00:00Z"


def _day(stamp: str) -> str:
    return stamp[:10]


def _runs(airflow: Airflow) -> list[dict]:
    r = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"limit": 100})
    assert r.status_code == 200, r.text
    return r.json()["dag_runs"]


def _marks(airflow: Airflow) -> list[tuple[str, str]]:
    return sorted(tuple(p.name.split("__", 1)) for p in airflow.marks.glob("*__*"))  # type: ignore[misc]


def _ended(airflow: Airflow, run_id: str) -> str | None:
    state = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
    return state if state in ("success", "failed") else None


def _lease_log(airflow: Airflow) -> list[dict]:
    """The run lease's records for the DAG, oldest first (kaizen.run_lease)."""
    folder = airflow.root / "lake" / "records" / f"run-lease.{DAG_ID}"
    return [json.loads((d / "record.json").read_text()) for d in sorted(folder.iterdir())]


def _dry_run(airflow: Airflow, reprocess: str) -> list[str]:
    body = {
        "dag_id": DAG_ID,
        "from_date": _midnight(DATES[0]),
        "to_date": _midnight(DATES[-1]),
        "reprocess_behavior": reprocess,
        "max_active_runs": 1,
    }
    r = airflow.api("POST", "/backfills/dry_run", json=body)
    assert r.status_code == 200, r.text
    return [_day(b["logical_date"]) for b in r.json()["backfills"]]


@pytest.mark.airflow
@pytest.mark.slow
def test_a_rest_backfill_after_the_demo_plans_and_runs_every_day_once_one_at_a_time(
    airflow: Airflow,
) -> None:
    started = time.monotonic()
    # The demo keyed each day's run as the scheduler would: logical date = interval start.
    demo_runs = _runs(airflow)
    assert sorted(_day(r["logical_date"]) for r in demo_runs) == DEMO_DATES
    for run in demo_runs:
        assert run["data_interval_start"] == run["logical_date"], run
        assert (
            _day(run["data_interval_end"])
            == (dt.date.fromisoformat(_day(run["logical_date"])) + dt.timedelta(days=1)).isoformat()
        )
    assert [m[0] for m in _marks(airflow)] == DEMO_DATES
    dag = airflow.api("GET", f"/dags/{DAG_ID}").json()
    assert dag["is_paused"] is True  # the demo leaves DAGs as Airflow creates them: paused
    # ... and `kaizen status` says so, with what it means and how to unpause.
    assert airflow_paused(airflow.settings) == [DAG_ID]
    report = {name: {"unreachable": "-"} for name in PARTS}
    report["last_good"] = {"from": "airflow", "rows": [], "paused": [DAG_ID]}
    assert (
        f"  paused: {DAG_ID}: their runs stay queued, a trigger's or a backfill's too; unpause "
        "with `airflow dags unpause DAG_ID` or the UI's toggle"
    ) in render(report)

    # A dry run finds the demo's days by their key: "none" plans exactly the two missing
    # days (keys one day off planned the first day and skipped the third), and "completed"
    # (the behaviour the README asks for) plans every day of the range.
    assert _dry_run(airflow, "none") == DATES[2:]
    assert _dry_run(airflow, "completed") == DATES

    for mark in airflow.marks.glob("*"):
        mark.unlink()
    # A backfill of all days but the last, and beside it a manual run of the last day,
    # triggered as the README says (logical date = interval start, a one-day interval):
    # Airflow counts the two apart (one active run each); the run lease makes them take turns.
    body = {
        "dag_id": DAG_ID,
        "from_date": _midnight(DATES[0]),
        "to_date": _midnight(DATES[-2]),
        "reprocess_behavior": "completed",
        "max_active_runs": 1,
    }
    # The demo's runs (dag.test, in process) took the run lease and gave it back too.
    before = _lease_log(airflow)
    assert [r["holder"] is None for r in before] == [False, True] * len(DEMO_DATES), before
    created = airflow.api("POST", "/backfills", json=body)
    assert created.status_code == 200, created.text
    backfill = created.json()
    assert backfill["max_active_runs"] == 1
    manual = {
        "dag_run_id": "manual_last_day",
        "logical_date": _midnight(DATES[-1]),
        "data_interval_start": _midnight(DATES[-1]),
        "data_interval_end": _midnight(TODAY.isoformat()),
    }
    triggered = airflow.api("POST", f"/dags/{DAG_ID}/dagRuns", json=manual)
    assert triggered.status_code == 200, triggered.text
    # Queued runs of a paused DAG never start, a backfill's included: unpause it.
    unpaused = airflow.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    assert unpaused.status_code == 200, unpaused.text
    assert airflow_paused(airflow.settings) == []

    def completed() -> bool:
        r = airflow.api("GET", f"/backfills/{backfill['id']}")
        return r.status_code == 200 and r.json()["completed_at"] is not None

    _wait("the backfill to complete", completed, timeout=240)
    _wait("the manual run", lambda: _ended(airflow, "manual_last_day"), timeout=120)
    backfill_seconds = time.monotonic() - started

    runs = _runs(airflow)
    by_id = {r["dag_run_id"]: r for r in runs}
    days = sorted(_day(r["logical_date"]) for r in runs)
    assert days == DATES, days  # one run per day: no day skipped, none twice
    assert all(r["state"] == "success" for r in runs), [(r["dag_run_id"], r["state"]) for r in runs]
    types = {r["dag_run_id"]: r["run_type"] for r in runs}
    assert types.pop("manual_last_day") == "manual"
    assert set(types.values()) == {"backfill"}, types
    # Every day processed exactly once, by the run keyed by that very day.
    marks = _marks(airflow)
    assert [m[0] for m in marks] == DATES, marks
    assert all(_day(by_id[run_id]["logical_date"]) == day for day, run_id in marks), marks
    # The backfill's runs one after the other ...
    spans = sorted((by_id[r]["start_date"], by_id[r]["end_date"]) for r in types)
    for (_, ended), (began, _) in itertools.pairwise(spans):
        assert began >= ended, spans
    # ... and no two runs at work at once, the manual one included: the run lease.
    work = sorted(json.loads(p.read_text()) for p in airflow.marks.glob("*__*"))
    for (_, done), (began, _) in itertools.pairwise(work):
        assert began >= done, work
    # The lease's log: taken and given back in turn, once per run.
    log = _lease_log(airflow)[len(before) :]
    holders = [r["holder"] for r in log]
    assert None not in holders[0::2] and set(holders[1::2]) == {None}, log
    assert sorted(holders[0::2]) == sorted(by_id), log

    # A manual trigger keyed by a day, without its interval, gets from Airflow the interval
    # ENDING at that day: it fails before its task does anything (no mark), instead of
    # processing the day before under this day's key.
    trigger = {
        "logical_date": _midnight(TODAY.isoformat()),
        "dag_run_id": "manual_without_interval",
    }
    triggered = airflow.api("POST", f"/dags/{DAG_ID}/dagRuns", json=trigger)
    assert triggered.status_code == 200, triggered.text

    assert _wait("the manual run", lambda: _ended(airflow, "manual_without_interval")) == "failed"
    assert _marks(airflow) == marks
    # It held the lease while it failed, and its teardown gave it back.
    last = _lease_log(airflow)[-2:]
    assert [r["holder"] for r in last] == ["manual_without_interval", None], last
    print(
        f"demo-like runs of {len(DEMO_DATES)} days: {airflow.demo_seconds:.1f}s; "
        f"dry runs + backfill of {DAYS} days through the REST API: {backfill_seconds:.1f}s"
    )
