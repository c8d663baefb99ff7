"""Request and response bodies. Unknown fields are refused: a typo is a 422, never ignored."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

Identifier = Annotated[str, Field(min_length=1, max_length=128)]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
    requested_amount: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    invoice_id: Identifier | None = None
    request_id: Identifier | None = None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: Annotated[list[PredictRequest], Field(min_length=1)]


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
    feature_freshness: FeatureFreshness


class BatchResponse(BaseModel):
    results: list[PredictResponse]


class ExplainRequest(PredictRequest):
    top_k: Annotated[int, Field(ge=1, le=100)] | None = None  # default: params explain.api_top_k


class Contribution(BaseModel):
    feature: str
    value: float | str | None  # the input as the model saw it (None: missing)
    contribution: float  # signed change in P(late) against the model's base value


class ExplainResponse(BaseModel):
    probability: float
    decision: str
    model_version: str
    alias: str
    base_value: float  # mean P(late) over the background; base + all contributions = probability
    contributions: list[Contribution]  # the top_k largest in magnitude, largest first
