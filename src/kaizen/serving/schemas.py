"""Request and response bodies. Unknown fields are refused: a typo is a 422, never ignored.

The request body is the project's: `request_model(project, service)` builds it from the
declaration (kaizen.yaml `entity.join_keys` and `request.fields`, with their types and
bounds), checked against the feature service's request sources, plus the optional row id
(kaizen.yaml `label.row_id`, the identifier the prediction is logged under) and
`request_id`. The responses are the same for every project.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, create_model

from kaizen.errors import ConfigError
from kaizen.project.declaration import RequestField
from kaizen.project.project import Project

Identifier = Annotated[str, Field(min_length=1, max_length=128)]
INT64 = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]  # an int64 join key
REQUEST_ID = "request_id"
MAX_TEXT = 1024  # the longest string request field


@dataclass(frozen=True)
class RequestModels:
    """One project's request bodies: one row, a batch of rows, and an explain request."""

    project: str
    predict: type[BaseModel]
    batch: type[BaseModel]
    explain: type[BaseModel]
    join_keys: tuple[str, ...]
    fields: tuple[str, ...]  # request-time fields, in declared order
    row_id: str

    def entity_row(self, request: BaseModel) -> dict[str, Any]:
        """The Feast entity row of a request: its join keys and request fields."""
        return {name: getattr(request, name) for name in (*self.join_keys, *self.fields)}

    def key(self, request: BaseModel) -> tuple[Any, ...]:
        """The request's join-key values (what canary routing hashes)."""
        return tuple(getattr(request, name) for name in self.join_keys)


def _join_key(kind: str) -> Any:
    return INT64 if kind == "int64" else Identifier


def _field(spec: RequestField) -> Any:
    bounds = {k: getattr(spec, k) for k in ("gt", "ge", "lt", "le") if getattr(spec, k) is not None}
    if spec.type == "float64":
        return Annotated[float, Field(allow_inf_nan=False, **bounds)]
    if spec.type == "int64":
        return Annotated[StrictInt, Field(**bounds)]
    if spec.type == "bool":
        return StrictBool
    return Annotated[str, Field(max_length=MAX_TEXT)]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def check_request_fields(
    project: Project, service: Any, service_join_keys: Sequence[str] = ()
) -> None:
    """The project's declared request fields are exactly what the feature service's on-demand
    views ask the request for, and its join keys cover the service's (`service_join_keys`,
    `RepoSchema.service_join_keys`); else one ConfigError line naming kaizen.yaml's key.
    `service` is a featurestore.schema.ServiceSchema."""
    keys = [k for k in service_join_keys if k not in project.join_keys]
    if keys:
        raise ConfigError(
            f"{project.where('entity.join_keys')}: feature service {service.name!r} is looked "
            f"up by {keys} too, which are not declared join keys"
        )
    declared = project.request_fields
    needed = list(getattr(service, "request_fields", {}) or {})
    unused = [f for f in declared if f not in needed]
    if unused:
        raise ConfigError(
            f"{project.where('request.fields')}: {unused} are declared but feature service "
            f"{service.name!r} has no request source for them (it asks for {needed or 'none'})"
        )
    undeclared = [f for f in needed if f not in declared]
    if undeclared:
        raise ConfigError(
            f"{project.where('request.fields')}: feature service {service.name!r} needs the "
            f"request fields {undeclared}, which are not declared"
        )
    reserved = [f for f in (*declared, project.row_id) if f == REQUEST_ID]
    if reserved:
        where = "request.fields" if REQUEST_ID in declared else "label.row_id"
        raise ConfigError(f"{project.where(where)}: {REQUEST_ID!r} is the API's own field")
    if project.row_id in declared:
        raise ConfigError(
            f"{project.where('request.fields')}: {project.row_id!r} is the row id "
            "(label.row_id), not a request field"
        )


def _cache_key(project: Project, service: Any) -> tuple[Any, ...]:
    d = project.declaration
    fields = tuple((name, f.type, f.gt, f.ge, f.lt, f.le) for name, f in d.request.fields.items())
    needed = tuple(getattr(service, "request_fields", {}) or {})
    return (str(project.folder), d.name, tuple(d.entity.join_keys.items()), d.label.row_id,
            fields, getattr(service, "name", ""), needed)  # fmt: skip


_cache: dict[tuple[Any, ...], RequestModels] = {}
_lock = threading.Lock()


def request_model(
    project: Project, service: Any, service_join_keys: Sequence[str] = ()
) -> RequestModels:
    """The project's request bodies (cached per project and feature service): the join keys
    (int64: an integer in [0, 2**63 - 1]; string: 1 to 128 characters), each request field
    with its declared type and bounds (floats finite), the optional row id and request id."""
    key = (*_cache_key(project, service), tuple(service_join_keys))
    with _lock:
        found = _cache.get(key)
    if found is not None:
        return found
    check_request_fields(project, service, service_join_keys)
    d = project.declaration
    prefix = _camel(d.name)
    columns: dict[str, Any] = {k: (_join_key(t), ...) for k, t in d.entity.join_keys.items()}
    columns.update({name: (_field(spec), ...) for name, spec in d.request.fields.items()})
    columns[project.row_id] = (Identifier | None, None)
    columns[REQUEST_ID] = (Identifier | None, None)
    config = ConfigDict(extra="forbid")
    predict = create_model(f"{prefix}PredictRequest", __config__=config, **columns)
    batch = create_model(
        f"{prefix}BatchRequest",
        __config__=config,
        requests=(Annotated[list[predict], Field(min_length=1)], ...),  # type: ignore[valid-type]
    )
    explain = create_model(
        f"{prefix}ExplainRequest",
        __base__=predict,
        # default: params explain.api_top_k
        top_k=(Annotated[int, Field(ge=1, le=100)] | None, None),
    )
    models = RequestModels(
        project=d.name,
        predict=predict,
        batch=batch,
        explain=explain,
        join_keys=tuple(d.entity.join_keys),
        fields=tuple(d.request.fields),
        row_id=project.row_id,
    )
    with _lock:
        return _cache.setdefault(key, models)


class FeatureFreshness(BaseModel):
    fresh: bool  # every view of the feature service present and within its TTL
    stale_views: list[str]
    missing_views: list[str]


class PredictResponse(BaseModel):
    request_id: str
    probability: float
    decision: str
    model_version: str
    alias: str
    # Why the decision is not the threshold's: a referral (serve.incomplete_policy), else null.
    reason: str | None = None
    feature_freshness: FeatureFreshness


class BatchResponse(BaseModel):
    results: list[PredictResponse]


class Contribution(BaseModel):
    feature: str
    value: float | str | None  # the input as the model saw it (None: missing)
    contribution: float  # signed change in P(positive) against the model's base value


class ExplainResponse(BaseModel):
    probability: float
    decision: str
    reason: str | None = None  # as PredictResponse's
    model_version: str
    alias: str
    base_value: float  # mean P(positive) over the background; base + contributions = probability
    contributions: list[Contribution]  # the top_k largest in magnitude, largest first
