"""Real clients against one running platform: a headless browser and Airflow's REST API v2.

One module-scoped world: a fresh clone of the working tree holding the session's labelled
world (45 days of raw drops, silver and published features), a model trained by the DVC
stages' functions and promoted through both gates to `champion`, and one monitor run (the
drift report); then `kaizen up` on it (Airflow's api-server, scheduler, dag-processor and
triggerer with their metadata in a fresh PostgreSQL database, MLflow's basic-auth server, the
feature server and the prediction API, on free loopback ports, generated logins) and
`kaizen down` at the end. Against it:

- a headless Chromium (Debian's, driven by playwright; every request outside loopback and
  files refused) logs in to the Airflow UI, triggers `dataops_daily` for one day and a
  backfill of two through the UI and watches every task succeed there, finds `credit_risk`
  and its `champion` alias in the MLflow UI and opens the GX Data Docs page of the triggered
  day and the drift report; screenshots go to `test-artifacts/ui/`;
- a plain HTTP client trades the password for a JWT and triggers a run, creates a backfill
  and reads task instance states until success, as an external client would.

`KAIZEN_DAG_START_DATE` is today: unpausing `dataops_daily` catches nothing up (its first
interval ends at midnight), so every run is one a client asked for, on days whose raw drops
exist. Manual runs therefore carry a logical date of now and the day as an explicit data
interval: Airflow gives a manual run dated before the start date no task instances at all,
and that empty run "succeeds". A run that straddles midnight UTC would meet one scheduled
run for the new day, whose sensor waits for a drop that never lands.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import expect
from support import IN_CI, LABELLED_DAYS, LABELLED_START, REPO, clone_working_tree

from kaizen.seaweed import free_port

KAIZEN = str(Path(sys.executable).with_name("kaizen"))
expect.set_options(timeout=60_000)  # two busy cores: a React page's first render takes seconds
ARTIFACTS = REPO / "test-artifacts" / "ui"

PREPARE = textwrap.dedent("""
    import datetime as dt, json, time
    from pathlib import Path
    from kaizen.config import get_settings
    from kaizen.featurestore.store import apply
    from kaizen.model.versions import by_alias
    from kaizen.promotion.production import production
    from kaizen.promotion.staging import staging
    from kaizen.runtime import Runtime
    from kaizen.stages.evaluate import evaluate
    from kaizen.stages.materialize import materialize
    from kaizen.stages.monitor import monitor
    from kaizen.stages.register import register
    from kaizen.stages.train import train
    from kaizen.stages.training_set import training_set

    rt = Runtime(get_settings())
    world = rt.project_params.simulate
    dates = [(world.start + dt.timedelta(days=i)).isoformat() for i in range(world.days)]
    data = rt.settings.require_project() / "data"  # the DVC stages' paths (its dvc.yaml)
    ts, model, ev = data / "training" / "training_set.parquet", data / "model", data / "eval"
    seconds, last = {}, time.perf_counter()

    def lap(name):
        global last
        now = time.perf_counter()
        seconds[name], last = round(now - last, 1), now

    apply(rt.settings)
    lap("apply")
    # The online store as the DataOps runs leave it: the first challenger's load test asks it.
    end = (world.start + dt.timedelta(days=world.days)).isoformat()
    materialize(dates[0], end, rt)
    lap("materialize")
    training_set(ts, rt)
    lap("training_set")
    train(ts, model, rt)
    lap("train")
    evaluate(ts, model, ev, rt)
    lap("evaluate")
    register(ts, model, ev, data / "registered.json", rt)
    lap("register")
    staged, decided = staging(rt), production(rt)
    lap("promote")
    report = monitor(dates[-1], rt).details["report"]
    lap("monitor")
    print("PREPARED " + json.dumps({
        "dates": dates, "champion": by_alias(rt, "champion"), "report": report, "seconds": seconds,
        "gates": [staged.verdict, staged.reasons, decided.verdict, decided.reasons],
    }))
