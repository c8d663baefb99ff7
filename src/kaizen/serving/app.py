"""The prediction API's FastAPI app, behind the bearer token: one process, several projects.

Each served project has its own routes under its name: `POST /<project>/predict`,
`/<project>/predict/batch`, `/<project>/explain`, `GET /<project>/metadata` and the open
`GET /<project>/health`; its request body is the project's (`schemas.request_model`). The
root has the open `GET /health` (200 only when every served project has a champion) and
`GET /metrics` (every family labelled by project).

`build_predictor(rt)` wires one project's alias refresher, prediction log and metrics;
`build_app(predictors, token, max_in_flight)` is the ASGI app (its lifespan starts and stops
every project's background threads: the last log rows are written on shutdown), shedding
load past `max_in_flight` requests (`kaizen.asgi.LoadShed`, never the health checks);
`create_app()` does both from the settings, for `kaizen serve` and its uvicorn workers.
An entity the online store has no row for is a 404 naming its keys.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from kaizen.asgi import OPEN_PATHS, BearerAuth, LoadShed
from kaizen.config import DEFAULT_MAX_IN_FLIGHT
from kaizen.errors import ConfigError
from kaizen.logs import bound_context, get_logger
from kaizen.runtime import Runtime
from kaizen.serving.deployment import AliasRefresher, load_served, resolve_alias
from kaizen.serving.metrics import CONTENT_TYPE, ServingMetrics, render_all
from kaizen.serving.predictions import TABLE, PredictionLog, log_schema
from kaizen.serving.predictor import (
    FeaturesUnavailable,
    NoChampion,
    PredictionFailed,
    Predictor,
    UnknownEntity,
    utc_now,
)
from kaizen.serving.schemas import (
    BatchResponse,
    ExplainResponse,
    PredictResponse,
    request_model,
)
from kaizen.serving.server import require_token, served_projects

log = get_logger(__name__)
NO_CHAMPION = "no champion loaded"


def build_predictor(
    rt: Runtime,
    store: Any | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
    writer: Callable[[Any, list[dict[str, Any]]], list[str]] | None = None,
    resolve: Callable[[str], str | None] | None = None,
    metrics: ServingMetrics | None = None,
) -> Predictor:
    """Everything one project's requests need, not yet started (the app's lifespan starts
    it). `resolve` (alias -> version) replaces the registry's aliases, e.g. to pin one
    version; `metrics` is the process's families (shared by the projects of one app)."""
    from kaizen.featurestore.store import open_store, with_redis_timeout

    p = rt.params
    project = rt.project
    families = metrics if metrics is not None else ServingMetrics()
    bound = families.for_project(project.name)
    service = p.training_set.feature_service
    schema = rt.schema
    models = request_model(project, schema.service(service), schema.service_join_keys(service))

    def on_swap(role: str, old: str | None, new: str | None) -> None:
        alias = p.promote.champion_alias if role == "champion" else p.promote.challenger_alias
        log.info(
            "%s: alias %s moved: version %s -> %s (swapped; no restart)",
            project.name,
            alias,
            old,
            new,
        )
        bound.swaps.labels(alias).inc()
        if old is not None:
            bound.model.labels(alias, old).set(0)
        if new is not None:
            bound.model.labels(alias, new).set(1)

    refresher = AliasRefresher(
        {"champion": p.promote.champion_alias, "challenger": p.promote.challenger_alias},
        resolve=resolve or (lambda alias: resolve_alias(rt, alias)),
        load=lambda number, alias: load_served(rt, number, alias),
        interval_s=p.serve.alias_refresh_seconds,
        on_swap=on_swap,
        on_error=lambda _exc: bound.refresh_errors.inc(),
    )
    prediction_log = PredictionLog(
        rt.lake,
        queue_max=p.serve.log_queue_max,
        flush_rows=p.serve.log_flush_rows,
        flush_seconds=p.serve.log_flush_seconds,
        on_drop=bound.log_dropped.inc,
        on_written=bound.log_written.inc,
        on_write_error=bound.log_write_errors.inc,
        writer=writer,
        schema=log_schema(project),
    )
    return Predictor(
        p,
        store
        if store is not None
        else open_store(with_redis_timeout(rt.settings, p.serve.online_timeout_seconds)),
        refresher,
        prediction_log,
        bound,
        models,
        clock=clock,
        model_name=rt.model_name,
    )


def one_line(exc: RequestValidationError) -> str:
    """The first problem of a request body, e.g. `amount: must be > 0 (got -5)`."""
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


def _body(model: type) -> Callable[[Any], Any]:
    """Give an endpoint's `body` parameter the project's model (built at run time, so it
    cannot be written in the annotation)."""

    def annotate(endpoint: Any) -> Any:
        endpoint.__annotations__ = {**endpoint.__annotations__, "body": model}
        return endpoint

    return annotate


