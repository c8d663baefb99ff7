"""Feature freshness: the newest published day of each feature view against its SLO.

On day `ds` a view meets its SLO when its newest published partition is at least
`ds - freshness_slo_days[view]`. A stale view serves old features (or none, past the TTL).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kaizen.params import MonitorParams
from kaizen.runtime import Runtime
from kaizen.stages.validate_features import PUBLISHED
from kaizen.transforms.views import VIEWS


def freshness(rt: Runtime, ds: str, p: MonitorParams) -> dict[str, dict[str, Any]]:
    today = dt.date.fromisoformat(ds)
    out = {}
    for view in VIEWS:
        days = [d for d in rt.lake.partitions(PUBLISHED, view) if d <= ds]
        newest = days[-1] if days else None
        lag = (today - dt.date.fromisoformat(newest)).days if newest else None
        slo = p.freshness_slo_days[view]
        out[view] = {
            "newest": newest,
            "lag_days": lag,
            "slo_days": slo,
            "breach": lag is None or lag > slo,
        }
    return out
