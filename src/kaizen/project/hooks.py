"""Importing what a declaration names (`module.path:attribute`), with one-line errors."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from kaizen.errors import ConfigError


def add_paths(folder: Path, paths: list[str]) -> None:
    """Put the project's source folders on sys.path (once), so its hooks import."""
    for rel in paths:
        path = str((folder / rel).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)


def resolve(ref: str, where: str) -> Any:
    """The object `ref` names; `where` (file: key) is named in the error if it cannot be."""
    module_name, _, attribute = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import error in the project's code is the project's
        raise ConfigError(
            f"{where}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"{where}: module {module_name!r} has no {attribute!r}") from None