""")


@dataclass
class World:
    home: Path
    env: dict[str, str]
    dates: list[str]
    champion: str
    report: str
    airflow: str
    mlflow: str
    airflow_password: str
    mlflow_password: str
    data_docs: Path
    platform_log: Path  # every platform process's output, one prefixed line each


def _clone(root: Path, world: Path) -> Path:
    """A clone of the working tree whose raw drops and lake are the labelled world's (the
    session's 45 days through the gate and the feature gate) and whose params say so."""
    clone = clone_working_tree(root / "clone")
    project = clone / "projects" / "credit_risk"
    for name in ("raw", "lake"):
        shutil.copytree(world / name, project / "data" / name)
    params_file = project / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["project"]["simulate"].update(
        {
            "start": LABELLED_START.isoformat(),
            "days": LABELLED_DAYS,
            "customers": 2000,
            "terms_days": 0,
            "seed": 21,
        }
    )
    params["train"]["holdout_days"] = 5
    # The staging gate's in-process latency budget measures this machine's load (see test_e2e).
    params["promote"]["budget"]["cpu_p99_ms"] = 5000
    # Smaller, faster versions of what these tests do not look at: the model only has to
    # pass the gates, its explanations and ONNX form are other tests' business.
    params["train"]["max_iter"] = 60
    params["evaluate"]["permutation_repeats"] = 1
    params["explain"].update({"sample_rows": 20, "background_rows": 10})
    params["register"]["onnx"]["enabled"] = False
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    return clone


