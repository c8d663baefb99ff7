"""Helpers for a project's Feast repo: what it reads from Kaizen when Feast imports it.

The repo declares the feature schema (its one home); these give it the project's params
(TTLs, windows), the lake's published partitions as offline sources, and Feast field types
from pandas dtypes. The locations come from the variables `featurestore.environ` sets.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path
from typing import Any

from feast import Field, FileSource
from feast.types import Bool, Float64, Int64, String

from kaizen.params import Params, load_params

FEAST_TYPES = {"int64": Int64, "float64": Float64, "object": String, "bool": Bool}


def _project_dir() -> Path:
    """The project whose repo Feast is importing: KAIZEN_PROJECT (a folder or a name, as
    `kaizen feast-env` and the platform set it), else the repo's parent folder."""
    from kaizen.project.locate import locate

    home = Path(os.environ.get("KAIZEN_HOME") or Path.cwd())
    found = locate(os.environ.get("KAIZEN_PROJECT") or None, home / "projects", home)
    return found or Path.cwd().parent


@functools.lru_cache(maxsize=4)
def _params(path: str) -> Params:
    return load_params(Path(path))


def params() -> Params:
    """The project's params.yaml."""
    return _params(os.environ.get("KAIZEN_PARAMS_FILE") or str(_project_dir() / "params.yaml"))


def project_params() -> Any:
    """params.yaml's `project:` section, as the project's own model."""
    from kaizen.project.project import load_project

    project = load_project(_project_dir())
    return project.params(params().project, "params.yaml")


def fields(dtypes: dict[str, str]) -> list[Field]:
    """Feast fields for columns given as pandas dtypes."""
    return [Field(name=name, dtype=FEAST_TYPES[dtype]) for name, dtype in dtypes.items()]


def ttl(view: str) -> dt.timedelta:
    return dt.timedelta(days=params().feature_store.ttl_days[view])


def offline_path(view: str) -> str:
    """The committed partitions of a published feature view (never `_staging`)."""
    lake = os.environ.get("KAIZEN_LAKE_ROOT") or str(_project_dir() / "data" / "lake")
    return f"{lake.rstrip('/')}/features/{view}/ds=*/*.parquet"


def lake_source(view: str, description: str = "") -> FileSource:
    """The offline source of a view: its published partitions in the project's lake."""
    return FileSource(
        name=f"{view}_source",
        path=offline_path(view),
        timestamp_field="event_timestamp",
        description=description or f"lake/features/{view}: one row per entity per day",
    )
