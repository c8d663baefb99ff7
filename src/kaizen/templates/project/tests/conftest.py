"""Make the project's package and test helpers importable without installing anything,
and share one generated history across the tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for path in (HERE.parent / "src", HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory):
    """Thirty clean generated days, parsed as silver: (root, dates, accounts, events)."""
    from __name__.generate import generate
    from __name__.params import ProjectParams
    from __name___helpers import START, dates, silver

    root = tmp_path_factory.mktemp("__name___raw")
    generate(ProjectParams(), str(root), start=START, days=30)
    days = dates(START, 30)
    return root, days, silver(root, "accounts", days), silver(root, "events", days)
