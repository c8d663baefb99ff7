"""Entities: the keys features are looked up by."""

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A furniture-store customer buying on credit.",
)
