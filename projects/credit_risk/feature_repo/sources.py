"""Data sources: the published feature partitions in the lake, and the request data."""

from feast import Field, RequestSource
from feast.types import Float64

from kaizen.featurestore.repo import lake_source

customer_profile_source = lake_source("customer_profile")
customer_activity_source = lake_source("customer_activity")
customer_payments_source = lake_source("customer_payments")

credit_request = RequestSource(
    name="credit_request",
    schema=[Field(name="requested_amount", dtype=Float64)],
    description="What the customer asks to buy on credit, known only at request time.",
)
