"""`make demo [PROJECT=name]`: a project's main job end to end, then a summary of what it made.

It generates a deterministic history with the project's generator hook (kaizen.yaml
`generator`), runs the project's DataOps DAG for every generated day through Airflow
(ingest, the validation gate, features, the feature gate and materialization into Feast's
online store), reports the lake and one online lookup, trains through the project's
training DAG (`dvc repro` of its dvc.yaml), runs the promotion gates through its promote
DAG (the first model that passes staging becomes the first champion) and answers one
prediction the way `POST /predict` does. The lookup and the prediction are a real labelled
row's (the project's traffic sampler), so nothing here knows an entity or a field. Rerunning
it is safe: unchanged raw files are left alone and every partition is replaced.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

from kaizen.dags.runner import DagRunOutcome, dag_id, run_daily, run_once
from kaizen.errors import KaizenError
from kaizen.lake import Partition
from kaizen.logs import get_logger
from kaizen.quality.context import docs_index
from kaizen.runtime import Runtime

log = get_logger(__name__)

DEMO_DAYS = 60  # the history when neither --days nor the project's `simulate.days` says


def demo_window(
    rt: Runtime, start: str | None = None, days: int | None = None
) -> tuple[dt.date, int]:
    """The generated history: the arguments, else the project's generator params (a
    `simulate` section with `start` / `days`, when it has one), else the DAGs' start date
    and DEMO_DAYS."""
    from kaizen.dags.tasks import START_DATE

    declared = getattr(rt.project_params, "simulate", None)
    first = start or getattr(declared, "start", None) or START_DATE.date()
    count = days or getattr(declared, "days", None) or DEMO_DAYS
    if not isinstance(first, dt.date):
        first = dt.date.fromisoformat(str(first))
    return first, int(count)


def run_demo(
    rt: Runtime,
    echo: Callable[[str], None] = print,
    train: bool = True,
    start: str | None = None,
    days: int | None = None,
) -> None:
    started = time.perf_counter()
    name = rt.project.name
    first, count = demo_window(rt, start, days)
    dates = [(first + dt.timedelta(days=i)).isoformat() for i in range(count)]
    raw_root = rt.settings.raw_root
    echo(f"1/5 {name}: generating {count} days from {dates[0]} into {raw_root}")
    generate = rt.project.hook("generator")
    report = generate(
        rt.project_params,
        raw_root,
        start=first,
        days=count,
        storage_options=rt.settings.storage_options(raw_root),
    )
    echo(f"    {_summary(report)}")

    echo(
        f"2/5 running {dag_id(name, 'dataops_daily')} through Airflow for {dates[0]} .. {dates[-1]}"
    )
    # The demo tells its own story; Airflow's per-task INFO lines would drown it.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    warnings.simplefilter("ignore")

    def progress(o: DagRunOutcome, done: int, total: int) -> None:
        detail = f" ({o.failures()})" if not o.ok else ""
        if not o.ok or done % 5 == 0 or done == total:
            echo(f"    [{done}/{total}] {o.ds}: {o.state} in {o.seconds:.1f}s{detail}")

    outcomes = _run_dataops(rt, dates, progress)
    failed = [o for o in outcomes if not o.ok]
    echo(
        f"    {len(outcomes) - len(failed)}/{len(outcomes)} runs succeeded, {sum(o.seconds for o in outcomes):.0f}s in DAG runs"
    )

    echo(f"3/5 the lake at {rt.lake.url()}")
    for source in rt.catalog.names:
        counts = {}
        for layer in ("silver", "quarantine"):
            parts = rt.lake.partitions(layer, source)
            rows = sum(
                (rt.lake.manifest(Partition(layer, source, ds)) or {}).get("rows", 0)
                for ds in parts
            )
            counts[layer] = f"{len(parts)} partitions, {rows} rows"
        echo(f"    {source}: silver {counts['silver']}; quarantine {counts['quarantine']}")
    for view in rt.schema.views:
        parts = rt.lake.partitions("features", view)
        echo(
            f"    features/{view}: {len(parts)} days published"
            + (f", {parts[0]} .. {parts[-1]}" if parts else "")
        )
    echo(f"    Data Docs: {docs_index(rt.settings)}")
    request = _request_row(rt, dates)
    _show_online_features(rt, echo, request)
    dataops_failed = f"{len(failed)} {dag_id(name, 'dataops_daily')} runs did not succeed"
    if not train:
        _paused_note(rt, echo)
        echo(
            f"done in {time.perf_counter() - started:.0f}s; the lake has data: "
            f"`make repro PROJECT={name}` trains on it"
        )
        if failed:
            raise KaizenError(
                f"{dataops_failed}; see the Airflow logs in {rt.settings.airflow_home}"
            )
        return
    echo(f"4/5 training through Airflow ({dag_id(name, 'training')} runs `dvc repro`)")
    problems = [dataops_failed] if failed else []
    trained = run_once(dag_id(name, "training"), rt.settings, conf={"force": True})
    if trained.ok:
        _show_model(rt, echo)
        echo("5/5 the promotion gates through Airflow (staging, then production)")
        promoted = run_once(dag_id(name, "promote"), rt.settings)
        if not promoted.ok:
            echo(f"    promote: {promoted.state} ({promoted.failures()})")
            problems.append(f"{promoted.dag_id} ended {promoted.state}")
        elif not _show_promotion(rt, echo, dates[-1], request):
            # A demo without a champion serves nothing: say so and fail, never "done".
            problems.append(
                f"no champion after {promoted.dag_id}: the gates kept every candidate out "
                f"(the reasons above; `kaizen -p {name} ledger` and the decision records)"
            )
    else:
        echo(f"    training: {trained.state} ({trained.failures()})")
        problems.append(f"{trained.dag_id} ended {trained.state}")
    _paused_note(rt, echo)
    echo(f"done in {time.perf_counter() - started:.0f}s")
    if problems:
        raise KaizenError(
            f"{'; '.join(problems)}: see the Airflow logs in {rt.settings.airflow_home}"
        )


def _paused_note(rt: Runtime, echo: Callable[[str], None]) -> None:
    """The DAGs stay paused, as Airflow creates them (the demo ran them in this process, past
    the scheduler). Unpausing them here would have the scheduler of `make up` catch up every
    day from the start date to yesterday, on days no raw drop will ever land for."""
    from kaizen.dags.tasks import START_DATE

    dataops = dag_id(rt.project.name, "dataops_daily")
    echo(
        f"    the DAGs stay paused: a run or backfill you start after `make up` waits queued "
        f"until you unpause its DAG (the UI's toggle, or `AIRFLOW_HOME={rt.settings.airflow_home} "
        f".venv/bin/airflow dags unpause {dataops}`); unpaused, {dataops} catches up every "
        f"day since {START_DATE.date()}"
    )


def _summary(report: Any) -> str:
    """A generator's report in one line: its scalar fields, and the total of its counts."""
    if not dataclasses.is_dataclass(report) or isinstance(report, type):
        return str(report)
    parts = []
    for f in dataclasses.fields(report):
        value = getattr(report, f.name)
        if isinstance(value, bool | int | float | str):
            parts.append(
                f"{f.name} {value:.3g}" if isinstance(value, float) else f"{f.name} {value}"
            )
        elif isinstance(value, dict):
            parts.append(f"{f.name} {sum(v for v in value.values() if isinstance(v, int))}")
        elif isinstance(value, list | tuple):
            parts.append(f"{f.name} {len(value)}")
    return ", ".join(parts) or str(report)


