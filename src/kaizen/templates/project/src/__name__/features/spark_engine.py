"""The __name__ feature views on Spark: the pandas engine's rules over DataFrames.

Spark SQL functions only: no UDFs and nothing collected to the driver. Instants are compared
as epoch microseconds, so results never depend on the session's time zone.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from __name__.clock import DAY_US, as_of, micros
from __name__.features import ACCOUNT_TIEBREAK, KEY, PURCHASE, STRING, view_columns
from __name__.params import FeaturizeParams, ProjectParams

SPARK_TYPES = {"int64": "bigint", "float64": "double", STRING: "string"}


def compute_features(
    frames: dict[str, DataFrame], ds: str, params: ProjectParams
) -> dict[str, DataFrame]:
    """Both views for day `ds`, one row per account signed up before as_of(ds).

    The frames are lazy and unordered; `to_pandas` sorts them by account.
    """
    p = params.featurize
    cutoff = micros(as_of(ds))
    known = accounts_as_of(frames["accounts"], cutoff)
    views = {
        "account_profile": account_profile(known, cutoff),
        "account_activity": account_activity(known, frames["events"], cutoff, p),
    }
    return {
        name: views[name].select(
            *[F.col(c).cast(SPARK_TYPES[dtype]).alias(c) for c, dtype in dtypes.items()]
        )
        for name, dtypes in view_columns(p).items()
    }


def to_pandas(views: Mapping[str, DataFrame], params: ProjectParams) -> dict[str, pd.DataFrame]:
    """Spark results as pandas frames with the views' dtypes, sorted by account."""
    dtypes = view_columns(params.featurize)
    return {
        name: frame.toPandas()
        .sort_values(KEY, kind="stable")
        .reset_index(drop=True)
        .astype(dtypes[name])
        for name, frame in views.items()
    }


def accounts_as_of(accounts: DataFrame, cutoff: int) -> DataFrame:
    """Each account's latest row changed before `cutoff`, for accounts signed up before it."""
    latest_first = Window.partitionBy(KEY).orderBy(*[F.col(c).desc() for c in ACCOUNT_TIEBREAK])
    return (
        accounts.where(F.col(KEY).isNotNull() & (F.unix_micros("updated_at") < cutoff))
        .withColumn("_rank", F.row_number().over(latest_first))
        .where(F.col("_rank") == 1)
        .drop("_rank")
        .where(F.unix_micros("signup_ts") < cutoff)
    )


def whole_days_before(cutoff: int, column: str) -> Column:
    """Whole days from `column` to the instant `cutoff` (integer division, as pandas floors)."""
    return F.expr(f"({cutoff} - unix_micros({column})) div {DAY_US}")


def account_profile(known: DataFrame, cutoff: int) -> DataFrame:
    return known.select(
        KEY,
        whole_days_before(cutoff, "signup_ts").alias("age_days"),
        "plan",
        "country",
        "device",
    )


def account_activity(
    known: DataFrame, events: DataFrame, cutoff: int, p: FeaturizeParams
) -> DataFrame:
    s, n = p.windows.short_days, p.windows.long_days
    ts = F.unix_micros("event_ts")
    recent = events.where((ts < cutoff) & (ts >= cutoff - n * DAY_US)).withColumn(
        "_day", F.expr(f"unix_micros(event_ts) div {DAY_US}")
    )
    per = recent.groupBy(KEY).agg(
        F.count(F.when(ts >= cutoff - s * DAY_US, True)).alias("_short"),
        F.count(F.lit(1)).alias("_count"),
        F.countDistinct("_day").alias("_active_days"),
        F.count(F.when(F.col("kind") == PURCHASE, True)).alias("_purchases"),
        F.round(F.sum("duration_s"), 3).alias("_duration"),
        F.max(ts).alias("_last"),
    )
    joined = known.select(KEY).join(per, KEY, "left")
    return joined.select(
        KEY,
        F.coalesce(F.col("_short"), F.lit(0)).alias(f"events_{s}d"),
        F.coalesce(F.col("_count"), F.lit(0)).alias(f"events_{n}d"),
        F.coalesce(F.col("_active_days"), F.lit(0)).alias(f"active_days_{n}d"),
        # No event in the window, no average: null, never a made-up 0.
        F.try_divide(F.col("_duration"), F.col("_count")).alias(f"avg_duration_{n}d"),
        F.coalesce(F.expr(f"({cutoff} - _last) div {DAY_US}"), F.lit(n)).alias(
            "days_since_last_event"
        ),
        F.coalesce(F.col("_purchases"), F.lit(0)).alias(f"purchases_{n}d"),
    )
