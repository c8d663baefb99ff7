"""The customer views' columns, computed from the windows in params.yaml.

The Feast repo (feature_repo/views.py) declares its fields from this, so the schema has one
home; the engines return these columns.
"""

from __future__ import annotations

from credit_risk.params import FeaturizeParams

ENTITY = "customer_id"
STRING = "object"
VIEWS = ("customer_profile", "customer_activity", "customer_payments")
# When two rows of a customer share an `updated_at`, the largest of these wins (any engine).
CUSTOMER_TIEBREAK = ("signup_date", "region", "annual_income", "credit_limit")


def view_features(p: FeaturizeParams) -> dict[str, dict[str, str]]:
    """Every view's feature columns (not the key), in order, with their pandas dtypes."""
    activity: dict[str, str] = {}
    for n in p.activity_windows_days:
        activity |= {f"orders_{n}d": "int64", f"spend_{n}d": "float64", f"aov_{n}d": "float64"}
    w = p.payments_window_days
    return {
        "customer_profile": {
            "tenure_days": "int64",
            "credit_limit": "float64",
            "annual_income": "float64",
            "region": STRING,
            "income_band": STRING,
        },
        "customer_activity": activity,
        "customer_payments": {
            f"invoices_{w}d": "int64",
            f"late_count_{w}d": "int64",
            f"late_ratio_{w}d": "float64",
            f"max_days_late_{w}d": "int64",
            "open_balance": "float64",
            "open_balance_ratio": "float64",
        },
    }
