"""One run of a DAG at a time, whatever started it: the scheduler, a trigger or a backfill.

Airflow 3 counts `max_active_runs` per DAG over scheduled and manual runs, and per backfill
over that backfill's runs (apache/airflow#42686): a backfill and a manual run, or two
backfills, run side by side though each is limited to one. Days whose features are computed
from history must not. The lease closes that gap: a run takes it in its first task and
gives it back in its last, and a run that finds it held waits.

The lease is a log of immutable records in the lake (`RecordStore`: create-only, so two
runs racing for the same sequence number cannot both create it), one record per change of
holder. It is taken by adding "held by run R" when the newest record is a release, or names
a run that no longer runs (a run marked failed in the UI never reaches its last task); it is
given back by adding a release. The log doubles as the record of which run held the DAG when.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kaizen.errors import InputError, KaizenError
from kaizen.logs import get_logger
from kaizen.records import RecordExists, RecordStore

log = get_logger(__name__)

KIND = "run-lease"
_RACES = 20  # consecutive lost races before giving up (each loss means another run moved)


@dataclass(frozen=True)
class Holding:
    seq: int  # the newest record's sequence number (0: the lease was never taken)
    holder: str | None  # the run that holds it (None: free)
    since: str | None  # when it was taken or given back


@dataclass(frozen=True)
class RunLease:
    store: RecordStore
    dag_id: str

    def __post_init__(self) -> None:
        if not self.dag_id:
            raise InputError("a run lease needs the DAG's id")

    @property
    def kind(self) -> str:
        return f"{KIND}.{self.dag_id}"

    def current(self) -> Holding:
        found = self.store.latest(self.kind)
        if found is None:
            return Holding(0, None, None)
        record_id, body = found
        return Holding(int(record_id), body.get("holder"), body.get("at"))

    def take(self, run_id: str, running: Callable[[str], bool]) -> Holding:
        """Take the lease for `run_id` unless another run that still runs holds it. Returns
        the holding after the attempt: `holder == run_id` when taken (or already held)."""
        for _ in range(_RACES):
            now = self.current()
            if now.holder == run_id:
                return now
            if now.holder is not None and running(now.holder):
                return now
            body: dict[str, Any] = {"holder": run_id, "at": _now()}
            if now.holder is not None:  # held by a run that ended without giving it back
                body["broke"] = now.holder
                log.warning(
                    "%s: run %s ended without giving back the run lease; %s takes it",
                    self.dag_id,
                    now.holder,
                    run_id,
                )
            if self._add(now.seq + 1, body):
                return Holding(now.seq + 1, run_id, body["at"])
        raise KaizenError(f"{self.dag_id}: could not take the run lease: too many runs racing")

    def give_back(self, run_id: str) -> bool:
        """Release the lease if `run_id` holds it; False (and nothing changes) if it does not."""
        for _ in range(_RACES):
            now = self.current()
            if now.holder != run_id:
                return False
            if self._add(now.seq + 1, {"holder": None, "released_by": run_id, "at": _now()}):
                return True
        raise KaizenError(f"{self.dag_id}: could not give back the run lease: too many races")

    def _add(self, seq: int, body: dict[str, Any]) -> bool:
        try:
            self.store.put(self.kind, f"{seq:08d}", body)
        except RecordExists:
            return False
        return True


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
