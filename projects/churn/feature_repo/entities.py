"""Entities: the keys features are looked up by."""

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A subscription-app user, keyed by a string id such as u000123.",
)
