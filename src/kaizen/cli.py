"""`kaizen <stage>`: the command line. Each command calls the stage function of the same name.

Bad input is one line on stderr and a non-zero exit; nothing is written.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kaizen.errors import KaizenError

app = typer.Typer(
    name="kaizen",
    help="Kaizen: a feature store and continuously improving ML workflows on rails.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def entry(fn: F) -> F:
    """Turn a KaizenError into a one-line message and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KaizenError as exc:
            _fail(str(exc), exc.exit_code)

    return wrapper  # type: ignore[return-value]


@app.callback()
def main(
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            "-p",
            help="the project: its name under projects/ or its folder (default KAIZEN_PROJECT, "
            "else the one the working directory is in, else the only one)",
        ),
    ] = None,
) -> None:
    """Select the project and configure logging from the settings before any command runs."""
    from kaizen.config import get_settings
    from kaizen.logs import configure_logging

    if project:
        os.environ["KAIZEN_PROJECT"] = project
        get_settings.cache_clear()
    try:
        settings = get_settings()
    except KaizenError as exc:
        _fail(str(exc), exc.exit_code)
    configure_logging(settings.log_level, settings.log_format)


@app.command()
@entry
def simulate(
    start: Annotated[
        str | None, typer.Option(help="first day (YYYY-MM-DD); default from params.yaml")
    ] = None,
    days: Annotated[int | None, typer.Option(help="number of daily drops")] = None,
    shift_date: Annotated[
        str | None, typer.Option(help="day the world's regime shifts (YYYY-MM-DD)")
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(help="inject DATE:SOURCE:KIND (the generator's fault kinds); repeatable"),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="any other generator param, KEY=VALUE (YAML value); repeatable"),
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="landing root, a path or fsspec URL; default KAIZEN_RAW_ROOT")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="re-land files whose content differs")] = False,
) -> None:
    """Write daily raw drops from the project's generator (kaizen.yaml `generator`)."""
    import yaml

    from kaizen.errors import InputError
    from kaizen.interval import parse_ds
    from kaizen.runtime import Runtime

    rt = Runtime()
    generate = rt.project.hook("generator")
    overrides: dict[str, Any] = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    root = out or rt.settings.raw_root
    report = generate(
        rt.project_params,
        root,
        start=dt.date.fromisoformat(parse_ds(start)) if start else None,
        days=days,
        shift_date=dt.date.fromisoformat(parse_ds(shift_date)) if shift_date else None,
        faults=list(fault or []),
        storage_options=rt.settings.storage_options(root),
        overwrite=overwrite,
        **overrides,
    )
    typer.echo(f"{rt.project.name}: generated into {root}: {report}")


def _override(model: Any, values: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from kaizen.errors import InputError, describe_validation_error

    try:
        return type(model).model_validate({**model.model_dump(), **values})
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, "options")) from None


@app.command()
@entry
def ingest(
    ds: Annotated[str, typer.Option(help="partition date, YYYY-MM-DD")],
    source: Annotated[str | None, typer.Option(help="a declared source; all when left out")] = None,
) -> None:
    """Type a raw drop by its declaration and commit it to lake/bronze atomically."""
    from kaizen.stages.ingest import ingest as run

    _for_each_source("ingest", run, ds, source)


@app.command()
@entry
def validate(
    ds: Annotated[str, typer.Option(help="partition date, YYYY-MM-DD")],
    source: Annotated[str | None, typer.Option(help="a declared source; all when left out")] = None,
    engine: Annotated[
        str | None, typer.Option(help="pandas or spark; default from the settings")
    ] = None,
) -> None:
    """Gate a bronze partition: publish it to silver, or quarantine it with the reason."""
    from kaizen.stages.validate import validate as run

    _for_each_source("validate", run, ds, source, engine=_engine(engine))


