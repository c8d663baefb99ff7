"""On-demand features: computed at request time from the request and stored features."""

from typing import Any

from feast import Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64
from sources import credit_request
from views import customer_payments, customer_profile


@on_demand_feature_view(
    sources=[credit_request, customer_profile, customer_payments],
    schema=[
        Field(name="requested_to_credit_limit", dtype=Float64),
        Field(name="requested_plus_open_to_limit", dtype=Float64),
    ],
    mode="python",  # per-request dicts: no pandas round trip on the serving path
    description="The requested amount against the credit limit, alone and with the open balance.",
)
def credit_request_ratios(inputs: dict[str, Any]) -> dict[str, Any]:
    def ratio(amount: float | None, limit: float | None) -> float | None:
        if amount is None or limit is None or limit <= 0:
            return None
        return amount / limit

    requested = inputs["requested_amount"]
    limits = inputs["credit_limit"]
    balances = inputs["open_balance"]
    return {
        "requested_to_credit_limit": [
            ratio(a, lim) for a, lim in zip(requested, limits, strict=True)
        ],
        "requested_plus_open_to_limit": [
            ratio(None if a is None else a + (b or 0.0), lim)
            for a, b, lim in zip(requested, balances, limits, strict=True)
        ],
    }
