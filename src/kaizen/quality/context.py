"""The GX 1.x file context under `expectations/`, opened once per process.

Suites, validation definitions and checkpoints are committed JSON. Validation results and
Data Docs go to `KAIZEN_GX_UNCOMMITTED` (default `expectations/uncommitted`), which the
context's `great_expectations.yml` reads from the environment, so tests and parallel
deployments never write into the checkout.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from kaizen.config import Settings

ENGINES = ("pandas", "spark")
DATASOURCE = {"pandas": "kaizen_pandas", "spark": "kaizen_spark"}
ASSET = "batch"
BATCH_DEFINITION = "whole"


def _quiet() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in (
        "great_expectations",
        "great_expectations.core",
        "great_expectations.data_context",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    # GX 1.24 imports the long-deprecated sre_* modules: nothing we can act on.
    warnings.filterwarnings("ignore", message="module 'sre_", category=DeprecationWarning)


def open_context(settings: Settings) -> Any:
    """The project's FileDataContext (cached per context dir and uncommitted dir)."""
    return _open(str(settings.expectations_dir), str(settings.gx_uncommitted_dir))


@functools.lru_cache(maxsize=4)
def _open(context_dir: str, uncommitted: str) -> Any:
    _quiet()
    os.environ["KAIZEN_GX_UNCOMMITTED"] = uncommitted
    Path(uncommitted).mkdir(parents=True, exist_ok=True)
    import great_expectations as gx

    context = gx.get_context(mode="file", context_root_dir=context_dir)
    return context


def docs_index(settings: Settings) -> Path:
    return settings.gx_uncommitted_dir / "data_docs" / "local_site" / "index.html"
