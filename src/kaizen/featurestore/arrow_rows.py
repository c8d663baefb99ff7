"""Arrow batches into Kaizen's online stores without Feast's per-value conversion.

`FeatureStore.write_to_online_store` turns every value into a protobuf through a generic
converter (type checks, `pd.isnull` and a dict per value), then the store serializes it:
three quarters of a materialization's time (`bench/bench_feast_materialize.py`, row 4).
Here each column gets one typed encoder, repeated values (counts, categories) are
serialized once, and the store receives bytes (`SerializedRow`). The bytes are the ones
Feast's own path writes: the same protobuf library builds them, nulls and NaN become the
empty value as in Feast, and `tests/test_arrow_rows.py` compares both paths byte for byte.

Anything this does not cover (a field mapping, a composite or nullable entity key, a type
other than the scalar ones below, a store that is not ours) goes through Feast unchanged.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.value_type import ValueType

from kaizen.featurestore.online_stores import SerializedRow, int64_key_head

_I64 = struct.Struct("<q").pack


def _cached(field: str, cast: Callable[[Any], Any]) -> Callable[[np.ndarray], list[bytes]]:
    """For values that repeat (integers, text, flags): each distinct value serialized once."""

    def encode(values: np.ndarray) -> list[bytes]:
        seen: dict[Any, bytes] = {}
        out: list[bytes] = []
        for value, null in zip(values.tolist(), pd.isnull(values).tolist(), strict=True):
            if null:
                out.append(b"")
                continue
            value = cast(value)
            blob = seen.get(value)
            if blob is None:
                blob = seen[value] = ValueProto(**{field: value}).SerializeToString()
            out.append(blob)
        return out

    return encode


def _each(field: str) -> Callable[[np.ndarray], list[bytes]]:
    """For values that rarely repeat (amounts, ratios)."""

    def encode(values: np.ndarray) -> list[bytes]:
        return [
            b"" if null else ValueProto(**{field: value}).SerializeToString()
            for value, null in zip(
                values.astype(np.float64).tolist(), pd.isnull(values).tolist(), strict=True
            )
        ]

    return encode


# Feast's conversions of a non-null value (feast.type_map.PYTHON_SCALAR_VALUE_TYPE_TO_PROTO_VALUE)
_ENCODERS: dict[ValueType, Callable[[np.ndarray], list[bytes]]] = {
    ValueType.DOUBLE: _each("double_val"),
    ValueType.FLOAT: _each("float_val"),
    ValueType.INT64: _cached("int64_val", int),
    ValueType.INT32: _cached("int32_val", int),
    ValueType.STRING: _cached("string_val", str),
    ValueType.BOOL: _cached("bool_val", bool),
}


def encode_column(values: np.ndarray, value_type: ValueType) -> list[bytes] | None:
    """Serialized values of one column (b"" for a null), or None for a type not covered.

    `values` is what Feast converts: the Arrow column `to_numpy(zero_copy_only=False)`."""
    encoder = _ENCODERS.get(value_type)
    if encoder is None:
        return None
    if value_type not in (ValueType.STRING, ValueType.BOOL) and values.dtype == object:
        return None  # numbers as Python objects: Feast's converter decides what each one means
    return encoder(values)


def _datetimes(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python datetimes of a timestamp column, each distinct value converted once."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    distinct = [
        None if ts is None else ts.to_pydatetime()
        for ts in pd.to_datetime(encoded.dictionary.to_numpy(zero_copy_only=False))
    ]
    return [None if i is None else distinct[i] for i in encoded.indices.to_pylist()]


def serialized_rows(view: Any, batch: pa.RecordBatch, version: int) -> list[SerializedRow] | None:
    """`batch` as the rows Feast's `write_to_online_store` would have the store write, or
    None when this view needs Feast's general conversion."""
    source = view.batch_source
    if (
        version < 3
        or source is None
        or source.field_mapping
        or len(view.entity_columns) != 1
        or not view.features
    ):
        return None
    [entity] = view.entity_columns
    if entity.dtype.to_value_type() != ValueType.INT64:
        return None
    ids = batch.column(entity.name)
    if ids.null_count or not pa.types.is_integer(ids.type):
        return None
    columns: list[list[bytes]] = []
    for field in view.features:
        encoded = encode_column(
            batch.column(field.name).to_numpy(zero_copy_only=False), field.dtype.to_value_type()
        )
        if encoded is None:
            return None
        columns.append(encoded)
    head = int64_key_head(entity.name)
    keys = [head + _I64(i) for i in ids.to_pylist()]
    events = _datetimes(batch.column(source.timestamp_field))
    created = (
        _datetimes(batch.column(source.created_timestamp_column))
        if source.created_timestamp_column
        else [None] * batch.num_rows
    )
    names = tuple(field.name for field in view.features)
    return [
        (key, event, made, names, blobs)
        for key, event, made, blobs in zip(
            keys, events, created, zip(*columns, strict=True), strict=True
        )
    ]


def write_batch(store: Any, view_name: str, batch: pa.RecordBatch) -> None:
    """`store.write_to_online_store(view_name, batch.to_pandas())`, with the same result."""
    view = store.get_feature_view(view_name)
    online = store._get_provider().online_store  # Feast has no public handle on it
    rows = (
        serialized_rows(view, batch, store.config.entity_key_serialization_version)
        if hasattr(online, "write_serialized")
        else None
    )
    if rows is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Feast warns on every write of a frame
            store.write_to_online_store(view_name, batch.to_pandas())
        return
    # Feast skips a frame with no rows, or whose feature columns are all null.
    if not rows or all(
        batch.column(f.name).null_count == batch.num_rows
        or pd.isnull(batch.column(f.name).to_numpy(zero_copy_only=False)).all()
        for f in view.features
    ):
        return
    online.write_serialized(store.config, view, rows)
