"""The default traffic sampler: the label hook's rows, as the requests they were.

Each labelled row is a prediction that was (or would have been) asked at its event time,
with its join keys and request-time fields; the load test and `kaizen traffic` replay
them. A project whose requests are not its labelled rows declares its own sampler
(kaizen.yaml `traffic.sampler`) with the same signature.
"""

from __future__ import annotations

import pandas as pd

from kaizen.errors import ConfigError
from kaizen.labels import EVENT_TIMESTAMP, label_rows
from kaizen.runtime import Runtime
from kaizen.transforms.contract import as_of


def requests_between(rt: Runtime, start: str, end: str) -> pd.DataFrame:
    """The requests of days [start, end): row id, join keys, event time, request fields."""
    last = (pd.Timestamp(end) - pd.Timedelta(days=1)).date().isoformat()
    rows = label_rows(rt, last)
    low, high = as_of(start) - pd.Timedelta(days=1), as_of(last)
    inside = rows[(rows[EVENT_TIMESTAMP] >= low) & (rows[EVENT_TIMESTAMP] < high)]
    columns = [*rt.project.key_columns, *rt.project.request_fields]
    return inside[columns].reset_index(drop=True)


def sample(rt: Runtime, start: str, end: str) -> pd.DataFrame:
    """The project's requests of days [start, end), through its declared sampler."""
    rows = rt.project.hook("traffic.sampler")(rt, start, end)
    missing = [c for c in (*rt.project.join_keys, EVENT_TIMESTAMP) if c not in rows.columns]
    if missing:
        where = rt.project.where("traffic.sampler")
        raise ConfigError(f"{where}: the requests lack the columns {missing}")
    return rows
