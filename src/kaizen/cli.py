"""`kaizen <stage>`: the command line. Each command calls the stage function of the same name.

Bad input is one line on stderr and a non-zero exit; nothing is written.
"""

from __future__ import annotations

import datetime as dt
import functools
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
def main() -> None:
    """Configure logging from the settings before any command runs."""
    from kaizen.config import get_settings
    from kaizen.logs import configure_logging

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
    customers: Annotated[int | None, typer.Option(help="customers on the first day")] = None,
    seed: Annotated[
        int | None, typer.Option(help="random seed: same arguments, same bytes")
    ] = None,
    shock_date: Annotated[
        str | None, typer.Option(help="day the regime shifts (YYYY-MM-DD)")
    ] = None,
    late_rate_before: Annotated[
        float | None, typer.Option(help="late rate before the shock")
    ] = None,
    late_rate_after: Annotated[
        float | None, typer.Option(help="late rate from the shock on")
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="inject DATE:SOURCE:KIND (kinds: nulls, unit, renamed_column, missing_column, duplicates, carriage_returns, empty, malformed); repeatable"
        ),
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="landing root, a path or fsspec URL; default KAIZEN_RAW_ROOT")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="re-land files whose content differs")] = False,
) -> None:
    """Write daily raw drops of the furniture-store credit-risk world."""
    from kaizen.interval import parse_ds
    from kaizen.logs import get_logger
    from kaizen.runtime import Runtime
    from kaizen.simulate import Fault
    from kaizen.simulate import simulate as run

    rt = Runtime()
    overrides: dict[str, Any] = {
        "start": dt.date.fromisoformat(parse_ds(start)) if start else None,
        "days": days,
        "customers": customers,
        "seed": seed,
        "shock_date": dt.date.fromisoformat(parse_ds(shock_date)) if shock_date else None,
        "late_rate_before": late_rate_before,
        "late_rate_after": late_rate_after,
    }
    params = _override(rt.params.simulate, {k: v for k, v in overrides.items() if v is not None})
    root = out or rt.settings.raw_root
    log = get_logger("kaizen.simulate")
    step = max(1, params.days // 10)

    def progress(ds: str, counts: dict[str, int]) -> None:
        index = (dt.date.fromisoformat(ds) - params.start).days + 1
        if index % step == 0 or index == params.days:
            log.info("simulated %d/%d days (through %s): %s", index, params.days, ds, counts)

    report = run(
        params,
        root,
        faults=[Fault.parse(f) for f in fault or []],
        storage_options=rt.settings.storage_options(root),
        overwrite=overwrite,
        progress=progress,
    )
    typer.echo(
        f"simulated {report.days} days from {params.start} to {root}: "
        f"{report.written} files written, {report.unchanged} unchanged; rows "
        + ", ".join(f"{k}={v}" for k, v in sorted(report.rows.items()))
        + f"; late rate {report.late_rate:.3f} over {report.invoices} invoices"
    )


def _override(model: Any, values: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from kaizen.config import describe_validation_error
    from kaizen.errors import InputError

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
    """Compile sources.yaml + expectations/rules into the committed GX suites and checkpoints."""
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
def apply() -> None:
    """Apply the Feast repo (feature_repo/) to this profile's registry; idempotent."""
    from kaizen.featurestore.store import apply as run
    from kaizen.runtime import Runtime

    counts = run(Runtime().settings)
    typer.echo("feast repo applied: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


@app.command("feast-env")
@entry
def feast_env() -> None:
    """Print the environment the feast CLI needs for this profile (eval "$(kaizen feast-env)")."""
    import shlex

    from kaizen.featurestore.store import feast_environ
    from kaizen.runtime import Runtime

    for key, value in feast_environ(Runtime().settings).items():
        typer.echo(f"export {key}={shlex.quote(value)}")


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
    """Serve predictions (the champion on its online features) on 127.0.0.1 behind a token."""
    from kaizen.config import get_settings
    from kaizen.serving.server import serve as run

    run(get_settings(), workers=workers)


@app.command()
@entry
def traffic(
    ds: Annotated[str, typer.Option(help="replay the invoices issued on this day, YYYY-MM-DD")],
) -> None:
    """Replay a simulated day's invoices as prediction requests (in process, logged as live)."""
    from kaizen.interval import parse_ds
    from kaizen.runtime import Runtime
    from kaizen.serving.traffic import replay_day

    report = replay_day(Runtime(), parse_ds(ds))
    served = ", ".join(f"v{v}: {n}" for v, n in sorted(report.served.items())) or "nobody"
    typer.echo(
        f"{report.ds}: {report.requests} requests, served by {served}, {report.failed} failed, "
        f"{report.flushed} prediction log rows written"
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
    """Point-in-time training set: labelled invoices joined with the model's feature service."""
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
    """Drift, late rate, live quality, skew and freshness for a day; alerts; a guarded retrain request."""
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
        bool, typer.Option(help="also train through the train DAG (--no-train: data only)")
    ] = True,
) -> None:
    """Simulate a history, run the DataOps DAG over it through Airflow, then train a candidate."""
    from kaizen.demo import run_demo
    from kaizen.runtime import Runtime

    run_demo(Runtime(), echo=typer.echo, train=train)


@app.command()
@entry
def scoreboard(
    work: Annotated[
        Path, typer.Option(help="where the run's world, stores and results live (wiped first)")
    ] = Path("data/kaizen-eval"),
    days: Annotated[int | None, typer.Option(help="override scoreboard.days")] = None,
    shock_day: Annotated[int | None, typer.Option(help="override scoreboard.shock_day")] = None,
    customers: Annotated[int | None, typer.Option(help="override scoreboard.customers")] = None,
) -> None:
    """The KaizenML loop on a simulated half year with a shock (params.yaml `scoreboard`):
    detection, retraining, promotions and served quality against a daily oracle. Exit 1
    when a target is missed."""
    from kaizen.config import get_settings
    from kaizen.scoreboard.run import run_scoreboard

    home = get_settings().home
    overrides = {"days": days, "shock_day": shock_day, "customers": customers}
    work = work if work.is_absolute() else home / work
    if not run_scoreboard(home, work, overrides, echo=typer.echo):
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
    from kaizen.platform.supervisor import up as run

    if not run(get_settings(), echo=typer.echo, timeout_s=timeout):
        raise typer.Exit(1)


@app.command()
@entry
def down() -> None:
    """Stop the platform started by `kaizen up`; nothing of its process tree survives."""
    from kaizen.config import get_settings
    from kaizen.platform.supervisor import down as run

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
            from kaizen.platform.supervisor import health_report

            payload["platform"] = health_report(settings)
            healthy = payload["platform"]["healthy"]
        else:
            from kaizen.platform.supervisor import status as run

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
    """Load-test the running prediction API; exit 1 when p99 or errors breach the budget."""
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
