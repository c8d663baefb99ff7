"""The run lease: one run of a DAG at a time across every way a run starts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kaizen.records import RecordStore
from kaizen.run_lease import RunLease


def _lease(tmp_path: Path, dag_id: str = "p.daily") -> RunLease:
    return RunLease(RecordStore(str(tmp_path / "lake")), dag_id)


def test_a_free_lease_is_taken_and_a_second_run_waits_until_it_is_given_back(
    tmp_path: Path,
) -> None:
    lease = _lease(tmp_path)
    assert lease.current().holder is None
    assert lease.take("backfill__1", running=lambda run: True).holder == "backfill__1"
    # Another run finds it held by a run that still runs: it waits, nothing is written.
    before = lease.current()
    assert lease.take("manual__2", running=lambda run: True).holder == "backfill__1"
    assert lease.current() == before
    # Taking again (a retry of the first task) is a no-op for the holder.
    assert lease.take("backfill__1", running=lambda run: True).seq == before.seq
    assert lease.give_back("backfill__1") is True
    assert lease.take("manual__2", running=lambda run: True).holder == "manual__2"


def test_only_the_holder_gives_it_back(tmp_path: Path) -> None:
    lease = _lease(tmp_path)
    lease.take("a", running=lambda run: True)
    assert lease.give_back("b") is False
    assert lease.current().holder == "a"
    assert lease.give_back("a") is True
    assert lease.give_back("a") is False  # a second teardown changes nothing
    assert lease.current().holder is None


def test_a_holder_that_ended_without_giving_it_back_is_broken_and_recorded(
    tmp_path: Path,
) -> None:
    lease = _lease(tmp_path)
    lease.take("marked_failed", running=lambda run: True)
    asked: list[str] = []

    def running(run: str) -> bool:
        asked.append(run)
        return False  # e.g. marked failed in the UI: its teardown never ran

    taken = lease.take("next", running)
    assert taken.holder == "next" and asked == ["marked_failed"]
    log = RecordStore(str(tmp_path / "lake"))
    body = log.get(lease.kind, f"{taken.seq:08d}")
    assert body["broke"] == "marked_failed" and body["holder"] == "next"


def test_leases_of_two_dags_are_independent(tmp_path: Path) -> None:
    a, b = _lease(tmp_path, "p.daily"), _lease(tmp_path, "p.monitor")
    assert a.take("r1", running=lambda run: True).holder == "r1"
    assert b.take("r2", running=lambda run: True).holder == "r2"


def test_of_many_runs_racing_for_a_free_lease_exactly_one_holds_it(tmp_path: Path) -> None:
    lease = _lease(tmp_path)
    barrier = threading.Barrier(8)
    results: dict[str, str | None] = {}

    def race(run: str) -> None:
        barrier.wait()
        results[run] = lease.take(run, running=lambda other: True).holder

    threads = [threading.Thread(target=race, args=(f"run{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    holders = set(results.values())
    assert len(holders) == 1, results  # every run agrees on one holder
    (holder,) = holders
    assert lease.current().holder == holder
    winners = [run for run, held in results.items() if held == run]
    assert winners == [holder]


def test_the_latest_record_skips_one_still_being_written(tmp_path: Path) -> None:
    store = RecordStore(str(tmp_path / "lake"))
    store.put("k", "00000001", {"n": 1})
    (tmp_path / "lake" / "records" / "k" / "00000002").mkdir()  # a writer mid-put
    assert store.latest("k") == ("00000001", {"n": 1})
    assert store.latest("nothing") is None


@pytest.mark.parametrize("bad", ["../x", "a/b", ""])
def test_a_lease_of_an_invalid_dag_id_is_refused(tmp_path: Path, bad: str) -> None:
    from kaizen.errors import InputError

    with pytest.raises(InputError):
        _lease(tmp_path, bad).current()