def _by_name(predictors: Predictor | Sequence[Predictor]) -> dict[str, Predictor]:
    listed = [predictors] if isinstance(predictors, Predictor) else list(predictors)
    if not listed:
        raise ConfigError("the prediction API needs at least one project to serve")
    out: dict[str, Predictor] = {}
    logs: dict[str, str] = {}
    for predictor in listed:
        name = predictor.project
        if name in out:
            raise ConfigError(f"project {name!r} is served twice")
        where = predictor.log.lake.url(TABLE)
        if where in logs:
            raise ConfigError(
                f"projects {logs[where]!r} and {name!r} would write one prediction log "
                f"({where}): give each its own lake root (put {{project}} in KAIZEN_LAKE_ROOT)"
            )
        out[name], logs[where] = predictor, name
    return out


def _project_routes(predictor: Predictor) -> APIRouter:
    """One project's routes, under `/<project>`."""
    p = predictor.params
    models = predictor.models
    router = APIRouter(prefix=f"/{predictor.project}", tags=[predictor.project])

    def error(status: int, reason: str, message: str) -> JSONResponse:
        predictor.metrics.errors.labels(reason).inc()
        return JSONResponse({"detail": message}, status_code=status)

    @router.get("/health")
    def health() -> JSONResponse:
        """Open: 200 when the project's champion is loaded, 503 otherwise."""
        if predictor.deployment.champion is None:
            return JSONResponse({"status": NO_CHAMPION}, status_code=503)
        return JSONResponse({"status": "ok"})

    # The online read and predict_proba block, so they run in the thread pool. The
    # endpoints themselves are async: FastAPI validates a sync endpoint's response in the
    # pool too, a second thread hop per request (~0.3 ms of a ~5 ms ONNX request, py-spy).
    def predict_one(body: Any) -> dict[str, Any]:
        keys = dict(zip(models.join_keys, models.key(body), strict=True))
        with bound_context(project=predictor.project, **keys):  # on every log line it makes
            (result,) = predictor.predict([body], endpoint="predict")
        return result.as_response()

    @router.post("/predict", response_model=PredictResponse)
    @_body(models.predict)
    async def predict(body: Any) -> dict[str, Any]:
        return await run_in_threadpool(predict_one, body)

    def predict_many(body: Any) -> dict[str, Any]:
        with bound_context(project=predictor.project):
            results = predictor.predict(body.requests, endpoint="batch")
        return {"results": [r.as_response() for r in results]}

    @router.post("/predict/batch", response_model=BatchResponse)
    @_body(models.batch)
    async def predict_batch(body: Any) -> Any:
        limit = p.serve.batch_max_rows
        if len(body.requests) > limit:
            return error(
                422,
                "invalid_request",
                f"requests: at most {limit} rows per batch (got {len(body.requests)}; "
                "params.yaml serve.batch_max_rows)",
            )
        return await run_in_threadpool(predict_many, body)

    @router.post("/explain", response_model=ExplainResponse)
    @_body(models.explain)
    def explain(body: Any) -> dict[str, Any]:
        keys = dict(zip(models.join_keys, models.key(body), strict=True))
        with bound_context(project=predictor.project, **keys):
            return predictor.explain(body, body.top_k or p.explain.api_top_k)

    @router.get("/metadata")
    def metadata() -> dict[str, Any]:
        deployment = predictor.deployment
        production = p.promote.production
        return {
            "project": predictor.project,
            "model_name": predictor.model_name,
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
            "request": {
                "join_keys": list(models.join_keys),
                "fields": list(models.fields),
                "row_id": models.row_id,
            },
            "decision_threshold": p.serve.decision_threshold,
            "decisions": list(p.serve.decisions),
            "freshness_policy": p.serve.freshness_policy,
            "incomplete_policy": p.serve.incomplete_policy,
            "refer_decision": p.serve.refer_decision,
            "alias_refresh_seconds": p.serve.alias_refresh_seconds,
        }

    return router