def _environ(clone: Path, airflow_db: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAIZEN_", "AIRFLOW", "MLFLOW_", "FEAST_", "AWS_"))
    }
    today = dt.datetime.now(dt.UTC).date()
    env.update(
        {
            "KAIZEN_HOME": str(clone),
            "KAIZEN_PROJECT": "credit_risk",  # the feature server's; the API serves both
            # The schedule starts today: unpausing dataops_daily catches nothing up (its first
            # interval ends at midnight), so every run is one a client asked for.
            "KAIZEN_DAG_START_DATE": today.isoformat(),
            # Airflow's metadata on PostgreSQL: on SQLite, the api-server's writes from the UI
            # (a backfill, the audit log) failed with database errors while the scheduler and
            # four task processes wrote too.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            "KAIZEN_AIRFLOW_PORT": str(free_port()),
            "KAIZEN_MLFLOW_PORT": str(free_port()),
            "KAIZEN_FEATURE_SERVER_PORT": str(free_port()),
            "KAIZEN_PREDICTION_API_PORT": str(free_port()),
            "GX_ANALYTICS_ENABLED": "false",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
    )
    return env


def build_world(root: Path, labelled: Path, airflow_db: str) -> Iterator[World]:
    started = time.perf_counter()
    clone = _clone(root, labelled)
    env = _environ(clone, airflow_db)
    proc = subprocess.run(
        [sys.executable, "-c", PREPARE],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("PREPARED "))
    prepared = json.loads(line.removeprefix("PREPARED "))
    print(f"world prepared in {time.perf_counter() - started:.0f}s: {prepared['seconds']}")
    assert prepared["champion"], f"the prepared world has no champion: {prepared['gates']}"

    started = time.perf_counter()
    up = subprocess.run(
        [KAIZEN, "up", "--timeout", "240"],
        env=env,
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        assert up.returncode == 0, f"kaizen up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        print(f"kaizen up: healthy in {time.perf_counter() - started:.0f}s")
        from kaizen.config import Settings
        from kaizen.ops.layout import Layout

        settings = Settings(_env_file=clone / ".env", home=clone)
        assert settings.airflow_admin_password and settings.mlflow_admin_password
        yield World(
            home=clone,
            env=env,
            dates=prepared["dates"],
            champion=str(prepared["champion"]),
            report=prepared["report"],
            airflow=f"http://127.0.0.1:{env['KAIZEN_AIRFLOW_PORT']}",
            mlflow=f"http://127.0.0.1:{env['KAIZEN_MLFLOW_PORT']}",
            airflow_password=settings.airflow_admin_password.get_secret_value(),
            mlflow_password=settings.mlflow_admin_password.get_secret_value(),
            data_docs=clone / "projects/credit_risk/expectations/uncommitted/data_docs/local_site",
            platform_log=Layout.from_settings(settings).log_file,
        )
    finally:
        subprocess.run([KAIZEN, "down"], env=env, cwd=clone, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, labelled_world: Path, postgres: str
) -> Iterator[World]:
    import sqlalchemy as sa

    name = f"kaizen_test_clients_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        airflow_db = postgres.rsplit("/", 1)[0] + "/" + name
        yield from build_world(tmp_path_factory.mktemp("clients"), labelled_world, airflow_db)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


# --- Airflow's REST API v2, as an external client --------------------------------------------

DAG_ID = "credit_risk.dataops_daily"
SOURCES = ["customers", "orders", "payments"]  # kaizen.yaml: the per-source tasks map over them
FINISHED_BAD = {"failed", "upstream_failed", "removed"}
RUN_TIMEOUT_S = 600  # one DataOps day is ~30 s on a quiet machine; CI runners are shared


def _midnight(ds: str) -> str:
    return f"{ds}T00:00:00Z"


def _next_day(ds: str) -> str:
    return (dt.date.fromisoformat(ds) + dt.timedelta(days=1)).isoformat()


def airflow_token(base: str, password: str) -> str:
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
        response = client.post("/auth/token", json={"username": "admin", "password": password})
    assert response.status_code in (200, 201), response.text
    return response.json()["access_token"]


def airflow_client(world: World) -> httpx.Client:
    """An API client with a JWT traded for the generated admin password."""
    token = airflow_token(world.airflow, world.airflow_password)
    return httpx.Client(
        base_url=f"{world.airflow}/api/v2",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        trust_env=False,
    )


def wait_until_parsed(client: httpx.Client, dag_id: str = DAG_ID, timeout_s: float = 120) -> dict:
    """The dag-processor parses the folder after `kaizen up`: wait for the DAG to be listed."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/dags/{dag_id}")
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 404, response.text
        assert time.monotonic() < deadline, f"{dag_id} not parsed within {timeout_s:.0f}s"
        time.sleep(1)


def task_states(client: httpx.Client, run_id: str) -> dict[str, str | None]:
    response = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
    assert response.status_code == 200, response.text
    states = {}
    for ti in response.json()["task_instances"]:
        name = ti["task_id"]
        if ti["map_index"] >= 0:
            name += f"[{ti['rendered_map_index'] or ti['map_index']}]"
        states[name] = ti["state"]
    return states


def expected_tasks() -> set[str]:
    per_source = {f"{t}[{s}]" for t in ("wait_for_raw", "ingest", "validate") for s in SOURCES}
    return per_source | {
        "declared_sources",
        "featurize",
        "validate_features",
        "apply",
        "materialize",
        "take_run_lease",  # one run at a time, whoever started it (kaizen.run_lease)
        "give_back_run_lease",
    }


def wait_for_success(
    client: httpx.Client, run_ids: list[str], timeout_s: float, platform_log: Path
) -> dict[str, dict]:
    """Poll the runs' task instances until every one succeeded; fail at the first one that
    cannot (failed, upstream_failed), naming it. The runs share one deadline, as they share
    the executor's slots. On timeout the message says what the scheduler saw: every run of
    the DAG and the platform log's last scheduler lines."""
    deadline = time.monotonic() + timeout_s
    done: dict[str, dict] = {}
    while True:
        for run_id in (r for r in run_ids if r not in done):
            states = task_states(client, run_id)
            bad = {name: state for name, state in states.items() if state in FINISHED_BAD}
            assert not bad, f"{run_id}: {bad}"
            run = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()
            assert run["state"] != "failed", f"{run_id} failed: {states}"
            if run["state"] == "success":
                # A run can succeed having run nothing (no task instances): that is no success.
                assert states and set(states.values()) == {"success"}, f"{run_id}: {states}"
                done[run_id] = {"run": run, "tasks": states}
        if len(done) == len(run_ids):
            return done
        if time.monotonic() >= deadline:
            pending = sorted(set(run_ids) - set(done))
            raise AssertionError(
                f"{pending} not done in {timeout_s:.0f}s: "
                + json.dumps({r: task_states(client, r) for r in pending})
                + "\n"
                + scheduler_story(client, platform_log)
            )
        time.sleep(2)


def scheduler_story(client: httpx.Client, platform_log: Path, lines: int = 60) -> str:
    """Every run of the DAG with its type and state, and the scheduler's last log lines."""
    runs = client.get(f"/dags/{DAG_ID}/dagRuns", params={"limit": 100}).json()["dag_runs"]
    table = "\n".join(
        f"  {r['dag_run_id']}: {r['run_type']} {r['state']} interval {r['data_interval_start']}"
        f" queued {r.get('queued_at')} started {r.get('start_date')}"
        for r in runs
    )
    logged = platform_log.read_text(errors="replace").splitlines() if platform_log.exists() else []
    tail = [x for x in logged if "scheduler" in x or "system" in x][-lines:]
    return f"runs of {DAG_ID}:\n{table}\nplatform log (scheduler):\n" + "\n".join(tail)


def backfill_runs(client: httpx.Client, first: str, last: str) -> list[dict]:
    response = client.get(
        f"/dags/{DAG_ID}/dagRuns",
        params={
            "run_type": "backfill",
            "logical_date_gte": _midnight(first),
            "logical_date_lte": _midnight(last),
            "order_by": "logical_date",
        },
    )
    assert response.status_code == 200, response.text
    return list(response.json()["dag_runs"])


def wait_backfills_complete(client: httpx.Client, timeout_s: float = 120) -> None:
    """Until no backfill of the DAG is open: the scheduler marks one complete after its runs."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get("/backfills", params={"dag_id": DAG_ID, "limit": 100})
        assert response.status_code == 200, response.text
        open_ = [b for b in response.json()["backfills"] if b["completed_at"] is None]
        if not open_:
            return
        assert time.monotonic() < deadline, f"backfills still open after {timeout_s:.0f}s: {open_}"
        time.sleep(1)


def rewritten_since(world: World, ds: str, since: float) -> list[str]:
    """The feature views whose published partition for `ds` was committed after `since`."""
    lake = world.home / "projects" / "credit_risk" / "data" / "lake" / "features"
    return sorted(
        m.parent.parent.name
        for m in lake.glob(f"*/ds={ds}/_manifest.json")
        if m.stat().st_mtime >= since
    )


# --- a headless browser ------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Debian's package (scripts/ensure-browser.sh installs it; playwright never downloads one).
CHROMIUM = next(
    (
        path
        for path in (
            os.environ.get("KAIZEN_CHROMIUM"),
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
        )
        if path and os.access(path, os.X_OK)
    ),
    None,
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        message = "no chromium at /usr/bin/chromium (run `make browser`, or set KAIZEN_CHROMIUM)"
        if IN_CI:
            pytest.fail(f"{message} (required in CI)", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _loopback_only(context: Any) -> None:
    """Every request stays on this machine: Data Docs pages name CDNs, which are refused."""

    def route(r: Any) -> None:
        local = r.request.url.startswith(("file://", "http://127.0.0.1:", "data:"))
        r.continue_() if local else r.abort()

    context.route("**/*", route)


class Shots:
    """Screenshots as test artifacts, numbered in the order they were taken."""

    def __init__(self, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        self.directory, self.taken = directory, []

    def __call__(self, page: Any, name: str, full_page: bool = False) -> None:
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path.name)


def _pick(page: Any, dialog: Any, trigger: Any, day: str) -> None:
    """Set one of the UI's date-time pickers to midnight UTC of `day`."""
    trigger.click()
    popover = page.locator("[data-scope=popover][data-part=content]:visible").last
    popover.get_by_placeholder("YYYY/MM/DD").fill(day.replace("-", "/"))
    popover.get_by_placeholder("HH:mm").fill("00:00")
    dialog.get_by_role("heading").first.click()  # closes the picker, keeps the dialog
    label = dt.date.fromisoformat(day).strftime("%b %d, %Y 00:00")
    expect(trigger).to_have_text(label)


def _open_trigger_dialog(page: Any, base: str) -> Any:
    page.goto(f"{base}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Single Run", exact=True)).to_be_visible()
    return dialog


def _ui_run_succeeded(page: Any, base: str, run_id: str, timeout_s: float) -> str:
    """Watch a run's page until its 14 task instances show Success; fail at the first Failed.
    Returns the run's data interval start as the UI shows it."""
    page.goto(f"{base}/dags/{DAG_ID}/runs/{run_id}")
    expect(page.get_by_text(re.compile(r"^\d+ Task Instances$"))).to_be_visible()
    cells = page.get_by_role("cell")
    deadline = time.monotonic() + timeout_s
    while True:
        bad = cells.filter(has_text=re.compile(r"^(Failed|Upstream Failed)$"))
        assert bad.count() == 0, f"{run_id}: a task failed in the UI"
        try:  # the page refreshes a running run's task instances by itself
            expect(page.get_by_text(f"{len(expected_tasks())} Task Instances")).to_be_visible(
                timeout=5_000
            )
            expect(cells.filter(has_text=re.compile(r"^Success$"))).to_have_count(
                len(expected_tasks()), timeout=5_000
            )
            break
        except AssertionError:
            assert time.monotonic() < deadline, f"{run_id} did not succeed in {timeout_s:.0f}s"
    page.goto(f"{base}/dags/{DAG_ID}/runs/{run_id}/details")
    row = page.get_by_role("row").filter(has_text="Data Interval Start")
    expect(row).to_be_visible()
    return row.inner_text().split("Data Interval Start", 1)[1].strip()


@pytest.mark.slow
@pytest.mark.airflow
@pytest.mark.services
def test_a_browser_drives_airflow_and_reads_mlflow_data_docs_and_drift(
    browser: Any, world: World
) -> None:
    """Log in to Airflow, trigger dataops_daily for one day and backfill two through the UI,
    watch them succeed there; then the model's aliases in MLflow's UI, the Data Docs page of
    the triggered day's validation, and the monitor's drift report."""
    run_ds, fill = world.dates[-7], [world.dates[-5], world.dates[-4]]
    shots = Shots(ARTIFACTS)
    started = time.perf_counter()
    context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id="UTC")
    context.set_default_timeout(60_000)  # two busy cores: a first render can take seconds
    _loopback_only(context)
    page = context.new_page()
    try:
        # Log in with the generated password (a default one is refused first).
        page.goto(world.airflow)
        for password in ("admin", world.airflow_password):
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(password)
            if password == "admin":
                shots(page, "airflow-login")
            page.get_by_role("button", name="Sign in").click()
            if password == "admin":
                expect(page.get_by_text(re.compile("invalid", re.I)).first).to_be_visible()
        page.wait_for_url(f"{world.airflow}/")
        expect(page.get_by_role("link", name="Dags")).to_be_visible()

        # One run for `run_ds`: its data interval given explicitly, unpausing the DAG.
        dialog = _open_trigger_dialog(page, world.airflow)
        dialog.get_by_text("Specify Manually").click()
        pickers = dialog.get_by_test_id("datetime-input")
        _pick(page, dialog, pickers.nth(1), run_ds)
        _pick(page, dialog, pickers.nth(2), _next_day(run_ds))
        unpause = dialog.get_by_role("checkbox", name=f"Unpause {DAG_ID} on trigger")
        if unpause.count():  # offered while the DAG is paused (as `kaizen up` leaves it)
            expect(unpause).to_be_checked()
        shots(page, "airflow-trigger-run")
        with page.expect_response(
            lambda r: r.url.endswith(f"/dags/{DAG_ID}/dagRuns") and r.request.method == "POST"
        ) as answer:
            dialog.get_by_role("button", name="Trigger").click()
        assert answer.value.status == 200, answer.value.text()
        run_id = answer.value.json()["dag_run_id"]
        # The UI may show the text twice (the toast and the run page it moves to): any one.
        expect(page.get_by_text("Dag Run Triggered").first).to_be_visible()

        # A backfill of two days.
        dialog = _open_trigger_dialog(page, world.airflow)
        dialog.get_by_text("Backfill", exact=True).click()
        pickers = dialog.get_by_test_id("datetime-input")
        _pick(page, dialog, pickers.nth(0), fill[0])
        _pick(page, dialog, pickers.nth(1), fill[1])
        expect(dialog.get_by_text("2 runs will be triggered.")).to_be_visible()
        shots(page, "airflow-backfill-form")
        with page.expect_response(
            lambda r: r.url.endswith("/api/v2/backfills") and r.request.method == "POST"
        ) as answer:
            dialog.get_by_role("button", name="Run Backfill").click()
        assert answer.value.status == 200, answer.value.text()

        # The runs, as the UI lists them, then each one to success.
        page.goto(f"{world.airflow}/dags/{DAG_ID}/runs")
        links = page.get_by_role("table").get_by_role("link", name=re.compile("^backfill__"))
        expect(links).to_have_count(2)
        backfill_ids = [link.inner_text() for link in links.all()]
        shots(page, "airflow-runs-started")
        interval = _ui_run_succeeded(page, world.airflow, run_id, RUN_TIMEOUT_S)
        assert interval.startswith(run_ds), interval
        shots(page, "airflow-run-succeeded")
        filled = []
        for backfill_id in backfill_ids:
            filled.append(_ui_run_succeeded(page, world.airflow, backfill_id, RUN_TIMEOUT_S))
            shots(page, f"airflow-backfill-run-{filled[-1][:10]}-succeeded")
        assert sorted(x[:10] for x in filled) == fill, filled
        page.goto(f"{world.airflow}/dags/{DAG_ID}/runs")
        expect(page.get_by_role("cell", name="Success", exact=True)).to_have_count(3)
        shots(page, "airflow-runs-succeeded")
        print(
            f"UI: a run and a two-day backfill to success in {time.perf_counter() - started:.0f}s"
        )

        # MLflow's UI behind basic auth: the registered model and its aliases.
        mlflow = browser.new_context(
            viewport={"width": 1400, "height": 900},
            http_credentials={"username": "admin", "password": world.mlflow_password},
        )
        mlflow.set_default_timeout(60_000)
        _loopback_only(mlflow)
        ml = mlflow.new_page()
        assert ml.goto(f"{world.mlflow}/#/models/credit_risk").status == 200
        version = ml.get_by_role("row").filter(has_text=f"Version {world.champion}")
        expect(version).to_contain_text("champion")
        shots(ml, "mlflow-credit-risk-aliases")
        mlflow.close()

        # GX Data Docs: the index links the triggered day's validation, which passed.
        page.goto(world.data_docs.joinpath("index.html").as_uri())
        expect(page.get_by_text("Validation Results").first).to_be_visible()
        shots(page, "gx-data-docs-index")
        pattern = rf"validations/raw_orders/orders-{run_ds}/[^\"'\\]+\.html"
        pages = sorted(set(re.findall(pattern, page.content())))
        assert pages, f"Data Docs list no validation of orders on {run_ds}"
        page.goto(world.data_docs.joinpath(pages[-1]).as_uri())
        expect(page.get_by_text("Expectation Suite: raw_orders")).to_be_visible()
        expect(page.get_by_text("Status: Succeeded")).to_be_visible()
        shots(page, f"gx-data-docs-orders-{run_ds}")

        # The monitor's drift report in the lake.
        page.goto(Path(world.report).as_uri())
        expect(
            page.get_by_role("heading", name=f"Kaizen monitoring: credit_risk on {world.dates[-1]}")
        ).to_be_visible()
        expect(page.get_by_role("heading", name="Data drift", exact=True)).to_be_visible()
        plots = page.locator("figure img")
        assert plots.count() > 0 and all(
            img.evaluate("i => i.complete && i.naturalWidth > 0") for img in plots.all()
        )
        shots(page, "drift-report", full_page=True)
    finally:
        context.close()
        print("screenshots:", ", ".join(shots.taken))


