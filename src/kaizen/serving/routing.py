"""Which model answers a customer: canary or shadow, decided per customer and stable.

* `canary`: a customer goes to the challenger iff `canary_bucket(customer_id, salt)` is under
  `canary_share`. The bucket is a blake2b hash, so the split is the same in every process,
  worker and restart, and a customer never flips between models from one request to the next.
* `shadow`: the champion answers every request; the challenger scores the same request and
  its score is logged, never returned.

Without a challenger the champion answers alone, whatever the mode.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

Mode = Literal["shadow", "canary"]


def canary_bucket(customer_id: int, salt: str) -> float:
    """A uniform number in [0, 1) that depends only on the customer and the salt."""
    digest = hashlib.blake2b(f"{salt}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Route:
    served: str  # "champion" or "challenger": the role whose model answers
    shadow: bool  # the challenger also scores the request (logged only)


CHAMPION, CHALLENGER = "champion", "challenger"


def route(customer_id: int, mode: Mode, share: float, salt: str, has_challenger: bool) -> Route:
    if not has_challenger:
        return Route(served=CHAMPION, shadow=False)
    if mode == "shadow":
        return Route(served=CHAMPION, shadow=True)
    to_challenger = canary_bucket(customer_id, salt) < share
    return Route(served=CHALLENGER if to_challenger else CHAMPION, shadow=False)
