"""One prediction request's path, without HTTP: route, read features, score, decide, log.

A predictor serves one project: its requests are that project's request model
(`kaizen.serving.schemas.request_model`), its entity rows the join keys and request fields
of each request, its log rows the project's `log_schema`.

`Predictor.predict(requests)` serves a single request or a batch the same way: one online read
per feature service for all rows (champion and challenger usually share one), one
`predict_proba` per model for its rows. The deployment (champion, challenger) is read once per
call, so an alias swap in the middle never mixes models within a call.

What the store cannot vouch for is never decided by the threshold: an entity with no row in
any view of its model's feature service is `UnknownEntity` (a 404, nothing scored or logged),
and one with some views missing or stale follows `serve.incomplete_policy` (`refer`: the
answer is `serve.refer_decision`, with the reason).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kaizen.errors import KaizenError
from kaizen.featurestore.online import EntityFeatures, read_features
from kaizen.logs import get_logger
from kaizen.params import Params
from kaizen.serving.deployment import AliasRefresher, Deployment, ServedModel, features_json
from kaizen.serving.metrics import ProjectMetrics
from kaizen.serving.predictions import PredictionLog
from kaizen.serving.routing import CHAMPION, route
from kaizen.serving.schemas import RequestModels

log = get_logger(__name__)


class NoChampion(KaizenError):
    """No model is loaded under the champion alias: nothing can answer (503)."""


class FeaturesUnavailable(KaizenError):
    """The online store could not be read (503)."""


# What a client is told: the cause (a host, a port, a driver's message) goes to the log only.
UNAVAILABLE = "online features unavailable: the online store did not answer; retry later"


class PredictionFailed(KaizenError):
    """The model could not score the request (500)."""


class UnknownEntity(KaizenError):
    """The online store has no row for these entities in any view (404). `rows` are their
    positions in the call's requests."""

    def __init__(self, message: str, rows: list[int]):
        super().__init__(message)
        self.rows = rows


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Prediction:
    request_id: str
    probability: float
    decision: str
    model_version: str
    alias: str
    fresh: bool
    stale_views: list[str]
    missing_views: list[str]
    reason: str | None = None  # why the decision is not the threshold's (a referral)

    def as_response(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "probability": self.probability,
            "decision": self.decision,
            "model_version": self.model_version,
            "alias": self.alias,
            "reason": self.reason,
            "feature_freshness": {
                "fresh": self.fresh,
                "stale_views": self.stale_views,
                "missing_views": self.missing_views,
            },
        }