@app.command()
@entry
def replay(
    source: Annotated[str, typer.Option(help="the quarantined batch's source")],
    ds: Annotated[str, typer.Option(help="the quarantined batch's date, YYYY-MM-DD")],
    engine: Annotated[
        str | None, typer.Option(help="pandas or spark; default from the settings")
    ] = None,
) -> None:
    """Re-validate a quarantined batch after a fix (a re-landed raw file or a revised suite)."""
    from kaizen.runtime import Runtime
    from kaizen.stages.replay import replay as run

    run(source, ds, Runtime(), engine=_engine(engine))


@app.command()
@entry
def suites(
    check: Annotated[
        bool, typer.Option(help="only verify the committed suites are up to date")
    ] = False,
) -> None:
    """Compile the declared sources, the Feast repo and expectations/rules into the GX suites."""
    from kaizen.quality.suites import build, check_or_fail
    from kaizen.runtime import Runtime

    rt = Runtime()
    if check:
        check_or_fail(rt.settings, rt.catalog)
        typer.echo("GX suites are up to date")
        return
    changed = build(rt.settings, rt.catalog)
    typer.echo(
        f"{len(changed)} files written under {rt.settings.expectations_dir}"
        + (": " + ", ".join(changed) if changed else "")
    )


def _engine(engine: str | None) -> str | None:
    from kaizen.errors import InputError

    if engine not in (None, "pandas", "spark"):
        raise InputError(f"unknown engine {engine!r}: use pandas or spark")
    return engine


def _for_each_source(
    stage: str, run: Callable[..., Any], ds: str, source: str | None, **kwargs: Any
) -> None:
    """Run a per-source stage for one source, or for every declared source."""
    from kaizen.interval import parse_ds
    from kaizen.runtime import Runtime

    rt = Runtime()
    ds = parse_ds(ds)
    names = [rt.catalog.get(source).name] if source else rt.catalog.names
    failures = []
    for name in names:
        try:
            run(name, ds, rt, **kwargs)
        except KaizenError as exc:
            if len(names) == 1:
                raise
            failures.append(f"{name}: {exc}")
            typer.echo(f"error: {exc}", err=True)
    if failures:
        _fail(
            f"{stage}: {len(failures)} of {len(names)} sources failed for {ds}: "
            + "; ".join(failures),
            2,
        )


@app.command()
@entry
def featurize(
    ds: Annotated[str, typer.Option(help="the day whose close the features describe, YYYY-MM-DD")],
    engine: Annotated[
        str | None, typer.Option(help="pandas or spark; default from the settings")
    ] = None,
) -> None:
    """Compute the feature views for a day from silver into features_staged."""
    from kaizen.runtime import Runtime
    from kaizen.stages.featurize import featurize as run

    run(ds, Runtime(), engine=_engine(engine))


@app.command("validate-features")
@entry
def validate_features(
    ds: Annotated[str, typer.Option(help="the day of the staged features, YYYY-MM-DD")],
    engine: Annotated[
        str | None, typer.Option(help="pandas or spark; default from the settings")
    ] = None,
) -> None:
    """Gate a day's staged features: publish them to the offline store, or quarantine them."""
    from kaizen.runtime import Runtime
    from kaizen.stages.validate_features import validate_features as run

    run(ds, Runtime(), engine=_engine(engine))


@app.command()
@entry
def apply(
    force: Annotated[bool, typer.Option(help="apply even when the repo is unchanged")] = False,
) -> None:
    """Apply the Feast repo (feature_repo/) to this profile's registry; idempotent, and
    skipped when nothing the repo reads changed since the last apply (unless --force)."""
    from kaizen.featurestore.store import apply as run
    from kaizen.runtime import Runtime

    counts = run(Runtime().settings, force=force)
    skipped = counts.pop("skipped", False)
    typer.echo(
        ("feast repo unchanged, apply skipped: " if skipped else "feast repo applied: ")
        + ", ".join(f"{v} {k}" for k, v in counts.items())
    )


