"""Feature services: the versioned contract a model is trained and served with.

A model that needs different features gets a new service (__name___v2) beside this one, so
the champion keeps serving with the features it was trained on.
"""

from feast import FeatureService
from views import account_activity, account_profile

__name___v1 = FeatureService(
    name="__name___v1",
    features=[account_profile, account_activity],
    description="__name__ model contract, version 1.",
    tags={"model": "__name__", "version": "1"},
)
