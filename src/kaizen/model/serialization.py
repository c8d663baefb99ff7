"""Saving and loading the model with skops, trusting only types we have audited.

skops refuses to load any type it does not know is safe unless told to trust it. The types a
fitted Pipeline needs are computed from the saved bytes, checked against an allow-list of
libraries we run anyway (scikit-learn, NumPy, SciPy), and recorded with the model; anything
else is refused at save time, so a load never trusts more than that list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kaizen.errors import KaizenError

ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.", "_operator.")


def audited_trusted_types(blob: bytes) -> list[str]:
    import skops.io as sio

    untrusted = sorted(sio.get_untrusted_types(data=blob))
    foreign = [t for t in untrusted if not t.startswith(ALLOWED_PREFIXES)]
    if foreign:
        raise KaizenError(
            f"the model needs types outside the audited libraries: {', '.join(foreign)}"
        )
    return untrusted


def save(model: Any, directory: Path) -> list[str]:
    """Write `model.skops` and `trusted_types.json`; return the trusted types."""
    import skops.io as sio

    directory.mkdir(parents=True, exist_ok=True)
    blob = sio.dumps(model)
    trusted = audited_trusted_types(blob)
    (directory / "model.skops").write_bytes(blob)
    (directory / "trusted_types.json").write_text(json.dumps(trusted, indent=2) + "\n")
    return trusted


def load(directory: Path) -> Any:
    import skops.io as sio

    trusted = json.loads((directory / "trusted_types.json").read_text())
    return sio.loads((directory / "model.skops").read_bytes(), trusted=trusted)
