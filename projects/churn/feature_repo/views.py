"""Feature views: the feature schema (columns follow the windows in params.yaml), TTLs.

The columns are churn.features.view_columns, the one place they are written; the
transforms return exactly these. The TTLs are params.yaml's feature_store.ttl_days.
"""

from churn.features import KEY, view_columns
from entities import user
from feast import FeatureView
from sources import user_engagement_source, user_profile_source

from kaizen.featurestore.repo import fields, project_params, ttl

COLUMNS = view_columns(project_params().featurize)


def features(view: str) -> dict[str, str]:
    """A view's feature columns with their pandas dtypes (the join key is the entity's)."""
    return {name: dtype for name, dtype in COLUMNS[view].items() if name != KEY}


user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    ttl=ttl("user_profile"),
    schema=fields(features("user_profile")),
    source=user_profile_source,
    online=True,
    description="Tenure, plan, country and device as of the day's close.",
    tags={"owner": "churn"},
)

user_engagement = FeatureView(
    name="user_engagement",
    entities=[user],
    ttl=ttl("user_engagement"),
    # avg_duration_<long>d is empty without an event in the window; days_since_last_event
    # stops at the long window (that many days or more).
    schema=fields(features("user_engagement")),
    source=user_engagement_source,
    online=True,
    description="Events, active days, session length and purchases over trailing windows.",
    tags={"owner": "churn"},
)