@app.command()
@entry
def check() -> None:
    """Is the project whole? Its declaration, params, hooks, Feast repo, request schema,
    slices, SLOs and GX suites; one line per problem (exit 2 when there is one)."""
    from kaizen.project.check import check as run
    from kaizen.runtime import Runtime

    rt = Runtime()
    problems = run(rt)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(2)
    typer.echo(f"{rt.project.name}: the project is whole ({rt.project.folder})")


@app.command()
@entry
def init(
    name: Annotated[str, typer.Argument(help="the new project's name (lower_snake_case)")],
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="the projects folder (default: the install's projects/)"),
    ] = None,
) -> None:
    """Scaffold a new project from the platform's template: declaration, params, Feast
    repo, rules and compiled GX suites, DAGs, a generator and tests."""
    from kaizen.config import get_settings
    from kaizen.project.scaffold import scaffold

    folder = scaffold(name, directory or get_settings().projects_dir)
    typer.echo(f"{name}: created {folder}")
    typer.echo("next steps:")
    typer.echo(f"  kaizen -p {name} check            # the project is whole")
    typer.echo(f"  make demo PROJECT={name}          # generate, run the DataOps days, train")
    typer.echo(f"  edit {folder}/kaizen.yaml and src/{name}/ for your own data")


@app.command()
@entry
def projects() -> None:
    """The projects of this install, one line each (the selected one marked)."""
    from kaizen.config import get_settings
    from kaizen.project.locate import project_names
    from kaizen.project.project import load_project

    settings = get_settings()
    for name in project_names(settings.projects_dir):
        folder = settings.projects_dir / name
        mark = "*" if settings.project_dir == folder.resolve() else " "
        try:
            description = load_project(folder).declaration.description
        except KaizenError as exc:
            description = f"(invalid: {exc})"
        typer.echo(f"{mark} {name:<20} {description}")


@app.command("feast-env")
@entry
def feast_env() -> None:
    """Print the environment the feast CLI needs for this profile (eval "$(kaizen feast-env)")."""
    import os
    import shlex

    from kaizen.featurestore.environ import feast_environ, project_importable
    from kaizen.runtime import Runtime

    settings = Runtime().settings
    for key, value in feast_environ(settings).items():
        typer.echo(f"export {key}={shlex.quote(value)}")
    # The repo imports the project's package (its schema helpers), which is not installed.
    paths = os.pathsep.join([*project_importable(settings), "${PYTHONPATH:-}"])
    typer.echo(f'export PYTHONPATH="{paths}"')


@app.command()
@entry
def materialize(
    start: Annotated[str, typer.Option(help="first partition date of the interval, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="end of the interval (exclusive), YYYY-MM-DD")],
) -> None:
    """Load published features of [start - overlap, end) into the online store."""
    from kaizen.runtime import Runtime
    from kaizen.stages.materialize import materialize as run

    run(start, end, Runtime())


@app.command("feature-server")
@entry
def feature_server() -> None:
    """Serve online features (Feast's feature server) on 127.0.0.1 behind a bearer token."""
    from kaizen.config import get_settings
    from kaizen.featurestore.server import serve

    serve(get_settings())


@app.command()
@entry
def serve(
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="uvicorn worker processes on the one port")
    ] = 1,
) -> None:
    """Serve every project's predictions (KAIZEN_SERVE_PROJECTS, default all) under
    /<project>/predict on 127.0.0.1 behind a token: each champion on its online features."""
    from kaizen.config import get_settings
    from kaizen.serving.server import serve as run

    run(get_settings(), workers=workers)


@app.command()
@entry
def traffic(
    ds: Annotated[
        str,
        typer.Option(help="replay the requests of this day (the traffic sampler's), YYYY-MM-DD"),
    ],
) -> None:
    """Replay a day's requests through the predictor (in process, logged as live)."""
    from kaizen.interval import parse_ds
    from kaizen.runtime import Runtime
    from kaizen.serving.traffic import replay_day

    report = replay_day(Runtime(), parse_ds(ds))
    served = ", ".join(f"v{v}: {n}" for v, n in sorted(report.served.items())) or "nobody"
    typer.echo(
        f"{report.ds}: {report.requests} requests, served by {served}, {report.failed} failed, "
        f"{report.unknown} unknown entities (404), {report.flushed} prediction log rows written"
    )


