"""Feature views: the feature schema (columns follow the windows in params.yaml), TTLs."""

from credit_risk.features.schema import view_features
from entities import customer
from feast import FeatureView
from sources import customer_activity_source, customer_payments_source, customer_profile_source

from kaizen.featurestore.repo import fields, project_params, ttl

FEATURES = view_features(project_params().featurize)

customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=ttl("customer_profile"),
    schema=fields(FEATURES["customer_profile"]),
    source=customer_profile_source,
    online=True,
    description="Tenure, credit limit, income and region as of the day's close.",
    tags={"owner": "credit-risk"},
)

customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=ttl("customer_activity"),
    schema=fields(FEATURES["customer_activity"]),
    source=customer_activity_source,
    online=True,
    description="Orders, spend and average order value over trailing windows.",
    tags={"owner": "credit-risk"},
)

customer_payments = FeatureView(
    name="customer_payments",
    entities=[customer],
    ttl=ttl("customer_payments"),
    schema=fields(FEATURES["customer_payments"]),
    source=customer_payments_source,
    online=True,
    description="Invoices, late payments and open balance over the payments window.",
    tags={"owner": "credit-risk"},
)
