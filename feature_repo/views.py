"""Feature views: columns and types from the transforms' contract, TTLs from params.yaml."""

from entities import customer
from feast import FeatureView
from sources import customer_activity_source, customer_payments_source, customer_profile_source

from kaizen.featurestore.contract import fields, ttl

customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=ttl("customer_profile"),
    schema=fields("customer_profile"),
    source=customer_profile_source,
    online=True,
    description="Tenure, credit limit, income and region as of the day's close.",
    tags={"owner": "credit-risk"},
)

customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=ttl("customer_activity"),
    schema=fields("customer_activity"),
    source=customer_activity_source,
    online=True,
    description="Orders, spend and average order value over trailing windows.",
    tags={"owner": "credit-risk"},
)

customer_payments = FeatureView(
    name="customer_payments",
    entities=[customer],
    ttl=ttl("customer_payments"),
    schema=fields("customer_payments"),
    source=customer_payments_source,
    online=True,
    description="Invoices, late payments and open balance over the payments window.",
    tags={"owner": "credit-risk"},
)
