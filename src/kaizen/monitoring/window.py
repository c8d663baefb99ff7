"""The current window: the requests the model scored (or would have) in the last days.

The reference is the champion's holdout: invoices at the instant they were issued, with the
features Feast joined for that instant. The current window is the same population, so a
difference is drift and not a change of population: invoices issued in the window's days,
with the features the prediction log recorded (what was served) when there is live traffic,
else the features of the published partitions joined point in time (what would have been
served), through the same Feast `get_historical_features` the training set uses.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from kaizen.runtime import Runtime
from kaizen.transforms.views import ENTITY, EVENT_TIMESTAMP, as_of


def window_days(ds: str, days: int) -> list[str]:
    """The `days` days ending with `ds` (inclusive), oldest first."""
    end = dt.date.fromisoformat(ds)
    return [(end - dt.timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]


def issued_invoices(rt: Runtime, days: list[str]) -> pd.DataFrame:
    """Invoices issued in `days` as request rows: invoice_id, customer_id, event_timestamp,
    requested_amount (the entity frame of the training set, without the label)."""
    table = rt.lake.read_many("silver", "payments", days)
    columns = ["invoice_id", ENTITY, EVENT_TIMESTAMP, "requested_amount"]
    if table is None:
        return pd.DataFrame(columns=columns)
    payments = table.to_pandas()
    start = as_of(days[0]) - pd.Timedelta(days=1)
    issued = payments[(payments["issued_ts"] >= start) & (payments["issued_ts"] < as_of(days[-1]))]
    issued = issued.sort_values(["issued_ts", "invoice_id"], kind="stable").drop_duplicates(
        "invoice_id"
    )
    return pd.DataFrame(
        {
            "invoice_id": issued["invoice_id"].to_numpy(),
            ENTITY: issued["customer_id"].to_numpy(),
            EVENT_TIMESTAMP: issued["issued_ts"].to_numpy(),
            "requested_amount": issued["amount"].to_numpy(),
        }
    ).reset_index(drop=True)


def offline_features(rt: Runtime, entity: pd.DataFrame) -> pd.DataFrame:
    """`entity` (customer_id, event_timestamp, requested_amount, any other columns) joined
    point in time with the model's feature service: each view's latest row at or before the
    instant and within its TTL. Row order is not kept: carry a key column."""
    from kaizen.featurestore.store import open_store

    if entity.empty:
        return entity.copy()
    frame = entity.copy()
    frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True).dt.as_unit("us")
    store = open_store(rt.settings)
    service = store.get_feature_service(rt.params.feature_store.service)
    return store.get_historical_features(entity_df=frame, features=service).to_df()