def build_app(
    predictors: Predictor | Sequence[Predictor],
    token: str,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> Any:
    """The API of one or several projects' predictors, behind the bearer token; past
    `max_in_flight` requests in flight (settings.prediction_api_max_in_flight) a 503 at once."""
    served = _by_name(predictors)
    names = sorted(served)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for predictor in served.values():
            predictor.log.start()
            predictor.refresher.start()
        yield
        for predictor in served.values():
            predictor.refresher.stop()
        for predictor in served.values():
            predictor.log.close()
        log.info("prediction API stopped; prediction logs flushed (%s)", ", ".join(names))

    app = FastAPI(
        title="Kaizen prediction API",
        description="Each project's champion model on the online features of its feature "
        f"service, under /<project>: {', '.join(names)}.",
        lifespan=lifespan,
    )

    def project_of(request: Request) -> Predictor | None:
        return served.get(request.url.path.lstrip("/").split("/", 1)[0])

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        predictor = project_of(request)
        if predictor is not None:
            predictor.metrics.errors.labels("invalid_request").inc()
        return JSONResponse({"detail": one_line(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail
        if exc.status_code == 404 and project_of(request) is None:
            first = request.url.path.lstrip("/").split("/", 1)[0]
            detail = f"no project {first!r} is served here (serving {', '.join(names)})"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(NoChampion)
    async def _no_champion(_request: Request, exc: NoChampion) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)  # counted by the predictor

    @app.exception_handler(UnknownEntity)
    async def _unknown(_request: Request, exc: UnknownEntity) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)  # counted by the predictor

    @app.exception_handler(FeaturesUnavailable)
    async def _features(_request: Request, exc: FeaturesUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(PredictionFailed)
    async def _failed(_request: Request, exc: PredictionFailed) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=500)

    @app.get("/health")
    def health() -> JSONResponse:
        """Open: 200 when every served project has a champion loaded, 503 naming those
        that have none. Says nothing else."""
        states = {
            name: "ok" if served[name].deployment.champion is not None else NO_CHAMPION
            for name in names
        }
        missing = [name for name, state in states.items() if state != "ok"]
        if missing:
            status = f"{NO_CHAMPION} for {', '.join(missing)}"
            return JSONResponse({"status": status, "projects": states}, status_code=503)
        return JSONResponse({"status": "ok", "projects": states})

    @app.get("/metrics")
    def prometheus() -> Response:
        for predictor in served.values():
            predictor.metrics.log_queued.set(predictor.log.queued())
        body = render_all([p.metrics.families for p in served.values()])
        return Response(body, media_type=CONTENT_TYPE)

    for name in names:
        app.include_router(_project_routes(served[name]))
    open_paths = frozenset(OPEN_PATHS | {f"/{name}/health" for name in names})
    return LoadShed(BearerAuth(app, token, open_paths=open_paths), max_in_flight, open_paths)


def startup_line(predictor: Predictor) -> str:
    d, p = predictor.deployment, predictor.params
    return (
        f"{predictor.project}: champion @{p.promote.champion_alias}="
        f"{d.champion.number if d.champion else 'none'}, challenger @{p.promote.challenger_alias}="
        f"{d.challenger.number if d.challenger else 'none'}, mode "
        f"{p.promote.production.mode} (canary share {p.promote.production.canary_share}), "
        f"threshold {p.serve.decision_threshold}, freshness {p.serve.freshness_policy}, "
        f"incomplete features: {p.serve.incomplete_policy}"
    )


def create_app() -> Any:
    """The app from the settings (uvicorn's factory, in each worker process): every project
    of `served_projects`, each with its own Runtime (`settings.for_project`)."""
    from kaizen.config import get_settings
    from kaizen.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    token = require_token(settings)
    started = time.monotonic()
    metrics = ServingMetrics()
    predictors = []
    for name in served_projects(settings):
        predictor = build_predictor(Runtime(settings.for_project(name)), metrics=metrics)
        # Load the models before the first request (the refresher's later loads happen in
        # its thread); a registry failure here is logged and retried by the refresher.
        try:
            predictor.refresher.refresh()
        except Exception as exc:
            log.error(
                "%s: initial model load failed (%s: %s); retrying in the background",
                name,
                type(exc).__name__,
                exc,
            )
        predictors.append(predictor)
    app = build_app(predictors, token, settings.prediction_api_max_in_flight)
    log.info(
        "prediction API ready in %.1fs (a 503 past %d requests in flight)",
        time.monotonic() - started,
        settings.prediction_api_max_in_flight,
    )
    for predictor in predictors:
        log.info("serving /%s: %s", predictor.project, startup_line(predictor))
    threading.Thread(
        target=_warm_explainer, args=(metrics,), name="explain-warm-up", daemon=True
    ).start()
    return app


def _warm_explainer(metrics: ServingMetrics) -> None:
    """Off the request path, yet not free: while shap's numba code compiles (~7-15 s) it
    holds the GIL often enough to double the p99 of requests served meanwhile, so the
    `kaizen_explainer_warm` gauge (one series per project) says when that is over.
    /explain still works (slowly, once) if this fails."""
    from kaizen.model.explain import warm_up

    started = time.monotonic()
    metrics.set_explainer_warm(0)
    try:
        warm_up()
    except Exception as exc:
        metrics.set_explainer_warm(-1)
        log.warning("explainer warm-up failed (%s: %s)", type(exc).__name__, exc)
        return
    metrics.set_explainer_warm(1)
    log.info("explainer warmed up in %.1fs", time.monotonic() - started)
