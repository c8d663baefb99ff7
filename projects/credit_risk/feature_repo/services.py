"""Feature services: the versioned contract a model is trained and served with.

A new model that needs different features gets a new service (credit_risk_v2) beside this
one, so the champion keeps serving with the features it was trained on.
"""

from feast import FeatureService
from on_demand import credit_request_ratios
from views import customer_activity, customer_payments, customer_profile

credit_risk_v1 = FeatureService(
    name="credit_risk_v1",
    features=[customer_profile, customer_activity, customer_payments, credit_request_ratios],
    description="Credit-risk model contract, version 1.",
    tags={"model": "credit_risk", "version": "1"},
)
