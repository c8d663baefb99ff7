"""The credit-risk feature views on Spark: the pandas engine's contract over DataFrames.

Spark SQL functions only: no UDFs and nothing collected to the driver. Instants are compared
as epoch microseconds and dates as epoch days, so results never depend on the session's time
zone. The rules (as-of instant, windows, late label, rounding to cents, tie-breaks) are those
of `pandas_engine` and `invoices`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from credit_risk.features.schema import CUSTOMER_TIEBREAK, ENTITY, STRING, view_features
from credit_risk.params import CreditRiskParams, FeaturizeParams
from kaizen.transforms.contract import as_of

DAY_US = 86_400_000_000
SPARK_TYPES = {"int64": "bigint", "float64": "double", STRING: "string"}


def compute_features(
    frames: Mapping[str, DataFrame], ds: str, params: CreditRiskParams
) -> dict[str, DataFrame]:
    """Every feature view for day `ds`, keyed by view name, one row per known customer.

    The frames are lazy and unordered; the platform collects and sorts them.
    """
    p = params.featurize
    cutoff = as_of(ds)
    known = customers_as_of(frames["customers"], ds)
    views = {
        "customer_profile": customer_profile(known, ds, p),
        "customer_activity": customer_activity(known, frames["orders"], cutoff, p),
        "customer_payments": customer_payments(known, frames["payments"], cutoff, p),
    }
    out = {}
    for name, features in view_features(p).items():
        columns = {ENTITY: "int64", **features}
        out[name] = views[name].select(
            *[F.col(c).cast(SPARK_TYPES[dtype]).alias(c) for c, dtype in columns.items()]
        )
    return out


def invoice_states(payments: DataFrame, as_of: pd.Timestamp, late_after_days: int) -> DataFrame:
    """`credit_risk.invoices.invoice_states` on Spark (same rules, same columns)."""
    cutoff = _micros(as_of)
    latest_first = Window.partitionBy("invoice_id").orderBy(
        F.col("updated_at").desc(), F.col("paid_ts").desc_nulls_last()
    )
    latest = (
        payments.where(F.unix_micros("updated_at") < cutoff)
        .withColumn("_rank", F.row_number().over(latest_first))
        .where(F.col("_rank") == 1)
        .drop("_rank")
        .where(F.unix_micros("issued_ts") < cutoff)
    )
    is_paid = F.col("paid_ts").isNotNull()
    due = F.unix_date("due_date").cast("bigint") * DAY_US
    # Time past due, in microseconds: to the payment when paid, to the as-of instant while open.
    past_due = F.when(is_paid, F.unix_micros("paid_ts") - due).otherwise(F.lit(cutoff) - due)
    is_late = past_due >= F.lit(late_after_days * DAY_US)
    return latest.select(
        *latest.columns,
        is_paid.alias("is_paid"),
        is_late.alias("is_late"),
        (is_paid | is_late).alias("is_resolved"),
        # Whole days, never below 0 (truncating division equals floor once clamped at 0).
        F.greatest(F.lit(0), past_due.cast("bigint")).alias("_past_due_us"),
    ).select(
        *latest.columns,
        "is_paid",
        "is_late",
        "is_resolved",
        F.expr(f"_past_due_us div {DAY_US}").alias("days_late"),
    )


def customers_as_of(customers: DataFrame, ds: str) -> DataFrame:
    """Each customer's latest row before as_of(ds), for customers signed up by `ds`."""
    cutoff = _micros(as_of(ds))
    latest_first = Window.partitionBy(ENTITY).orderBy(
        *[F.col(c).desc_nulls_last() for c in ["updated_at", *CUSTOMER_TIEBREAK]]
    )
    return (
        customers.where(F.unix_micros("updated_at") < cutoff)
        .withColumn("_rank", F.row_number().over(latest_first))
        .where(F.col("_rank") == 1)
        .drop("_rank")
        .where(F.col("signup_date") <= F.lit(dt.date.fromisoformat(ds)))
    )


