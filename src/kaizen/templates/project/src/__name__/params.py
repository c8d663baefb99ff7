"""`params.yaml`'s `project:` section: the __name__ world's knobs and the feature windows."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

# kaizen.yaml reads this many trailing days of events per feature day (features.inputs).
EVENTS_HISTORY_DAYS = 28


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulateParams(_Section):
    """The generator's world; the same values (and seed) always give the same bytes."""

    # What `kaizen -p __name__ simulate` writes without --start / --days.
    start: dt.date = dt.date(2026, 1, 1)
    days: Annotated[int, Field(ge=1, le=3650)] = 60
    seed: int = 7
    accounts: Annotated[int, Field(ge=1, le=1_000_000)] = 100  # the base on the first day
    signups_per_day: Annotated[float, Field(ge=0)] = 2.0  # Poisson mean of new accounts a day
    events_per_account_day: Annotated[float, Field(ge=1)] = 6.0  # mean events on an active day
    # Daily chance an average engaged account starts fading away (logit baseline).
    quit_rate: Annotated[float, Field(gt=0, lt=1)] = 0.03
    fade_days: Annotated[int, Field(ge=1, le=60)] = 10  # days from fading to gone for good
    plan_change_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    device_change_rate: Annotated[float, Field(ge=0, le=1)] = 0.005
    # After the shock, android accounts start fading this many times as often.
    shock_android_quit: Annotated[float, Field(ge=1)] = 4.0


class Windows(_Section):
    short_days: Annotated[int, Field(ge=1)] = 7
    long_days: Annotated[int, Field(ge=1, le=EVENTS_HISTORY_DAYS)] = 28

    @model_validator(mode="after")
    def _ordered(self) -> Windows:
        if self.short_days >= self.long_days:
            raise ValueError("short_days must be below long_days")
        return self


class FeaturizeParams(_Section):
    windows: Windows = Windows()


class ProjectParams(_Section):
    simulate: SimulateParams = SimulateParams()
    featurize: FeaturizeParams = FeaturizeParams()
