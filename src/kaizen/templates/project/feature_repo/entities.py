"""Entities: the keys features are looked up by."""

from feast import Entity, ValueType

account = Entity(
    name="account",
    join_keys=["account_id"],
    value_type=ValueType.STRING,
    description="An account, keyed by a string id such as a000123.",
)
