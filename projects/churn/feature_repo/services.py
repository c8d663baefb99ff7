"""Feature services: the versioned contract a model is trained and served with.

A model that needs different features gets a new service (churn_v2) beside this one, so
the champion keeps serving with the features it was trained on.
"""

from feast import FeatureService
from views import user_engagement, user_profile

churn_v1 = FeatureService(
    name="churn_v1",
    features=[user_profile, user_engagement],
    description="Churn model contract, version 1.",
    tags={"model": "churn", "version": "1"},
)
