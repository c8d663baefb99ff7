"""`kaizen traffic --ds D`: the simulated world's live traffic, replayed through the predictor.

Every invoice issued on day D becomes one prediction request (customer, amount, invoice id)
scored by the same `Predictor` the API runs: champion, canary or shadow challenger, online
features judged fresh at the request's instant, and every score in the prediction log. The
clock is the invoice's issue time, so the log reads as if the API had been live that day.

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
from kaizen.lake import Partition
from kaizen.logs import get_logger
from kaizen.runtime import Runtime

log = get_logger(__name__)


@dataclass
class TrafficReport:
    ds: str
    requests: int
    served: dict[str, int]  # model version -> requests it answered
    failed: int
    flushed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "ds": self.ds,
            "requests": self.requests,
            "served": self.served,
            "failed": self.failed,
            "flushed": self.flushed,
        }


def invoices_issued(rt: Runtime, ds: str) -> pd.DataFrame:
    """invoice_id, customer_id, amount and issued_ts of the invoices issued on `ds`."""
    part = Partition("silver", "payments", ds)
    if not rt.lake.exists(part):
        raise InputError(f"no silver payments for {ds}: ingest and validate that day first")
    rows = rt.lake.read_table(part).to_pandas()
    day = rows["issued_ts"].dt.date == dt.date.fromisoformat(ds)
    issued = rows[day].sort_values(["issued_ts", "invoice_id"], kind="stable")
    return issued.drop_duplicates("invoice_id")[
        ["invoice_id", "customer_id", "amount", "issued_ts"]
    ].reset_index(drop=True)


def replay_day(rt: Runtime, ds: str, predictor: Any | None = None) -> TrafficReport:
    """Score every invoice of `ds` in request-sized batches and flush the prediction log."""
    from kaizen.serving.app import build_predictor
    from kaizen.serving.predictor import PredictionFailed
    from kaizen.serving.schemas import PredictRequest

    invoices = invoices_issued(rt, ds)
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
    failed = 0
    flushed = 0
    for start in range(0, len(invoices), batch):
        chunk = invoices.iloc[start : start + batch]
        clock["now"] = chunk["issued_ts"].max().to_pydatetime()
        requests = [
            PredictRequest(
                customer_id=int(r.customer_id),
                requested_amount=float(r.amount),
                invoice_id=str(r.invoice_id),
                request_id=f"inv-{r.invoice_id}",
            )
            for r in chunk.itertuples(index=False)
        ]
        try:
            for prediction in predictor.predict(requests, endpoint="traffic"):
                served[prediction.model_version] = served.get(prediction.model_version, 0) + 1
        except PredictionFailed as exc:
            failed += len(requests)
            log.error("traffic %s: a batch of %d failed: %s", ds, len(requests), exc)
        flushed += predictor.log.flush()
    report = TrafficReport(ds, len(invoices), served, failed, flushed)
    log.info(
        "traffic %s: %d requests, served by %s, %d failed, %d log rows written",
        ds,
        report.requests,
        ", ".join(f"v{v}: {n}" for v, n in sorted(served.items())) or "nobody",
        failed,
        flushed,
    )
    return report