@app.command("training-set")
@entry
def training_set(
    out: Annotated[
        str, typer.Option(help="parquet file to write (a .json description goes beside it)")
    ] = "data/training/training_set.parquet",
    cutoff: Annotated[
        str | None,
        typer.Option(help="labels final by the close of this day; default params.yaml (latest)"),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="first issue date to include; default cutoff - lookback_days")
    ] = None,
) -> None:
    """Point-in-time training set: labelled rows joined with the model's feature service."""
    from kaizen.runtime import Runtime
    from kaizen.stages.training_set import training_set as run

    run(out, Runtime(), cutoff=cutoff, start=start)


@app.command()
@entry
def train(
    training_set: Annotated[
        str, typer.Option(help="the training set (parquet)")
    ] = "data/training/training_set.parquet",
    out: Annotated[
        str, typer.Option(help="directory for the model, its trusted types and run id")
    ] = "data/model",
) -> None:
    """Fit the model on the training set's past (its latest days are held out)."""
    from kaizen.runtime import Runtime
    from kaizen.stages.train import train as run

    run(training_set, out, Runtime())


@app.command()
@entry
def evaluate(
    training_set: Annotated[
        str, typer.Option(help="the training set (parquet)")
    ] = "data/training/training_set.parquet",
    model: Annotated[str, typer.Option(help="the model directory written by train")] = "data/model",
    out: Annotated[str, typer.Option(help="directory for metrics.json and plots/")] = "data/eval",
) -> None:
    """Score the model on its frozen time-based holdout, overall and per slice."""
    from kaizen.runtime import Runtime
    from kaizen.stages.evaluate import evaluate as run

    run(training_set, model, out, Runtime())


@app.command()
@entry
def register(
    training_set: Annotated[
        str, typer.Option(help="the training set (parquet)")
    ] = "data/training/training_set.parquet",
    model: Annotated[str, typer.Option(help="the model directory written by train")] = "data/model",
    evaluation: Annotated[
        str, typer.Option("--eval", help="the directory written by evaluate")
    ] = "data/eval",
    out: Annotated[
        str, typer.Option(help="where to write the registered version (json)")
    ] = "data/registered.json",
) -> None:
    """Register the model in MLflow with its release manifest and mark it a candidate."""
    from kaizen.runtime import Runtime
    from kaizen.stages.register import register as run

    run(training_set, model, evaluation, out, Runtime())


@app.command("dvc-remote")
@entry
def dvc_remote() -> None:
    """Point DVC at this profile's remote and lake (a local directory, or S3 with credentials in .dvc/config.local)."""
    from kaizen.dvcremote import configure
    from kaizen.runtime import Runtime

    typer.echo(f"DVC default remote: {configure(Runtime().settings)}")


@app.command()
@entry
def promote(
    stage: Annotated[
        str,
        typer.Option(
            help="staging (candidate -> challenger) or production (challenger -> champion)"
        ),
    ],
    version: Annotated[
        str | None, typer.Option(help="judge this version instead of the alias holder")
    ] = None,
) -> None:
    """Run a promotion gate and move the aliases by its verdict (every move is in the ledger)."""
    from kaizen.errors import InputError
    from kaizen.logs import bound_context
    from kaizen.runtime import Runtime
    from kaizen.stages.result import run_step

    rt = Runtime()
    if stage == "staging":
        from kaizen.promotion.staging import staging

        with bound_context(model_version=version):
            decision = run_step(
                "promote_staging", "candidate -> challenger", rt, staging, rt, candidate=version
            )
    elif stage == "production":
        from kaizen.promotion.production import production

        decision = run_step("promote_production", "challenger -> champion", rt, production, rt)
    else:
        raise InputError(f"unknown stage {stage!r}: use staging or production")
    typer.echo(f"{decision.id}: {decision.verdict}")
    for reason in decision.reasons:
        typer.echo(f"  - {reason}")


