"""A project as the stages see it: its declaration, its hooks and its own params."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from kaizen.errors import ConfigError, describe_validation_error
from kaizen.project.declaration import Declaration, load_declaration
from kaizen.project.hooks import add_paths, resolve

EVENT_TIMESTAMP = "event_timestamp"  # when a labelled row's prediction is asked (UTC)
LABEL = "label"  # 1: the declared `label.positive` happened
FINAL_TS = "final_ts"  # the instant a row's label can no longer change
# The instant a row's label became known (<= final_ts): a label may settle before its
# deadline (a bill paid in time is a known negative the day it is paid). Optional in a
# hook's rows: without it a label is known only at final_ts.
KNOWN_TS = "known_ts"


@dataclass(frozen=True)
class Project:
    folder: Path
    declaration: Declaration

    @property
    def name(self) -> str:
        return self.declaration.name

    @property
    def join_keys(self) -> list[str]:
        return self.declaration.join_keys

    @property
    def row_id(self) -> str:
        return self.declaration.label.row_id

    @property
    def key_columns(self) -> list[str]:
        """What identifies a labelled row; never a model input."""
        return [self.row_id, *self.join_keys, EVENT_TIMESTAMP]

    @property
    def request_fields(self) -> list[str]:
        return list(self.declaration.request.fields)

    def where(self, key: str) -> str:
        return f"{self.folder / 'kaizen.yaml'}: {key}"

    def hook(self, key: str) -> Callable[..., Any]:
        """The callable the declaration names at `key` (e.g. `label.hook`)."""
        ref: Any = self.declaration
        for part in key.split("."):
            ref = getattr(ref, part)
        if ref is None:
            raise ConfigError(f"{self.where(key)}: not declared")
        add_paths(self.folder, self.declaration.paths)
        found = resolve(ref, self.where(key))
        if not callable(found):
            raise ConfigError(f"{self.where(key)}: {ref!r} is not callable")
        return found

    def transform(self, engine: str) -> Callable[..., Any]:
        if getattr(self.declaration.features.transforms, engine, None) is None:
            raise ConfigError(
                f"{self.where('features.transforms')}: no {engine} transform declared"
            )
        return self.hook(f"features.transforms.{engine}")

    def params(self, section: object, where: str) -> BaseModel:
        """params.yaml's `project:` section, validated by the project's own model."""
        model = self.hook("params.model")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"{self.where('params.model')}: must name a pydantic model class")
        try:
            return model.model_validate(section or {})
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, f"{where}: project")) from None


@functools.lru_cache(maxsize=16)
def _load(folder: str, _mtime: float) -> Project:
    return Project(Path(folder), load_declaration(Path(folder)))


def load_project(folder: Path) -> Project:
    """The project in `folder` (re-read when its declaration changes)."""
    path = folder / "kaizen.yaml"
    mtime = path.stat().st_mtime if path.exists() else 0.0
    return _load(str(folder.resolve()), mtime)