class Predictor:
    def __init__(
        self,
        params: Params,
        store: Any,
        refresher: AliasRefresher,
        prediction_log: PredictionLog,
        metrics: ProjectMetrics,
        models: RequestModels,
        clock: Callable[[], dt.datetime] = utc_now,
        model_name: str = "",
    ) -> None:
        self.project = models.project  # the project's name
        self.model_name = model_name  # its registered model (kaizen.yaml model.name)
        self.models = models
        self.params = params
        self.serve = params.serve
        self.production = params.promote.production
        self.store = store
        self.refresher = refresher
        self.log = prediction_log
        self.metrics = metrics
        self.clock = clock

    @property
    def deployment(self) -> Deployment:
        return self.refresher.current

    def decide(self, probability: float, entity: EntityFeatures) -> tuple[str, str | None]:
        """The decision and, when it is a referral, why: the threshold's only when every
        view is present and fresh, or when `serve.incomplete_policy` is `score`."""
        gaps = {"missing": entity.missing_views, "stale": entity.stale_views}
        if any(gaps.values()) and self.serve.incomplete_policy == "refer":
            listed = "; ".join(f"{kind} {', '.join(sorted(v))}" for kind, v in gaps.items() if v)
            reason = f"incomplete features ({listed}): referred (serve.incomplete_policy: refer)"
            return self.serve.refer_decision, reason
        below, at_or_above = self.serve.decisions
        return (at_or_above if probability >= self.serve.decision_threshold else below), None

    def _unknown(self, entities: Sequence[EntityFeatures]) -> None:
        """Raise UnknownEntity when an entity (one per request, in order) has no view at all,
        naming its keys."""
        unknown = [i for i, e in enumerate(entities) if not any(v.found for v in e.views.values())]
        if not unknown:
            return
        self.metrics.errors.labels("unknown_entity").inc()
        names = self.models.join_keys
        keys = [", ".join(f"{k}={entities[i].request[k]!r}" for k in names) for i in unknown]
        shown = "; ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
        what = "entity" if len(keys) == 1 else f"entities ({len(keys)})"
        them = "it" if len(keys) == 1 else "them"
        message = f"unknown {what} {shown}: the online store has no features for {them}"
        raise UnknownEntity(message, unknown)

    def route(self, request: Any, has_challenger: bool) -> Any:
        return route(
            self.models.key(request),
            self.production.mode,
            self.production.canary_share,
            self.serve.canary_salt,
            has_challenger,
        )

    def _require(self, champion: Any) -> None:
        if champion is None:
            self.metrics.errors.labels("no_champion").inc()
            raise NoChampion(
                f"no model is loaded under the alias {self.params.promote.champion_alias!r}: "
                "promote a version (or wait for the alias refresh)"
            )

    def explain(self, request: Any, top_k: int) -> dict[str, Any]:
        """The drivers of the prediction `predict` would serve for this request: the same
        routing (champion or the entity's canary challenger) and the same online features.
        Nothing is logged: an explanation is not a decision."""
        deployment = self.deployment
        champion, challenger = deployment.champion, deployment.challenger
        self._require(champion)
        chosen = self.route(request, challenger is not None)
        model = champion if chosen.served == CHAMPION or challenger is None else challenger
        assert model is not None
        entity = self.models.entity_row(request)
        try:
            (features,) = read_features(
                self.store,
                model.feature_service,
                [entity],
                self.clock(),
                self.serve.freshness_policy,
                self.serve.online_read,
            ).entities
        except Exception as exc:
            self.metrics.errors.labels("feature_store").inc()
            log.error("online features unavailable (%s: %s)", type(exc).__name__, _first_line(exc))
            raise FeaturesUnavailable(UNAVAILABLE) from None
        self._unknown([features])
        (inputs,) = model.input_rows([{**features.values, **entity}])
        try:
            found = model.explain(model.frame([inputs]))
        except Exception as exc:
            self.metrics.errors.labels("explain").inc()
            raise PredictionFailed(
                f"model {model.number} could not be explained: {type(exc).__name__}: "
                f"{_first_line(exc)}"
            ) from None
        probability = float(found.proba[0])
        decision, reason = self.decide(probability, features)
        return {
            "probability": probability,
            "decision": decision,
            "reason": reason,
            "model_version": model.number,
            "alias": model.alias,
            "base_value": float(found.base[0]),
            "contributions": [
                {**d, "value": inputs[str(d["feature"])]} for d in found.drivers(0, top_k)
            ],
        }

    def predict(self, requests: Sequence[Any], endpoint: str = "predict") -> list[Prediction]:
        """Score `requests` (instances of the project's request model)."""
        started = time.perf_counter()
        deployment = self.deployment  # one read: a swap cannot mix models within this call
        champion, challenger = deployment.champion, deployment.challenger
        self._require(champion)
        now = self.clock()
        ids = [r.request_id or uuid.uuid4().hex for r in requests]
        routes = [self.route(r, challenger is not None) for r in requests]
        # (row, model, role): who scores what.
        jobs: list[tuple[int, ServedModel, str]] = []
        for i, chosen in enumerate(routes):
            served = champion if chosen.served == CHAMPION else challenger
            assert served is not None
            jobs.append((i, served, "served"))
            if chosen.shadow and challenger is not None:
                jobs.append((i, challenger, "shadow"))
        entity_rows = [self.models.entity_row(r) for r in requests]
        features: dict[str, list[EntityFeatures]] = {}
        try:
            for service in sorted({model.feature_service for _, model, _ in jobs}):
                features[service] = read_features(
                    self.store,
                    service,
                    entity_rows,
                    now,
                    self.serve.freshness_policy,
                    self.serve.online_read,
                ).entities
        except Exception as exc:
            self.metrics.errors.labels("feature_store").inc()
            message = f"online features unavailable ({type(exc).__name__}: {_first_line(exc)})"
            log.error("%s; %d request(s) failed", message, len(requests))
            self._log_failures(requests, ids, jobs, now, started, message)  # the detail: ours
            raise FeaturesUnavailable(UNAVAILABLE) from None
        # Before anything is scored or logged: an entity its served model knows nothing of.
        self._unknown([features[m.feature_service][i] for i, m, role in jobs if role == "served"])
        # Score: one call per (model, role) over its rows.
        groups: dict[tuple[str, str, str], list[int]] = {}
        models: dict[tuple[str, str, str], ServedModel] = {}
        for i, model, role in jobs:
            key = (model.alias, model.number, role)
            groups.setdefault(key, []).append(i)
            models[key] = model
        results: dict[tuple[int, str], tuple[float | None, str | None]] = {}
        inputs_of: dict[tuple[int, str], dict[str, Any]] = {}
        for key, rows in groups.items():
            model, role = models[key], key[2]
            entities = features[model.feature_service]
            try:
                merged = [{**entities[i].values, **entity_rows[i]} for i in rows]
                inputs = model.input_rows(merged)
                for i, row in zip(rows, inputs, strict=True):
                    inputs_of[(i, role)] = row
                scores = model.score(model.frame(inputs))
                for i, score in zip(rows, scores, strict=True):
                    results[(i, role)] = (float(score), None)
            except Exception as exc:
                self.metrics.errors.labels(f"model_{role}").inc()
                error = f"model {model.number} failed: {type(exc).__name__}: {_first_line(exc)}"
                log.error(
                    "%s (%d row(s), %s)", error, len(rows), role, extra={"model_version": key[1]}
                )
                for i in rows:
                    results[(i, role)] = (None, error)
        latency_ms = (time.perf_counter() - started) * 1000
        out: list[Prediction] = []
        log_rows = []
        served_error = None
        for i, model, role in jobs:
            probability, error = results[(i, role)]
            entity = features[model.feature_service][i]
            missing = entity.missing_views
            fresh = not entity.stale_views and not missing
            decision, reason = (
                self.decide(probability, entity) if probability is not None else (None, None)
            )
            log_rows.append(
                self._row(
                    requests[i], ids[i], now, model, role, probability, decision,
                    features_json(inputs_of.get((i, role), {})), fresh, latency_ms, error,
                )
            )  # fmt: skip
            if error is None:
                self.metrics.predictions.labels(model.number, model.alias, role, decision).inc()
            if role != "served":
                continue
            if error is not None:
                served_error = error
                continue
            assert probability is not None and decision is not None
            out.append(
                Prediction(
                    request_id=ids[i],
                    probability=probability,
                    decision=decision,
                    model_version=model.number,
                    alias=model.alias,
                    fresh=fresh,
                    stale_views=sorted(entity.stale_views),
                    missing_views=sorted(missing),
                    reason=reason,
                )
            )
        self.log.append(log_rows)
        self.metrics.log_queued.set(self.log.queued())
        self.metrics.latency.labels(endpoint).observe(latency_ms / 1000)
        if served_error is not None:
            raise PredictionFailed(served_error)
        return out

    def _row(
        self,
        request: Any,
        request_id: str,
        now: dt.datetime,
        model: ServedModel,
        role: str,
        probability: float | None,
        decision: str | None,
        features: str,
        fresh: bool,
        latency_ms: float,
        error: str | None,
    ) -> dict[str, Any]:
        m = self.models
        return {
            "request_id": request_id,
            "ts": now,
            **{name: getattr(request, name) for name in m.join_keys},
            m.row_id: getattr(request, m.row_id),
            **{name: getattr(request, name) for name in m.fields},
            "model_version": model.number,
            "alias": model.alias,
            "role": role,
            "probability": probability,
            "decision": decision,
            "features": features,
            "fresh": fresh,
            "latency_ms": latency_ms,
            "error": error,
        }

    def _log_failures(
        self,
        requests: Sequence[Any],
        ids: list[str],
        jobs: list[tuple[int, ServedModel, str]],
        now: dt.datetime,
        started: float,
        error: str,
    ) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        self.log.append(
            self._row(requests[i], ids[i], now, model, role, None, None, "{}", False, latency_ms, error)
            for i, model, role in jobs
        )  # fmt: skip


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""