def _run_dataops(
    rt: Runtime, dates: list[str], progress: Callable[[DagRunOutcome, int, int], None]
) -> list[DagRunOutcome]:
    """Every day through the DAG. Unless the user chose a Data Docs policy, pages render for
    failures only until the last day (rendering is most of a passing validation's cost)."""
    from kaizen.config import get_settings

    dataops = dag_id(rt.project.name, "dataops_daily")
    if "KAIZEN_GX_DATA_DOCS" in os.environ or len(dates) < 2:
        return run_daily(dataops, dates, rt.settings, progress=progress)
    total = len(dates)

    def counted(offset: int) -> Callable[[DagRunOutcome, int, int], None]:
        return lambda o, done, _n: progress(o, offset + done, total)

    try:
        os.environ["KAIZEN_GX_DATA_DOCS"] = "failures"
        get_settings.cache_clear()
        outcomes = run_daily(dataops, dates[:-1], rt.settings, progress=counted(0))
    finally:
        del os.environ["KAIZEN_GX_DATA_DOCS"]
        get_settings.cache_clear()
    return outcomes + run_daily(dataops, dates[-1:], rt.settings, progress=counted(total - 1))


def _python(value: Any) -> Any:
    """A frame's scalar as plain Python (numpy's int64 is not an int to pydantic)."""
    return value.item() if hasattr(value, "item") else value


