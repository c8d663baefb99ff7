"""Feature freshness: the newest published day of each feature view against its SLO.

On day `ds` a view meets its SLO when its newest published partition is at least
`ds - freshness_slo_days[view]`. A stale view serves old features (or none, past the TTL).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kaizen.errors import ConfigError
from kaizen.lake import PUBLISHED
from kaizen.params import MonitorParams
from kaizen.runtime import Runtime


def freshness(rt: Runtime, ds: str, p: MonitorParams) -> dict[str, dict[str, Any]]:
    """Each feature view of the project's Feast repo against its SLO (a view without one in
    `monitor.freshness_slo_days` is a ConfigError: freshness is never silently unwatched)."""
    today = dt.date.fromisoformat(ds)
    views = list(rt.schema.views)
    missing = [v for v in views if v not in p.freshness_slo_days]
    unknown = [v for v in p.freshness_slo_days if v not in views]
    if missing or unknown:
        raise ConfigError(
            f"{rt.settings.params_file}: monitor.freshness_slo_days must name exactly the "
            f"feature views {views} (missing {missing}, unknown {unknown})"
        )
    out = {}
    for view in views:
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