def customer_profile(known: DataFrame, ds: str, p: FeaturizeParams) -> DataFrame:
    return known.select(
        ENTITY,
        F.datediff(F.lit(dt.date.fromisoformat(ds)), F.col("signup_date")).alias("tenure_days"),
        "credit_limit",
        "annual_income",
        "region",
        income_band(F.col("annual_income"), p).alias("income_band"),
    )


def income_band(income: Column, p: FeaturizeParams) -> Column:
    """The band label of each income: band i is [edge i-1, edge i); a missing income has none."""
    band = F.when(income.isNull() | F.isnan(income), F.lit(None).cast("string"))
    for edge, label in zip(p.income_band_edges, p.income_band_labels, strict=False):
        band = band.when(income < F.lit(float(edge)), F.lit(label))
    return band.otherwise(F.lit(p.income_band_labels[-1]))


def customer_activity(
    known: DataFrame, orders: DataFrame, cutoff: pd.Timestamp, p: FeaturizeParams
) -> DataFrame:
    end = _micros(cutoff)
    ts = F.unix_micros("order_ts")
    longest = max(p.activity_windows_days)
    recent = orders.where((ts < end) & (ts > end - longest * DAY_US))
    sums = []
    for n in p.activity_windows_days:
        inside = ts > end - n * DAY_US
        sums += [
            F.count(F.when(inside, True)).alias(f"_orders_{n}d"),
            F.sum(F.when(inside, F.col("amount"))).alias(f"_spend_{n}d"),
        ]
    per = recent.groupBy(ENTITY).agg(*sums)
    joined = known.select(ENTITY).join(per, ENTITY, "left")
    columns = [F.col(ENTITY)]
    for n in p.activity_windows_days:
        count = F.coalesce(F.col(f"_orders_{n}d"), F.lit(0))
        spend = F.round(F.coalesce(F.col(f"_spend_{n}d"), F.lit(0.0)), 2)
        columns += [
            count.alias(f"orders_{n}d"),
            spend.alias(f"spend_{n}d"),
            F.coalesce(F.try_divide(spend, count), F.lit(0.0)).alias(f"aov_{n}d"),
        ]
    return joined.select(*columns)


def customer_payments(
    known: DataFrame, payments: DataFrame, cutoff: pd.Timestamp, p: FeaturizeParams
) -> DataFrame:
    w = p.payments_window_days
    states = invoice_states(payments, cutoff, p.late_after_days)
    inside = F.unix_micros("issued_ts") > _micros(cutoff) - w * DAY_US
    per = states.groupBy(ENTITY).agg(
        F.count(F.when(inside, True)).alias("_invoices"),
        F.count(F.when(inside & F.col("is_late"), True)).alias("_late"),
        F.count(F.when(inside & F.col("is_resolved"), True)).alias("_resolved"),
        F.max(F.when(inside, F.col("days_late"))).alias("_max_days_late"),
        F.sum(F.when(~F.col("is_paid"), F.col("amount"))).alias("_open_balance"),
    )
    joined = known.select(ENTITY, "credit_limit").join(per, ENTITY, "left")
    open_balance = F.round(F.coalesce(F.col("_open_balance"), F.lit(0.0)), 2)
    limit = F.col("credit_limit")
    return joined.select(
        ENTITY,
        F.coalesce(F.col("_invoices"), F.lit(0)).alias(f"invoices_{w}d"),
        F.coalesce(F.col("_late"), F.lit(0)).alias(f"late_count_{w}d"),
        # No resolved invoice, no ratio: null, never a made-up 0.
        F.try_divide(F.col("_late"), F.col("_resolved")).alias(f"late_ratio_{w}d"),
        F.coalesce(F.col("_max_days_late"), F.lit(0)).alias(f"max_days_late_{w}d"),
        open_balance.alias("open_balance"),
        F.when(limit > 0, F.try_divide(open_balance, limit)).alias("open_balance_ratio"),
    )


def _micros(instant: pd.Timestamp) -> int:
    """Epoch microseconds of a tz-aware instant, exactly (no float rounding)."""
    if instant.tzinfo is None:
        raise ValueError("instants must be time-zone aware (UTC)")
    return int(instant.value // 1_000)
