"""Raw sources are declared, not coded.

The project's declaration (kaizen.yaml `sources:`) names each source with its file format, its columns (type and nullability),
its primary key and its event-time column. Ingest, validation and replay are generic over
these declarations: onboarding a dataset is a new declaration, not new stage code.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kaizen.errors import InputError

ColumnType = Literal["string", "int64", "float64", "bool", "date", "timestamp"]
NAME = r"^[a-z][a-z0-9_]*$"


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ColumnType
    nullable: bool = False
    description: str = ""


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    format: Literal["csv", "parquet"] = "csv"
    # Where a day's drop lands, relative to <raw_root>/<source>/.
    file: str = "{ds}.csv"
    columns: dict[str, Column]
    primary_key: list[str]
    event_time: str
    # The text encoding of a CSV drop: declared, never guessed. Bytes not valid in it send
    # the batch to quarantine (never transcoded silently); a UTF-8 byte-order mark is dropped.
    encoding: str = "utf-8"
    # Is a drop with no rows (a header only) a valid day? When not, it is quarantined.
    allow_empty: bool = False
    # A CSV drop must end with a line break: a file cut mid-row is indistinguishable from one
    # whose last value is merely short. A source whose exporter omits it declares false; a
    # last record missing fields is still refused.
    final_newline: bool = True
    # A drop larger than this is quarantined unread (ingest holds a drop in memory).
    max_mb: Annotated[float, Field(gt=0)] = 1024

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            return codecs.lookup(value).name
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, latin-1, utf-16)") from None

    @field_validator("columns", mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        # `amount: float64` is shorthand for `amount: {type: float64}`.
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Source:
        for column in self.columns:
            if not re.match(NAME, column):
                raise ValueError(f"column {column!r} is not a lower_snake_case name")
        if not self.primary_key:
            raise ValueError("primary_key must name at least one column")
        for key in [*self.primary_key, self.event_time]:
            if key not in self.columns:
                raise ValueError(f"{key!r} is used as a key but is not a declared column")
        for key in self.primary_key:
            if self.columns[key].nullable:
                raise ValueError(f"primary key column {key!r} cannot be nullable")
        if self.columns[self.event_time].type != "timestamp":
            raise ValueError(f"event_time {self.event_time!r} must be a timestamp column")
        if "{ds}" not in self.file:
            raise ValueError("file must contain the {ds} placeholder")
        return self

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * (1 << 20))

    def intake_hash(self) -> str:
        """Hash of everything that decides how a drop is read (a changed one can fix a batch
        that could not be read, so replay re-reads it)."""
        blob = json.dumps(self.model_dump(exclude={"description"}), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def raw_name(self, ds: str) -> str:
        return self.file.format(ds=ds)

    @property
    def required_columns(self) -> list[str]:
        return [name for name, col in self.columns.items() if not col.nullable]

    def columns_of_type(self, *types: ColumnType) -> list[str]:
        return [name for name, col in self.columns.items() if col.type in types]

    def schema_hash(self) -> str:
        """Stable hash of the declaration's column contract (names, types, nullability)."""
        contract = {name: [col.type, col.nullable] for name, col in self.columns.items()}
        blob = json.dumps(contract, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class SourceCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: dict[str, Source]

    @field_validator("sources", mode="before")
    @classmethod
    def _names_from_keys(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                k: v if isinstance(v, Source) else {"name": k, **(v or {})}
                for k, v in value.items()
            }
        return value

    def get(self, name: str) -> Source:
        try:
            return self.sources[name]
        except KeyError:
            known = ", ".join(sorted(self.sources))
            raise InputError(f"unknown source {name!r}: declared sources are {known}") from None

    @property
    def names(self) -> list[str]:
        return list(self.sources)
