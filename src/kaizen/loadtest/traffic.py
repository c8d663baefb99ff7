"""The requests a load test sends: recent real ones, from the project's traffic sampler.

`promote.load_test.sample_requests` requests of the latest `RECENT_DAYS` days with data
(`kaizen.sampler.sample`: join keys and request fields as they were asked), drawn with the
load test's seed and handed to locust as a JSON file, so the locust process needs neither
the lake nor Kaizen. Their entities are recent, so the online store has rows for them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from kaizen.errors import InputError
from kaizen.runtime import Runtime

RECENT_DAYS = 7  # the days before (and with) the newest validated partition


def latest_day(rt: Runtime) -> str | None:
    """The newest day any of the project's sources has a validated (silver) partition."""
    days = [d for source in rt.catalog.sources for d in rt.lake.partitions("silver", source)[-1:]]
    return max(days) if days else None


def _json(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    return value


def recent_bodies(rt: Runtime, n: int, seed: int) -> list[dict[str, Any]]:
    """Up to `n` request bodies (join keys and request fields) of the latest days."""
    from kaizen.sampler import sample

    last = latest_day(rt)
    if last is None:
        raise InputError(
            f"no validated data in the lake at {rt.settings.lake_root}: run the DataOps DAG "
            f"for project {rt.project.name} before a load test"
        )
    end = dt.date.fromisoformat(last) + dt.timedelta(days=1)
    start = end - dt.timedelta(days=RECENT_DAYS)
    rows = sample(rt, start.isoformat(), end.isoformat())
    names = [*rt.project.join_keys, *rt.project.request_fields]
    rows = rows[names].dropna().reset_index(drop=True)  # a request the API would refuse
    if rows.empty:
        raise InputError(
            f"no requests in {start} .. {last} from project {rt.project.name}'s traffic "
            f"sampler ({rt.project.declaration.traffic.sampler}) for a load test"
        )
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    records = rows.iloc[picked].to_dict("records")  # per column: ints stay ints
    return [{k: _json(v) for k, v in r.items()} for r in records]


def write_traffic(rt: Runtime, path: Path) -> int:
    """Write the request bodies for locust to `path`; returns how many there are."""
    p = rt.params.promote.load_test
    if p is None:
        raise InputError("params.yaml has no promote.load_test section")
    bodies = recent_bodies(rt, p.sample_requests, p.seed)
    path.write_text(json.dumps(bodies))
    return len(bodies)
