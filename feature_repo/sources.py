"""Data sources: the published feature partitions in the lake, and the request data."""

from feast import Field, FileSource, RequestSource
from feast.types import Float64

from kaizen.featurestore.contract import offline_path


def _lake(view: str) -> FileSource:
    return FileSource(
        name=f"{view}_source",
        path=offline_path(view),
        timestamp_field="event_timestamp",
        description=f"lake/features/{view}: one row per customer per day, as of the day's close",
    )


customer_profile_source = _lake("customer_profile")
customer_activity_source = _lake("customer_activity")
customer_payments_source = _lake("customer_payments")

credit_request = RequestSource(
    name="credit_request",
    schema=[Field(name="requested_amount", dtype=Float64)],
    description="What the customer asks to buy on credit, known only at request time.",
)