@pytest.mark.slow
@pytest.mark.airflow
@pytest.mark.services
def test_rest_api_v2_runs_and_backfills_dataops_daily(world: World) -> None:
    """A JWT from POST /auth/token; unpause, trigger a run for one day, create a backfill for
    another, then read task instance states until every task succeeded."""
    run_ds, backfill_ds = world.dates[-3], world.dates[-1]
    since = time.time()
    started = time.perf_counter()
    with httpx.Client(base_url=world.airflow, timeout=30, trust_env=False) as anonymous:
        assert anonymous.get("/api/v2/dags").status_code == 401
        for password in ("admin", "password1234"):
            refused = anonymous.post(
                "/auth/token", json={"username": "admin", "password": password}
            )
            assert refused.status_code == 401
    with airflow_client(world) as client:
        wait_until_parsed(client)
        unpaused = client.patch(f"/dags/{DAG_ID}", json={"is_paused": False})
        assert unpaused.status_code == 200 and unpaused.json()["is_paused"] is False, unpaused.text

        triggered = client.post(
            f"/dags/{DAG_ID}/dagRuns",
            json={
                "dag_run_id": f"rest_client__{run_ds}",
                # Now, not the day: a manual run before the DAG's start date gets no tasks.
                "logical_date": dt.datetime.now(dt.UTC).isoformat(),
                "data_interval_start": _midnight(run_ds),
                "data_interval_end": _midnight(_next_day(run_ds)),
                "note": "triggered by tests/test_clients.py through the REST API",
            },
        )
        assert triggered.status_code == 200, triggered.text
        run_id = triggered.json()["dag_run_id"]
        assert triggered.json()["data_interval_start"].startswith(run_ds)

        # The browser test's backfill stays open until the scheduler marks it complete, a
        # loop or more after its last run; until then Airflow refuses a second one (409).
        wait_backfills_complete(client)
        created = client.post(
            "/backfills",
            json={
                "dag_id": DAG_ID,
                "from_date": _midnight(backfill_ds),
                "to_date": _midnight(backfill_ds),
                "max_active_runs": 1,
                "reprocess_behavior": "none",
            },
        )
        assert created.status_code == 200, created.text
        backfill = created.json()
        assert backfill["completed_at"] is None
        [filled] = backfill_runs(client, backfill_ds, backfill_ds)
        assert filled["data_interval_start"].startswith(backfill_ds)

        finished = wait_for_success(
            client, [run_id, filled["dag_run_id"]], 2 * RUN_TIMEOUT_S, world.platform_log
        )
        manual, filled_done = finished[run_id], finished[filled["dag_run_id"]]
        wait_backfills_complete(client)
    print(f"REST: a run and a one-day backfill to success in {time.perf_counter() - started:.0f}s")
    for outcome in (manual, filled_done):
        assert set(outcome["tasks"]) == expected_tasks(), outcome["tasks"]
    views = ["customer_activity", "customer_payments", "customer_profile"]
    assert rewritten_since(world, run_ds, since) == views
    assert rewritten_since(world, backfill_ds, since) == views
