"""`kaizen.yaml`: what a project declares, each thing once (see docs/projects.md).

Every key is checked here, before any data is touched: an unknown key, a missing entity or a
malformed hook reference is one ConfigError line naming the file and the key. Whether the
hooks import and return the right columns is `kaizen.project.check`'s job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kaizen.errors import ConfigError, describe_validation_error
from kaizen.sources import NAME, Source, SourceCatalog

HOOK = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"  # module.path:attribute
Hook = Annotated[str, Field(pattern=HOOK)]
KeyType = Literal["int64", "string"]
FieldType = Literal["int64", "float64", "string", "bool"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entity(_Part):
    name: Annotated[str, Field(pattern=NAME)]
    join_keys: dict[str, KeyType]
    description: str = ""

    @field_validator("join_keys")
    @classmethod
    def _some(cls, value: dict[str, KeyType]) -> dict[str, KeyType]:
        if not value:
            raise ValueError("must name at least one join key, e.g. {user_id: string}")
        return value


class Transforms(_Part):
    pandas: Hook
    spark: Hook | None = None


class Features(_Part):
    # Per source, the silver history one day's features read: every partition up to the day
    # ("all"), or the trailing N days.
    inputs: dict[str, Literal["all"] | Annotated[int, Field(ge=1, le=3650)]]
    transforms: Transforms


class Label(_Part):
    hook: Hook
    sources: list[str]
    row_id: Annotated[str, Field(pattern=NAME)]
    positive: Annotated[str, Field(min_length=1)]  # what label 1 means, for reports and logs
    max_delay_days: Annotated[int, Field(ge=0, le=3650)]  # final at most this long after


class RequestField(_Part):
    type: FieldType
    description: str = ""
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None


class Request(_Part):
    fields: dict[str, RequestField] = {}

    @field_validator("fields", mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        if isinstance(value, dict):  # `amount: float64` is `amount: {type: float64}`
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value if value is not None else {}


class Slice(_Part):
    column: Annotated[str, Field(pattern=NAME)]
    edges: list[float] | None = None  # numeric column cut into bands [edge, next edge)
    unit: str = ""  # printed after the edges in band names, e.g. "d": "180-730d"

    @field_validator("edges")
    @classmethod
    def _increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or value != sorted(set(value))):
            raise ValueError("must be distinct and increasing")
        return value


class Traffic(_Part):
    sampler: Hook = "kaizen.sampler:requests_between"


class Model(_Part):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
    experiment: Annotated[str, Field(min_length=1)]


class ProjectParams(_Part):
    model: Hook  # module:Class, a pydantic model of params.yaml's `project:` section


class Declaration(_Part):
    name: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    entity: Entity
    sources: dict[str, Source]
    features: Features
    label: Label
    request: Request = Request()
    slices: dict[str, Slice] = {}
    traffic: Traffic = Traffic()
    model: Model
    params: ProjectParams
    generator: Hook | None = None
    paths: list[str] = ["src"]  # added to sys.path so the hooks import

    @field_validator("sources", mode="before")
    @classmethod
    def _names_from_keys(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: {"name": k, **(v or {})} for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Declaration:
        if not self.sources:
            raise ValueError("sources: declare at least one raw source")
        for where, names in (
            ("features.inputs", list(self.features.inputs)),
            ("label.sources", self.label.sources),
        ):
            unknown = [n for n in names if n not in self.sources]
            if unknown:
                raise ValueError(f"{where} names undeclared sources {unknown}")
        missing = [s for s in self.sources if s not in self.features.inputs]
        if missing:
            raise ValueError(f"features.inputs must say how much of {missing} a day reads")
        if self.label.row_id in self.entity.join_keys:
            raise ValueError("label.row_id must not be a join key")
        clash = [f for f in self.request.fields if f in self.entity.join_keys]
        if clash:
            raise ValueError(f"request.fields {clash} are join keys (those are always asked)")
        return self

    @property
    def catalog(self) -> SourceCatalog:
        return SourceCatalog(sources=self.sources)

    @property
    def join_keys(self) -> list[str]:
        return list(self.entity.join_keys)


def load_declaration(folder: Path) -> Declaration:
    """The project's declaration, validated; one ConfigError line naming the file and key."""
    path = folder / "kaizen.yaml"
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no project declaration here") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping (name, entity, sources, ...)")
    try:
        declaration = Declaration.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, where)) from None
    if declaration.name != folder.name:
        raise ConfigError(f"{where}: name: {declaration.name!r} must be the folder's name")
    return declaration
