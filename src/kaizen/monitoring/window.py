"""The current window: the requests the model scored (or would have) in the last days.

The reference is the champion's holdout: labelled rows at their event time, with the
features Feast joined for that instant. The current window is the same population, so a
difference is drift and not a change of population: the project's requests of the window's
days (its traffic sampler's rows), with the features the prediction log recorded (what was served) when there is live traffic,
else the features of the published partitions joined point in time (what would have been
served), through the same Feast `get_historical_features` the training set uses.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from kaizen.runtime import Runtime
from kaizen.transforms.contract import EVENT_TIMESTAMP


def window_days(ds: str, days: int) -> list[str]:
    """The `days` days ending with `ds` (inclusive), oldest first."""
    end = dt.date.fromisoformat(ds)
    return [(end - dt.timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]


def window_requests(rt: Runtime, days: list[str]) -> pd.DataFrame:
    """The project's requests of `days`: row id, join keys, event time, request fields (the
    entity frame of a training set, without the label)."""
    from kaizen.sampler import sample

    end = (dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1)).isoformat()
    return sample(rt, days[0], end)


def offline_features(rt: Runtime, entity: pd.DataFrame, service_name: str) -> pd.DataFrame:
    """`entity` (join keys, event_timestamp, request fields, any other columns) joined
    point in time with the model's feature service `service_name`: each view's latest row at or before the
    instant and within its TTL. Row order is not kept: carry a key column."""
    from kaizen.featurestore.store import open_store

    if entity.empty:
        return entity.copy()
    frame = entity.copy()
    frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True).dt.as_unit("us")
    store = open_store(rt.settings)
    service = store.get_feature_service(service_name)
    return store.get_historical_features(entity_df=frame, features=service).to_df()