@app.command()
@entry
def monitor(
    ds: Annotated[str, typer.Option(help="the day to monitor, YYYY-MM-DD")],
) -> None:
    """Drift, positive rate, live quality, skew and freshness for a day; alerts; a guarded retrain request."""
    from kaizen.runtime import Runtime
    from kaizen.stages.monitor import monitor as run

    result = run(ds, Runtime())
    details = result.details
    typer.echo(f"report: {details['report']}")
    typer.echo("breaches: " + (", ".join(details["breaches"]) or "none"))
    retrain = details["retrain"]
    typer.echo(f"retrain requested: {retrain['requested']} ({retrain.get('why', '')})")


@app.command()
@entry
def ledger(
    last: Annotated[int, typer.Option(help="show only the last N moves (0: all)")] = 0,
) -> None:
    """Show the promotion ledger: every alias move, when, why, and by which decision."""
    from kaizen.promotion.ledger import events, format_events
    from kaizen.runtime import Runtime

    items = events(Runtime())
    for line in format_events(items[-last:] if last else items) or ["(the ledger is empty)"]:
        typer.echo(line)


@app.command()
@entry
def rollback() -> None:
    """Restore the previous champion (and make sure its feature service is in the registry)."""
    from kaizen.promotion.rollback import rollback as run
    from kaizen.runtime import Runtime
    from kaizen.stages.result import run_step

    rt = Runtime()
    event = run_step("rollback", "champion -> previous champion", rt, run, rt)
    typer.echo(f"champion is v{event['version']} again (ledger #{event['seq']}): {event['reason']}")


gate = typer.Typer(help="Inspect and replay gate decisions.", no_args_is_help=True)
app.add_typer(gate, name="gate")


@gate.command("replay")
@entry
def gate_replay(
    decision: Annotated[str, typer.Argument(help="a decision id, e.g. staging-v3-20260301T040000")],
) -> None:
    """Re-run a recorded decision from its record and check that it reaches the same verdict."""
    from kaizen.errors import KaizenError
    from kaizen.runtime import Runtime

    if decision.startswith("production-"):
        from kaizen.promotion.production import replay
    else:
        from kaizen.promotion.staging import replay
    result = replay(Runtime(), decision)
    typer.echo(f"{decision}: recorded {result['recorded']}, replayed {result['replayed']}")
    if not result["same"]:
        raise KaizenError(f"replay of {decision} differs from the record: {result['checks']}")


@app.command()
@entry
def demo(
    train: Annotated[
        bool, typer.Option(help="also train through the training DAG (--no-train: data only)")
    ] = True,
    start: Annotated[
        str | None,
        typer.Option(help="first generated day (YYYY-MM-DD); default the generator's params"),
    ] = None,
    days: Annotated[
        int | None, typer.Option(min=1, help="days to generate; default the generator's params")
    ] = None,
) -> None:
    """The project's main job: generate a history, run its DataOps DAG over it through Airflow,
    then train a candidate and run the promotion gates (select the project with -p)."""
    from kaizen.demo import run_demo
    from kaizen.interval import parse_ds
    from kaizen.runtime import Runtime

    run_demo(
        Runtime(),
        echo=typer.echo,
        train=train,
        start=parse_ds(start) if start else None,
        days=days,
    )


@app.command()
@entry
def scoreboard(
    work: Annotated[
        Path | None,
        typer.Option(
            help="where the run's world, stores and results live (wiped first); "
            "default <project>/data/kaizen-eval"
        ),
    ] = None,
    days: Annotated[int | None, typer.Option(help="override scoreboard.days")] = None,
    shock_day: Annotated[int | None, typer.Option(help="override scoreboard.shock_day")] = None,
) -> None:
    """The KaizenML loop on a simulated half year with a shock (params.yaml `scoreboard`):
    detection, retraining, promotions and served quality against a daily oracle. Exit 1
    when a target is missed."""
    from kaizen.config import get_settings
    from kaizen.scoreboard.run import run_scoreboard

    settings = get_settings()
    project = settings.require_project()
    overrides = {"days": days, "shock_day": shock_day}
    work = work or project / "data" / "kaizen-eval"
    work = work if work.is_absolute() else Path.cwd() / work
    if not run_scoreboard(settings.home, project, work, overrides, echo=typer.echo):
        raise typer.Exit(1)


