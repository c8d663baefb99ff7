"""Data sources: the published feature partitions in the lake (no request data: the
request is the join key alone)."""

from kaizen.featurestore.repo import lake_source

account_profile_source = lake_source(
    "account_profile",
    "lake/features/account_profile: one row per account per day, as of the day's close",
)
account_activity_source = lake_source(
    "account_activity",
    "lake/features/account_activity: one row per account per day, as of the day's close",
)
