"""credit_risk's own section of params.yaml (`project:`), validated by this model."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Days = Annotated[int, Field(ge=1, le=3650)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulateParams(_Section):
    """The furniture-store world the simulator draws. CLI flags override these."""

    start: dt.date
    days: Annotated[int, Field(ge=1, le=3650)]
    customers: Annotated[int, Field(ge=10)]
    seed: int
    shock_date: dt.date | None
    shock_kind: Literal["mixed", "concept"]
    late_rate_before: Rate
    late_rate_after: Rate
    terms_days: Annotated[int, Field(ge=0, le=120)]
    orders_per_customer_day: Annotated[float, Field(gt=0.0, le=10.0)]
    signups_per_day_rate: Annotated[float, Field(ge=0.0, le=0.1)]
    changes_per_day_rate: Annotated[float, Field(ge=0.0, le=1.0)]

    @model_validator(mode="after")
    def _shock_inside(self) -> SimulateParams:
        if self.shock_date is not None and self.shock_date < self.start:
            raise ValueError("simulate.shock_date is before simulate.start")
        return self


class FeaturizeParams(_Section):
    """Feature windows and the late label. Features are computed as of the end of a day.

    Column names follow the windows (`orders_30d`, `invoices_180d`), so a changed window is
    a changed feature, never an old name on new values.
    """

    activity_windows_days: tuple[Days, ...]  # orders, spend and average order value
    payments_window_days: Days  # invoices, late counts and ratio, max days late
    late_after_days: Annotated[int, Field(ge=1, le=365)]  # this many days past due = late
    income_band_edges: tuple[float, ...]  # a band is [edge, next edge)
    income_band_labels: tuple[str, ...]  # one more label than edges

    @model_validator(mode="after")
    def _consistent(self) -> FeaturizeParams:
        windows = self.activity_windows_days
        if not windows or list(windows) != sorted(set(windows)):
            raise ValueError("activity_windows_days must be distinct and increasing, e.g. [30, 90]")
        edges = self.income_band_edges
        if not edges or list(edges) != sorted(set(edges)):
            raise ValueError("income_band_edges must be distinct and increasing")
        labels = self.income_band_labels
        if len(labels) != len(edges) + 1 or len(set(labels)) != len(labels) or "" in labels:
            raise ValueError(
                "income_band_labels must be distinct, non-empty and one more than the edges"
            )
        return self


class CreditRiskParams(_Section):
    simulate: SimulateParams
    featurize: FeaturizeParams