@app.command()
@entry
def up(
    timeout: Annotated[
        float, typer.Option(help="seconds to wait for every component to be healthy")
    ] = 180.0,
) -> None:
    """Start Airflow and MLflow on 127.0.0.1 under one supervisor, every UI behind a login."""
    from kaizen.config import get_settings
    from kaizen.ops.supervisor import up as run

    if not run(get_settings(), echo=typer.echo, timeout_s=timeout):
        raise typer.Exit(1)


@app.command()
@entry
def down() -> None:
    """Stop the platform started by `kaizen up`; nothing of its process tree survives."""
    from kaizen.config import get_settings
    from kaizen.ops.supervisor import down as run

    run(get_settings(), echo=typer.echo)


@app.command()
@entry
def status(
    platform: Annotated[
        bool, typer.Option("--platform", help="only each component's process and health")
    ] = False,
    pipeline: Annotated[
        bool,
        typer.Option(
            "--pipeline",
            help="only the pipeline: last good intervals, quarantine, models, drift, freshness",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document for machines")] = False,
    as_of: Annotated[
        str | None,
        typer.Option(help="judge freshness on this day (YYYY-MM-DD); default today (UTC)"),
    ] = None,
) -> None:
    """Platform health and pipeline state at a glance; exit 0 only when the platform is healthy
    (with --pipeline alone, 0 whenever the report could be printed)."""
    import json

    from kaizen.config import get_settings
    from kaizen.interval import parse_ds

    settings = get_settings()
    day = dt.date.fromisoformat(parse_ds(as_of)) if as_of else dt.datetime.now(dt.UTC).date()
    show_platform, show_pipeline = (platform or not pipeline), (pipeline or not platform)
    healthy, payload = True, {}
    if show_platform:
        if as_json:
            from kaizen.ops.supervisor import health_report

            payload["platform"] = health_report(settings)
            healthy = payload["platform"]["healthy"]
        else:
            from kaizen.ops.supervisor import status as run

            healthy = run(settings, echo=typer.echo)
    if show_pipeline:
        from kaizen.pipeline_status import collect, render
        from kaizen.runtime import Runtime

        report = collect(Runtime(settings), day)
        if as_json:
            payload["pipeline"] = report
        else:
            for line in render(report):
                typer.echo(line)
    if as_json:
        typer.echo(json.dumps(payload, indent=2, default=str))
    if not healthy:
        raise typer.Exit(1)


@app.command()
@entry
def loadtest(
    users: Annotated[
        int | None, typer.Option(min=1, help="locust users; default promote.load_test.users")
    ] = None,
    duration: Annotated[
        int | None,
        typer.Option(min=1, help="seconds; default promote.load_test.duration_seconds"),
    ] = None,
) -> None:
    """Load-test the project's routes of the running prediction API with recent real
    requests; exit 1 when p99 or errors breach the budget."""
    from kaizen.config import get_settings
    from kaizen.loadtest.runner import breaches, load_test_running_api
    from kaizen.runtime import Runtime

    rt = Runtime(get_settings())
    result = load_test_running_api(rt, users=users, duration_s=duration)
    typer.echo(result.summary())
    budget = rt.params.promote.load_test.p99_ms  # type: ignore[union-attr]
    problems = breaches(result, budget)
    if problems:
        _fail("load test over budget: " + "; ".join(problems), 1)
    typer.echo(f"within budget: /predict p99 <= {budget:g} ms and no errors")


def run() -> None:  # pragma: no cover - console entry point
    app(prog_name="kaizen")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
