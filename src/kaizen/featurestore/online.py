"""Online reads that respect each feature view's time-to-live.

Feast applies a view's TTL when it joins point in time offline, but not when it reads the
online store (feast-dev/feast#6821): an entity whose features stopped being materialized
keeps being served old values as if they were current. Kaizen judges every value by the
event time the online store holds for it:

* a stored feature view is stale for an entity when `now - event_timestamp > ttl` (a TTL of
  zero or none never expires; a view with no row for the entity is missing, not stale);
* an on-demand view is as fresh as the stored views it reads: stale when any of them is.

`policy` says what happens to stale values: `mark` keeps them and flags them, `refuse`
replaces them with None and flags them. `now` is always passed in.

`read_features` is the Python read path (the prediction API calls it), reading through
Feast's SDK (`kaizen.featurestore.plans.feast_values`) or Kaizen's direct read of the same store
(`kaizen.featurestore.direct_read`). The feature server applies the same judgement
(`judge`) to Feast's `/get-online-features` responses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kaizen.errors import InputError
from kaizen.featurestore.direct_read import read_values
from kaizen.featurestore.plans import Plan, feast_values, plan_for_service

Policy = Literal["mark", "refuse"]
POLICIES: tuple[Policy, ...] = ("mark", "refuse")


# -- the judgement -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViewFreshness:
    """One view's values for one entity.

    `event_timestamp` is the event time of the stored row (for an on-demand view, the oldest
    of the stored rows it read); None when the entity has no row there (`found` is False).
    """

    event_timestamp: dt.datetime | None
    age: dt.timedelta | None
    ttl: dt.timedelta | None  # None: never expires (and for on-demand views)
    stale: bool
    found: bool


def judge(
    plan: Plan,
    found: Mapping[str, Sequence[bool]],
    event_timestamps: Mapping[str, Sequence[dt.datetime | None]],
    rows: int,
    now: dt.datetime,
) -> list[dict[str, ViewFreshness]]:
    """Per entity row, each view's freshness.

    `found[view][i]` says whether the store had a row for entity i in that stored view, and
    `event_timestamps[view][i]` its event time (read only when found). A stored view absent
    from `found` had no column in the response: it counts as not found.
    """
    now = _aware(now)
    out: list[dict[str, ViewFreshness]] = [{} for _ in range(rows)]
    for view, ttl in plan.ttls.items():
        hits, stamps = found.get(view), event_timestamps.get(view)
        for i in range(rows):
            ts = stamps[i] if hits is not None and stamps is not None and hits[i] else None
            if ts is None:
                out[i][view] = ViewFreshness(None, None, ttl, stale=False, found=False)
                continue
            ts = _aware(ts)
            age = now - ts
            stale = ttl is not None and age > ttl
            out[i][view] = ViewFreshness(ts, age, ttl, stale=stale, found=True)
    for view, reads in plan.sources.items():
        for i in range(rows):
            inputs = [out[i][source] for source in reads]
            stamps_in = [v.event_timestamp for v in inputs if v.event_timestamp is not None]
            every = len(stamps_in) == len(inputs)
            oldest = min(stamps_in) if stamps_in and every else None
            out[i][view] = ViewFreshness(
                oldest,
                now - oldest if oldest is not None else None,
                None,
                stale=any(v.stale for v in inputs),
                found=every,
            )
    return out


def _aware(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts


# -- the Python read path -----------------------------------------------------------------------
@dataclass(frozen=True)
class EntityFeatures:
    """One entity row: what was asked, the values, and each view's freshness."""

    request: dict[str, Any]  # the entity row as given (join keys and request data)
    values: dict[str, Any]  # feature column -> value (None when refused, missing or null)
    views: dict[str, ViewFreshness]

    @property
    def stale_views(self) -> list[str]:
        return [name for name, view in self.views.items() if view.stale]

    @property
    def missing_views(self) -> list[str]:
        return [name for name, view in self.views.items() if not view.found]

    @property
    def fresh(self) -> bool:
        return not self.stale_views


@dataclass(frozen=True)
class OnlineFeatures:
    service: str
    policy: Policy
    now: dt.datetime
    features: list[str]  # the feature columns, in Feast's order
    entities: list[EntityFeatures]

    @property
    def stale(self) -> bool:
        return any(e.stale_views for e in self.entities)


OnlineRead = Literal["kaizen", "feast"]
ONLINE_READS: tuple[OnlineRead, ...] = ("kaizen", "feast")


def read_features(
    store: Any,
    service_name: str,
    entity_rows: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    policy: Policy = "refuse",
    online_read: OnlineRead = "feast",
) -> OnlineFeatures:
    """Read a FeatureService's features for `entity_rows` and judge their freshness at `now`.

    Each row holds the join keys and any request data of on-demand views, e.g.
    `{"entity_id": 5, "amount": 500.0}`. A missing entity comes back with None
    values and its views in `missing_views`; it is not stale. `online_read` says who reads
    the store: Feast's SDK, or Kaizen's direct read of the same store
    (`kaizen.featurestore.direct_read`, the same values, a fraction of the time).
    """
    if policy not in POLICIES:
        raise InputError(f"unknown freshness policy {policy!r}: use mark or refuse")
    if online_read not in ONLINE_READS:
        raise InputError(f"unknown online read {online_read!r}: use kaizen or feast")
    if now.tzinfo is None:
        raise InputError("now must be timezone-aware (UTC)")
    rows = [dict(row) for row in entity_rows]
    plan = plan_for_service(store, service_name)
    if online_read == "kaizen":
        read = read_values(store, service_name, rows)
    else:
        read = feast_values(store, service_name, rows)
    verdicts = judge(plan, read.found, read.event_timestamps, len(rows), now)
    features = [name for name in read.columns if name in plan.columns]
    entities = []
    for i, row in enumerate(rows):
        views = verdicts[i]
        entity_values = {}
        for column in features:
            value = read.columns[column][i]
            if policy == "refuse" and views[plan.columns[column]].stale:
                value = None
            entity_values[column] = value
        entities.append(EntityFeatures(request=row, values=entity_values, views=views))
    return OnlineFeatures(
        service=service_name, policy=policy, now=now, features=features, entities=entities
    )
