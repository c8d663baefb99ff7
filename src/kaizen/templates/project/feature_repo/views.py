"""Feature views: the feature schema (columns follow the windows in params.yaml), TTLs.

The columns are __name__.features.view_columns, the one place they are written; the
transforms return exactly these. The TTLs are params.yaml's feature_store.ttl_days.
"""

from __name__.features import KEY, view_columns
from entities import account
from feast import FeatureView
from sources import account_activity_source, account_profile_source

from kaizen.featurestore.repo import fields, project_params, ttl

COLUMNS = view_columns(project_params().featurize)


def features(view: str) -> dict[str, str]:
    """A view's feature columns with their pandas dtypes (the join key is the entity's)."""
    return {name: dtype for name, dtype in COLUMNS[view].items() if name != KEY}


account_profile = FeatureView(
    name="account_profile",
    entities=[account],
    ttl=ttl("account_profile"),
    schema=fields(features("account_profile")),
    source=account_profile_source,
    online=True,
    description="Age, plan, country and device as of the day's close.",
    tags={"owner": "__name__"},
)

account_activity = FeatureView(
    name="account_activity",
    entities=[account],
    ttl=ttl("account_activity"),
    # avg_duration_<long>d is empty without an event in the window; days_since_last_event
    # stops at the long window (that many days or more).
    schema=fields(features("account_activity")),
    source=account_activity_source,
    online=True,
    description="Events, active days, session length and purchases over trailing windows.",
    tags={"owner": "__name__"},
)
