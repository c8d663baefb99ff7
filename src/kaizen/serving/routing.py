"""Which model answers an entity: canary or shadow, decided per entity and stable.

* `canary`: an entity goes to the challenger iff `canary_bucket(key, salt)` is under
  `canary_share`, where `key` is its join-key values. The bucket is a blake2b hash, so the
  split is the same in every process, worker and restart, and an entity never flips
  between models from one request to the next.
* `shadow`: the champion answers every request; the challenger scores the same request and
  its score is logged, never returned.

Without a challenger the champion answers alone, whatever the mode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["shadow", "canary"]


def _text(key: Any) -> str:
    """The join-key values as hashed: one key is its value, several are joined by `|`."""
    if isinstance(key, Sequence) and not isinstance(key, str | bytes):
        return "|".join(str(v) for v in key) if len(key) != 1 else str(key[0])
    return str(key)


def canary_bucket(key: Any, salt: str) -> float:
    """A uniform number in [0, 1) that depends only on the entity's key and the salt. `key`
    is the join-key value, or the tuple of them (a 1-tuple hashes as its value)."""
    digest = hashlib.blake2b(f"{salt}:{_text(key)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Route:
    served: str  # "champion" or "challenger": the role whose model answers
    shadow: bool  # the challenger also scores the request (logged only)


CHAMPION, CHALLENGER = "champion", "challenger"


def route(key: Any, mode: Mode, share: float, salt: str, has_challenger: bool) -> Route:
    if not has_challenger:
        return Route(served=CHAMPION, shadow=False)
    if mode == "shadow":
        return Route(served=CHAMPION, shadow=True)
    to_challenger = canary_bucket(key, salt) < share
    return Route(served=CHALLENGER if to_challenger else CHAMPION, shadow=False)
