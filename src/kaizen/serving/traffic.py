"""`kaizen traffic --ds D`: a project's requests of day D, replayed through its predictor.

The project's traffic sampler (`kaizen.sampler.sample`, kaizen.yaml `traffic.sampler`) gives
the requests of day D: row id, join keys, event time and request fields. Each becomes one
prediction request scored by the same `Predictor` the API runs: champion, canary or shadow
challenger, online features judged fresh at the request's instant, and every score in the
prediction log under its row id (the request id is the row id too). The clock is the
requests' event time, so the log reads as if the API had been live that day.

Replay a day before its own batch is materialized (as the scheduler would have served it):
afterwards the online store already holds features computed from that day. A rerun logs the
same request ids again; the gates count each request id once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kaizen.errors import InputError
from kaizen.logs import get_logger
from kaizen.project.project import EVENT_TIMESTAMP
from kaizen.runtime import Runtime

log = get_logger(__name__)


@dataclass
class TrafficReport:
    ds: str
    requests: int
    served: dict[str, int]  # model version -> requests it answered
    failed: int
    flushed: int
    # Entities the online store knows nothing of (the API's 404): refused, not a failure of
    # the service (e.g. an entity first seen on the replayed day, not yet materialized).
    unknown: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ds": self.ds,
            "requests": self.requests,
            "served": self.served,
            "failed": self.failed,
            "unknown": self.unknown,
            "flushed": self.flushed,
        }


def requests_of_day(rt: Runtime, ds: str) -> pd.DataFrame:
    """The project's requests of `ds` (its traffic sampler's), in event-time order; one line
    why when there are none (e.g. the day's sources are not ingested and validated)."""
    from kaizen.sampler import sample

    end = (dt.date.fromisoformat(ds) + dt.timedelta(days=1)).isoformat()
    rows = sample(rt, ds, end)
    row_id = rt.project.row_id
    if rows.empty:
        raise InputError(
            f"no requests on {ds} from the traffic sampler "
            f"({rt.project.declaration.traffic.sampler}): ingest and validate that day first"
        )
    order = [EVENT_TIMESTAMP, row_id] if row_id in rows.columns else [EVENT_TIMESTAMP]
    rows = rows.sort_values(order, kind="stable")
    if row_id in rows.columns:
        rows = rows.drop_duplicates(row_id)
    return rows.reset_index(drop=True)


def _value(value: Any) -> Any:
    """A frame's cell as the request body holds it (numpy scalars as Python, NaN as None)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):
        value = value.item()
        return None if isinstance(value, float) and value != value else value
    return value


def request_bodies(rt: Runtime, rows: pd.DataFrame, models: Any) -> tuple[list[Any], int]:
    """The project's request model for each row (join keys and request fields, and the row
    id, which is also the request id), and how many rows the API would refuse (skipped)."""
    from pydantic import ValidationError

    project = rt.project
    row_id = project.row_id
    names = [*project.join_keys, *project.request_fields]
    out, refused = [], 0
    for row in rows.to_dict("records"):
        body = {name: _value(row.get(name)) for name in names}
        if _value(row.get(row_id)) is not None:
            body[row_id] = body["request_id"] = str(_value(row[row_id]))
        try:
            out.append(models.predict(**body))
        except ValidationError as exc:
            refused += 1
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem.get("loc", ()))
            log.warning("traffic: %s %s refused: %s: %s", row_id, body.get(row_id), where,
                        problem.get("msg"))  # fmt: skip
    return out, refused


def replay_day(rt: Runtime, ds: str, predictor: Any | None = None) -> TrafficReport:
    """Score every request of `ds` in request-sized batches and flush the prediction log."""
    from kaizen.serving.app import build_predictor
    from kaizen.serving.predictor import PredictionFailed, UnknownEntity

    rows = requests_of_day(rt, ds)
    clock = {"now": dt.datetime.fromisoformat(f"{ds}T00:00:00+00:00")}
    if predictor is None:
        predictor = build_predictor(rt, clock=lambda: clock["now"])
        predictor.refresher.refresh()
    if predictor.deployment.champion is None:
        raise InputError(
            f"no model at @{rt.params.promote.champion_alias}: promote one before replaying traffic"
        )
    batch = rt.params.serve.batch_max_rows
    served: dict[str, int] = {}
    failed = unknown_entities = 0
    flushed = 0
    for start in range(0, len(rows), batch):
        chunk = rows.iloc[start : start + batch]
        clock["now"] = chunk[EVENT_TIMESTAMP].max().to_pydatetime()
        requests, refused = request_bodies(rt, chunk, predictor.models)
        failed += refused
        if not requests:
            continue
        try:
            try:
                predictions = predictor.predict(requests, endpoint="traffic")
            except UnknownEntity as exc:  # the API's 404s: the rest of the batch is served
                unknown_entities += len(exc.rows)
                log.warning("traffic %s: %s", ds, exc)
                unknown = set(exc.rows)
                requests = [r for i, r in enumerate(requests) if i not in unknown]
                predictions = predictor.predict(requests, endpoint="traffic") if requests else []
            for prediction in predictions:
                served[prediction.model_version] = served.get(prediction.model_version, 0) + 1
        except PredictionFailed as exc:
            failed += len(requests)
            log.error("traffic %s: a batch of %d failed: %s", ds, len(requests), exc)
        flushed += predictor.log.flush()
    report = TrafficReport(ds, len(rows), served, failed, flushed, unknown_entities)
    log.info(
        "traffic %s (%s): %d requests, served by %s, %d failed, %d unknown entities, "
        "%d log rows written",
        ds,
        rt.project.name,
        report.requests,
        ", ".join(f"v{v}: {n}" for v, n in sorted(served.items())) or "nobody",
        failed,
        unknown_entities,
        flushed,
    )
    return report
