"""What the declarative Feast repo derives from Kaizen, so no feature is listed twice.

The feature views' columns and types come from the transforms' contract
(`kaizen.transforms.views.view_dtypes`), their time-to-live from params.yaml, and their
offline files from the lake. The repo reads these when `feast apply` imports it; the
locations come from the variables `kaizen.featurestore.store.feast_environ` sets.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path

from feast import Field
from feast.types import Float64, Int64, String

from kaizen.params import Params, load_params
from kaizen.transforms.views import ENTITY, EVENT_TIMESTAMP, view_dtypes

FEAST_TYPES = {"int64": Int64, "float64": Float64, "object": String}


@functools.lru_cache(maxsize=2)
def _params(path: str) -> Params:
    return load_params(Path(path))


def params() -> Params:
    home = Path(os.environ.get("KAIZEN_HOME") or Path.cwd())
    return _params(os.environ.get("KAIZEN_PARAMS_FILE") or str(home / "params.yaml"))


def fields(view: str) -> list[Field]:
    """The view's features (every contract column but the key and the timestamp)."""
    columns = view_dtypes(params().featurize)[view]
    return [
        Field(name=name, dtype=FEAST_TYPES[dtype])
        for name, dtype in columns.items()
        if name not in (ENTITY, EVENT_TIMESTAMP)
    ]


def feature_names(view: str) -> list[str]:
    return [f.name for f in fields(view)]


def ttl(view: str) -> dt.timedelta:
    return dt.timedelta(days=params().feature_store.ttl_days[view])


def offline_path(view: str) -> str:
    """The committed partitions of a published feature view (never `_staging`)."""
    home = Path(os.environ.get("KAIZEN_HOME") or Path.cwd())
    lake = os.environ.get("KAIZEN_LAKE_ROOT") or str(home / "data" / "lake")
    return f"{lake.rstrip('/')}/features/{view}/ds=*/*.parquet"
