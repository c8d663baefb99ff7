"""Data sources: the published feature partitions in the lake (no request data: the
request is the join key alone)."""

from kaizen.featurestore.repo import lake_source

user_profile_source = lake_source(
    "user_profile", "lake/features/user_profile: one row per user per day, as of the day's close"
)
user_engagement_source = lake_source(
    "user_engagement",
    "lake/features/user_engagement: one row per user per day, as of the day's close",
)