def _request_row(rt: Runtime, dates: list[str]) -> dict[str, Any] | None:
    """A real request of the history: the first entity (by join keys) asked on the last day
    (else on any day), with its join keys and request-time fields, from the project's
    traffic sampler (by default its labelled rows)."""
    from kaizen.sampler import sample

    end = (dt.date.fromisoformat(dates[-1]) + dt.timedelta(days=1)).isoformat()
    keys, fields = rt.project.join_keys, rt.project.request_fields
    try:
        rows = sample(rt, dates[-1], end)
        if rows.empty:
            rows = sample(rt, dates[0], end)
    except KaizenError as exc:
        log.warning("no request to show: %s", exc)
        return None
    if rows.empty:
        return None
    row = rows.sort_values(keys, kind="stable").iloc[0]
    return {k: _python(row[k]) for k in (*keys, *fields)}


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def _show_online_features(
    rt: Runtime, echo: Callable[[str], None], request: dict[str, Any] | None
) -> None:
    """One online lookup through the feature service, as a caller of the store would see it."""
    if request is None:
        echo("    online features: no request in the history to look up")
        return
    from kaizen.featurestore.store import open_store

    store = open_store(rt.settings)
    service = store.get_feature_service(rt.params.training_set.feature_service)
    row = store.get_online_features(features=service, entity_rows=[request])
    values = {k: v[0] for k, v in row.to_dict().items() if k not in request}
    echo(f"    online features for {_describe(request)} ({service.name}): {_describe(values)}")


def _show_promotion(
    rt: Runtime,
    echo: Callable[[str], None],
    last_ds: str,
    request: dict[str, Any] | None,
) -> bool:
    """The ledger's story, then one prediction through the same code path as POST /predict,
    asked at the end of the generated history (the features' TTLs are judged then). False
    when there is no champion."""
    from kaizen.promotion.ledger import events, format_events
    from kaizen.serving.app import build_predictor
    from kaizen.serving.schemas import request_model
    from kaizen.transforms.contract import as_of

    for line in format_events(events(rt)[-3:]):
        echo(f"    {line}")
    asked_at = as_of(last_ds).to_pydatetime()
    predictor = build_predictor(rt, clock=lambda: asked_at)
    predictor.refresher.refresh()
    if predictor.deployment.champion is None:
        echo("    no champion: the gates kept the candidate out (see the reasons above)")
        return False
    if request is None:
        echo("    no request in the history to predict")
        return True
    service = rt.params.training_set.feature_service
    models = request_model(
        rt.project, rt.schema.service(service), rt.schema.service_join_keys(service)
    )
    [answer] = predictor.predict([models.predict(**request)])
    predictor.log.flush()
    positive = rt.project.declaration.label.positive
    echo(
        f"    POST /predict {_describe(request)} -> p({positive})={answer.probability:.3f} "
        f"{answer.decision} by v{answer.model_version} @{answer.alias} "
        f"(features fresh at {asked_at:%Y-%m-%d %H:%M}Z: {answer.fresh}); "
        f"`make serve` serves it"
    )
    return True


def _show_model(rt: Runtime, echo: Callable[[str], None]) -> None:
    data = rt.settings.require_project() / "data"  # the project's DVC outputs
    registered = json.loads((data / "registered.json").read_text())
    metrics = json.loads((data / "eval" / "metrics.json").read_text())["holdout"]
    echo(
        f"    {registered['model_uri']} @{registered['alias']}: holdout {metrics['window'][0]} .. {metrics['window'][1]}, "
        f"ROC AUC {metrics['roc_auc']}, PR AUC {metrics['pr_auc']}, Brier {metrics['brier']} "
        f"({metrics['rows']} rows, {metrics['positives']} positive)"
    )
    echo(
        f"    in {data.parent}: dvc metrics show / dvc plots show: the same numbers and curves; "
        "mlflow ui: the run and its manifest"
    )
