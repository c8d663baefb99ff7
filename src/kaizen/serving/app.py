"""The prediction API's FastAPI app, behind the bearer token.

`build_predictor(rt)` wires the alias refresher, the prediction log and the metrics;
`build_app(predictor, token)` is the ASGI app (its lifespan starts and stops the background
threads: the last log rows are written on shutdown); `create_app()` does both from the
settings, for `kaizen serve` and its uvicorn workers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from kaizen.logs import bound_context, get_logger
from kaizen.runtime import Runtime
from kaizen.serving.auth import OPEN_PATHS, BearerAuth, require_token
from kaizen.serving.deployment import AliasRefresher, load_served, resolve_alias
from kaizen.serving.metrics import CONTENT_TYPE, ServingMetrics
from kaizen.serving.predictions import PredictionLog, write_rows
from kaizen.serving.predictor import (
    FeaturesUnavailable,
    NoChampion,
    PredictionFailed,
    Predictor,
    utc_now,
)
from kaizen.serving.schemas import (
    BatchRequest,
    BatchResponse,
    ExplainRequest,
    ExplainResponse,
    PredictRequest,
    PredictResponse,
)

log = get_logger(__name__)


def build_predictor(
    rt: Runtime,
    store: Any | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
    writer: Callable[[Any, list[dict[str, Any]]], list[str]] = write_rows,
    resolve: Callable[[str], str | None] | None = None,
) -> Predictor:
    """Everything a request needs, not yet started (the app's lifespan starts it).
    `resolve` (alias -> version) replaces the registry's aliases, e.g. to pin one version."""
    from kaizen.featurestore.store import open_store, with_redis_timeout

    p = rt.params
    metrics = ServingMetrics()

    def on_swap(role: str, old: str | None, new: str | None) -> None:
        alias = p.promote.champion_alias if role == "champion" else p.promote.challenger_alias
        log.info("alias %s moved: version %s -> %s (swapped; no restart)", alias, old, new)
        metrics.swaps.labels(alias).inc()
        if old is not None:
            metrics.model.labels(alias, old).set(0)
        if new is not None:
            metrics.model.labels(alias, new).set(1)

    refresher = AliasRefresher(
        {"champion": p.promote.champion_alias, "challenger": p.promote.challenger_alias},
        resolve=resolve or (lambda alias: resolve_alias(rt, alias)),
        load=lambda number, alias: load_served(rt, number, alias),
        interval_s=p.serve.alias_refresh_seconds,
        on_swap=on_swap,
        on_error=lambda _exc: metrics.refresh_errors.inc(),
    )
    prediction_log = PredictionLog(
        rt.lake,
        queue_max=p.serve.log_queue_max,
        flush_rows=p.serve.log_flush_rows,
        flush_seconds=p.serve.log_flush_seconds,
        on_drop=metrics.log_dropped.inc,
        on_written=metrics.log_written.inc,
        on_write_error=metrics.log_write_errors.inc,
        writer=writer,
    )
    return Predictor(
        p,
        store
        if store is not None
        else open_store(with_redis_timeout(rt.settings, p.serve.online_timeout_seconds)),
        refresher,
        prediction_log,
        metrics,
        clock=clock,
    )


def one_line(exc: RequestValidationError) -> str:
    """The first problem of a request body, e.g. `requested_amount: must be > 0 (got -5)`."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    where = ".".join(loc) or "body"
    kind = first.get("type", "")
    if kind == "missing":
        message = "is required but missing"
    elif kind == "extra_forbidden":
        message = "is not a known field"
    elif kind == "json_invalid":
        message = "is not valid JSON"
    else:
        message = str(first.get("msg", "is invalid"))
        value = first.get("input")
        if value is not None and not isinstance(value, dict | list):
            message += f" (got {value!r})"[:120]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"


def build_app(predictor: Predictor, token: str) -> Any:
    p = predictor.params
    metrics = predictor.metrics

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        predictor.log.start()
        predictor.refresher.start()
        yield
        predictor.refresher.stop()
        predictor.log.close()
        log.info("prediction API stopped; prediction log flushed")

    app = FastAPI(
        title="Kaizen prediction API",
        description="Credit risk of a customer's next invoice: the champion model on the "
        "online features of its feature service.",
        lifespan=lifespan,
    )

    def error(status: int, reason: str, message: str) -> JSONResponse:
        metrics.errors.labels(reason).inc()
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, "invalid_request", one_line(exc))

    @app.exception_handler(NoChampion)
    async def _no_champion(_request: Request, exc: NoChampion) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)  # counted by the predictor

    @app.exception_handler(FeaturesUnavailable)
    async def _features(_request: Request, exc: FeaturesUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(PredictionFailed)
    async def _failed(_request: Request, exc: PredictionFailed) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=500)

    @app.get("/health")
    def health() -> JSONResponse:
        """Open: 200 when a champion is loaded, 503 otherwise. Says nothing else."""
        if predictor.deployment.champion is None:
            return JSONResponse({"status": "no champion loaded"}, status_code=503)
        return JSONResponse({"status": "ok"})

    # The online read and predict_proba block, so they run in the thread pool. The
    # endpoints themselves are async: FastAPI validates a sync endpoint's response in the
    # pool too, a second thread hop per request (~0.3 ms of a ~5 ms ONNX request, py-spy).
    def predict_one(body: PredictRequest) -> dict[str, Any]:
        with bound_context(entity=body.customer_id):  # on every log line this request makes
            (result,) = predictor.predict([body], endpoint="predict")
        return result.as_response()

    @app.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> dict[str, Any]:
        return await run_in_threadpool(predict_one, body)

    def predict_many(body: BatchRequest) -> dict[str, Any]:
        results = predictor.predict(body.requests, endpoint="batch")
        return {"results": [r.as_response() for r in results]}

    @app.post("/predict/batch", response_model=BatchResponse)
    async def predict_batch(body: BatchRequest) -> Any:
        limit = p.serve.batch_max_rows
        if len(body.requests) > limit:
            return error(
                422,
                "invalid_request",
                f"requests: at most {limit} rows per batch (got {len(body.requests)}; "
                "params.yaml serve.batch_max_rows)",
            )
        return await run_in_threadpool(predict_many, body)

    @app.post("/explain", response_model=ExplainResponse)
    def explain(body: ExplainRequest) -> dict[str, Any]:
        request = PredictRequest(**body.model_dump(exclude={"top_k"}))
        return predictor.explain(request, body.top_k or p.explain.api_top_k)

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        deployment = predictor.deployment
        production = p.promote.production
        return {
            "model_name": p.register_.model_name,
            "champion": deployment.champion.describe() if deployment.champion else None,
            "challenger": deployment.challenger.describe() if deployment.challenger else None,
            "aliases": {
                "champion": p.promote.champion_alias,
                "challenger": p.promote.challenger_alias,
            },
            "routing": {
                "mode": production.mode,
                "canary_share": production.canary_share,
                "active": deployment.challenger is not None,
            },
            "decision_threshold": p.serve.decision_threshold,
            "freshness_policy": p.serve.freshness_policy,
            "alias_refresh_seconds": p.serve.alias_refresh_seconds,
        }

    @app.get("/metrics")
    def prometheus() -> Response:
        metrics.log_queued.set(predictor.log.queued())
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return BearerAuth(app, token, open_paths=OPEN_PATHS)


def startup_line(predictor: Predictor) -> str:
    d, p = predictor.deployment, predictor.params
    return (
        f"champion @{p.promote.champion_alias}="
        f"{d.champion.number if d.champion else 'none'}, challenger @{p.promote.challenger_alias}="
        f"{d.challenger.number if d.challenger else 'none'}, mode "
        f"{p.promote.production.mode} (canary share {p.promote.production.canary_share}), "
        f"threshold {p.serve.decision_threshold}, freshness {p.serve.freshness_policy}"
    )


def create_app() -> Any:
    """The app from the settings (uvicorn's factory, in each worker process)."""
    from kaizen.config import get_settings
    from kaizen.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    token = require_token(settings)
    rt = Runtime(settings)
    predictor = build_predictor(rt)
    started = time.monotonic()
    # Load the models before the first request (the refresher's later loads happen in its
    # thread); a registry failure here is logged and retried by the refresher.
    try:
        predictor.refresher.refresh()
    except Exception as exc:
        log.error(
            "initial model load failed (%s: %s); retrying in the background",
            type(exc).__name__,
            exc,
        )
    log.info(
        "prediction API ready in %.1fs: %s", time.monotonic() - started, startup_line(predictor)
    )
    threading.Thread(
        target=_warm_explainer, args=(predictor.metrics,), name="explain-warm-up", daemon=True
    ).start()
    return build_app(predictor, token)


def _warm_explainer(metrics: ServingMetrics) -> None:
    """Off the request path, yet not free: while shap's numba code compiles (~7-15 s) it
    holds the GIL often enough to double the p99 of requests served meanwhile, so the
    `kaizen_explainer_warm` gauge says when that is over. /explain still works (slowly,
    once) if this fails."""
    from kaizen.model.explain import warm_up

    started = time.monotonic()
    metrics.explainer_warm.set(0)
    try:
        warm_up()
    except Exception as exc:
        metrics.explainer_warm.set(-1)
        log.warning("explainer warm-up failed (%s: %s)", type(exc).__name__, exc)
        return
    metrics.explainer_warm.set(1)
    log.info("explainer warmed up in %.1fs", time.monotonic() - started)
