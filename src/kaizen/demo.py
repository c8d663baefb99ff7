"""`make demo`: the main job end to end on embedded defaults, then a summary of what it made.

It simulates the configured history (params.yaml `simulate`), runs the DataOps DAG for every
simulated day through Airflow (ingest, the validation gate, features, the feature gate and
materialization into Feast's online store), reports the lake and one online lookup, trains
through the train DAG (`dvc repro`), runs the promotion gates through the promote DAG (the
first model that passes staging becomes the first champion) and answers one prediction the
way `POST /predict` does. Rerunning it is safe: unchanged raw files are left alone and every
partition is replaced, never appended to.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import warnings
from collections.abc import Callable

from kaizen.errors import KaizenError
from kaizen.lake import Partition
from kaizen.logs import get_logger
from kaizen.orchestrate import DagRunOutcome, run_daily, run_once
from kaizen.quality.context import docs_index
from kaizen.runtime import Runtime
from kaizen.simulate import simulate
from kaizen.transforms.views import VIEWS

log = get_logger(__name__)


def run_demo(rt: Runtime, echo: Callable[[str], None] = print, train: bool = True) -> None:
    started = time.perf_counter()
    p = rt.params.simulate
    dates = [(p.start + dt.timedelta(days=i)).isoformat() for i in range(p.days)]
    echo(
        f"1/5 simulating {p.days} days of the furniture store ({p.customers} customers) into {rt.settings.raw_root}"
    )
    report = simulate(
        p, rt.settings.raw_root, storage_options=rt.settings.storage_options(rt.settings.raw_root)
    )
    echo(
        f"    {report.written} files written, {report.unchanged} unchanged; late rate {report.late_rate:.3f}"
    )

    echo(f"2/5 running dataops_daily through Airflow for {dates[0]} .. {dates[-1]}")
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
    for view in VIEWS:
        parts = rt.lake.partitions("features", view)
        echo(
            f"    features/{view}: {len(parts)} days published"
            + (f", {parts[0]} .. {parts[-1]}" if parts else "")
        )
    echo(f"    Data Docs: {docs_index(rt.settings)}")
    _show_online_features(rt, echo)
    if not train:
        echo(
            f"done in {time.perf_counter() - started:.0f}s; the lake has data: `make repro` trains on it"
        )
        if failed:
            raise KaizenError(
                f"{len(failed)} dataops_daily runs did not succeed; see the Airflow logs in {rt.settings.airflow_home}"
            )
        return
    echo("4/5 training through Airflow (the train DAG runs `dvc repro`)")
    problems = [f"{len(failed)} dataops_daily runs did not succeed"] if failed else []
    trained = run_once("train", rt.settings, conf={"force": True})
    if trained.ok:
        _show_model(rt, echo)
        echo("5/5 the promotion gates through Airflow (staging, then production)")
        promoted = run_once("promote", rt.settings)
        if promoted.ok:
            _show_promotion(rt, echo, dates[-1])
        else:
            echo(f"    promote: {promoted.state} ({promoted.failures()})")
            problems.append(f"the promote DAG ended {promoted.state}")
    else:
        echo(f"    train: {trained.state} ({trained.failures()})")
        problems.append(f"the train DAG ended {trained.state}")
    echo(f"done in {time.perf_counter() - started:.0f}s")
    if problems:
        raise KaizenError(
            f"{'; '.join(problems)}: see the Airflow logs in {rt.settings.airflow_home}"
        )


def _run_dataops(
    rt: Runtime, dates: list[str], progress: Callable[[DagRunOutcome, int, int], None]
) -> list[DagRunOutcome]:
    """Every day through the DAG. Unless the user chose a Data Docs policy, pages render for
    failures only until the last day (rendering is most of a passing validation's cost)."""
    from kaizen.config import get_settings

    if "KAIZEN_GX_DATA_DOCS" in os.environ or len(dates) < 2:
        return run_daily("dataops_daily", dates, rt.settings, progress=progress)
    total = len(dates)

    def counted(offset: int) -> Callable[[DagRunOutcome, int, int], None]:
        return lambda o, done, _n: progress(o, offset + done, total)

    try:
        os.environ["KAIZEN_GX_DATA_DOCS"] = "failures"
        get_settings.cache_clear()
        outcomes = run_daily("dataops_daily", dates[:-1], rt.settings, progress=counted(0))
    finally:
        del os.environ["KAIZEN_GX_DATA_DOCS"]
        get_settings.cache_clear()
    return outcomes + run_daily(
        "dataops_daily", dates[-1:], rt.settings, progress=counted(total - 1)
    )


def _show_online_features(rt: Runtime, echo: Callable[[str], None]) -> None:
    """One online lookup through the feature service, as a caller of the store would see it."""
    from kaizen.featurestore.store import open_store

    store = open_store(rt.settings)
    service = store.get_feature_service(rt.params.feature_store.service)
    row = store.get_online_features(
        features=service, entity_rows=[{"customer_id": 1, "requested_amount": 900.0}]
    )
    values = {k: v[0] for k, v in row.to_dict().items()}
    shown = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )
    echo(f"    online features for customer 1 ({service.name}, requesting 900.00): {shown}")


def _show_promotion(rt: Runtime, echo: Callable[[str], None], last_ds: str) -> None:
    """The ledger's story, then one prediction through the same code path as POST /predict,
    asked at the end of the simulated history (the features' TTLs are judged then)."""
    from kaizen.promotion.ledger import events, format_events
    from kaizen.serving.app import build_predictor
    from kaizen.serving.schemas import PredictRequest
    from kaizen.transforms.views import as_of

    for line in format_events(events(rt)[-3:]):
        echo(f"    {line}")
    asked_at = as_of(last_ds).to_pydatetime()
    predictor = build_predictor(rt, clock=lambda: asked_at)
    predictor.refresher.refresh()
    if predictor.deployment.champion is None:
        echo("    no champion: the gates kept the candidate out (see the reasons above)")
        return
    [answer] = predictor.predict([PredictRequest(customer_id=1, requested_amount=900.0)])
    predictor.log.flush()
    echo(
        f"    POST /predict customer 1, 900.00 -> p(late)={answer.probability:.3f} "
        f"{answer.decision} by v{answer.model_version} @{answer.alias} "
        f"(features fresh at {asked_at:%Y-%m-%d %H:%M}Z: {answer.fresh}); `make serve` serves it"
    )


def _show_model(rt: Runtime, echo: Callable[[str], None]) -> None:
    import json

    registered = json.loads((rt.settings.home / "data" / "registered.json").read_text())
    metrics = json.loads((rt.settings.home / "data" / "eval" / "metrics.json").read_text())[
        "holdout"
    ]
    echo(
        f"    {registered['model_uri']} @{registered['alias']}: holdout {metrics['window'][0]} .. {metrics['window'][1]}, "
        f"ROC AUC {metrics['roc_auc']}, PR AUC {metrics['pr_auc']}, Brier {metrics['brier']} "
        f"({metrics['rows']} invoices, {metrics['positives']} late)"
    )
    echo(
        "    dvc metrics show / dvc plots show: the same numbers and curves; mlflow ui: the run and its manifest"
    )
