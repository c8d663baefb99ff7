"""The lake's commit protocol: whole partitions or nothing, reruns replace, one writer wins."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest

from kaizen.errors import InputError, PartitionLockedError
from kaizen.lake import MANIFEST, Lake, Partition


def table(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": list(range(start, start + n)), "v": [float(i) for i in range(n)]})


def test_write_read_replace_delete(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    part = Partition("bronze", "orders", "2026-01-02")
    manifest = lake.write(part, table(5), meta={"source": "orders"})
    assert manifest["rows"] == 5 and manifest["source"] == "orders"
    assert lake.read_table(part).num_rows == 5
    lake.write(part, table(3, start=100))
    assert lake.read_table(part).column("id").to_pylist() == [100, 101, 102]
    # Replacing leaves exactly the new files: nothing appended, no stale staging copies.
    files = sorted(p.name for p in (tmp_path / part.relpath).iterdir())
    assert files == sorted([MANIFEST, manifest_file(lake, part)])
    assert list((tmp_path / "bronze" / "orders" / "_staging").iterdir()) == []
    assert lake.partitions("bronze", "orders") == ["2026-01-02"]
    assert lake.delete(part) and not lake.exists(part)
    assert lake.partitions("bronze", "orders") == []


def manifest_file(lake: Lake, part: Partition) -> str:
    return lake.manifest(part)["files"][0]["path"]


@pytest.mark.faults
def test_same_rows_same_bytes(tmp_path: Path) -> None:
    a, b = Lake(str(tmp_path / "a")), Lake(str(tmp_path / "b"))
    part = Partition("silver", "orders", "2026-01-02")
    a.write(part, table(50))
    b.write(part, table(50))
    b.write(part, table(50))  # a rerun
    for name in (MANIFEST, manifest_file(a, part)):
        assert (tmp_path / "a" / part.relpath / name).read_bytes() == (
            tmp_path / "b" / part.relpath / name
        ).read_bytes()


def test_attachments_travel_with_the_partition(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    part = Partition("quarantine", "orders", "2026-01-02")
    lake.write(part, table(2), attachments={"validation.json": b"{}"})
    assert lake.read_attachment(part, "validation.json") == b"{}"
    with pytest.raises(InputError):
        lake.write(part, table(2), attachments={"../escape": b"x"})


@pytest.mark.parametrize(
    ("layer", "name", "ds"),
    [
        ("Bronze", "orders", "2026-01-01"),
        ("bronze", "../x", "2026-01-01"),
        ("bronze", "orders", "2026-1-1"),
    ],
)
def test_partition_names_are_checked(layer: str, name: str, ds: str) -> None:
    with pytest.raises(InputError):
        Partition(layer, name, ds)


@pytest.mark.faults
def test_a_second_writer_fails_cleanly_while_the_first_holds_the_partition(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    part = Partition("bronze", "orders", "2026-01-02")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            from kaizen.lake import Lake, Partition
            lake = Lake({str(tmp_path)!r})
            with lake._lock(Partition("bronze", "orders", "2026-01-02")):
                print("locked", flush=True)
                time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(PartitionLockedError, match=f"pid {holder.pid}"):
            lake.write(part, table(1))
        assert not lake.exists(part)
    finally:
        holder.kill()
        holder.wait()
    lake.write(part, table(1))  # the kernel released the dead writer's lock
    assert lake.read_table(part).num_rows == 1


KILLED_WRITER = """
import sys, time
import kaizen.lake as lake_mod
from kaizen.lake import Lake, Partition
import pyarrow as pa

stage = sys.argv[2]
original_commit = lake_mod.Lake._commit_local
original_rename = lake_mod.os.rename

def pause(*args, **kwargs):
    print("paused", flush=True)
    time.sleep(60)

if stage == "before-commit":
    # Killed after the data and manifest are staged, before the swap.
    def commit(self, part, blobs):
        real_exchange = lake_mod._rename_exchange
        lake_mod._rename_exchange = lambda a, b: (pause(), real_exchange(a, b))[1]
        lake_mod.os.rename = lambda a, b: (pause(), original_rename(a, b))[1]
        return original_commit(self, part, blobs)
    lake_mod.Lake._commit_local = commit
elif stage == "mid-files":
    # Killed while writing files into staging.
    real_open = open
    count = {"n": 0}
    def slow_open(path, mode="r", *a, **k):
        if "_staging" in str(path) and "w" in mode:
            count["n"] += 1
            if count["n"] == 2:
                pause()
        return real_open(path, mode, *a, **k)
    lake_mod.open = slow_open

lake = Lake(sys.argv[1])
lake.write(Partition("bronze", "orders", "2026-01-02"), pa.table({"id": list(range(int(sys.argv[3])))}))
"""


@pytest.mark.faults
@pytest.mark.parametrize("stage", ["mid-files", "before-commit"])
@pytest.mark.parametrize("previous", [None, 7])
def test_killed_writer_leaves_no_partial_partition(
    tmp_path: Path, stage: str, previous: int | None
) -> None:
    lake = Lake(str(tmp_path))
    part = Partition("bronze", "orders", "2026-01-02")
    if previous:
        lake.write(part, table(previous))
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), stage, "1000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "paused"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    # Readers see the previous version whole, or nothing; never the half-written one.
    if previous:
        assert lake.read_table(part).num_rows == previous
    else:
        assert not lake.exists(part)
        assert not (tmp_path / part.relpath).exists()
    assert lake.partitions("bronze", "orders") == (["2026-01-02"] if previous else [])
    # A rerun commits and clears the dead writer's staging leftovers.
    lake.write(part, table(1000))
    assert lake.read_table(part).num_rows == 1000
    assert list((tmp_path / "bronze" / "orders" / "_staging").iterdir()) == []


@pytest.mark.faults
@pytest.mark.services
def test_object_store_commit_and_lock(s3_settings) -> None:
    lake = Lake.from_settings(s3_settings)
    part = Partition("bronze", "orders", "2026-01-02")
    lake.write(part, table(4))
    lake.write(part, table(2, start=10))
    assert lake.read_table(part).column("id").to_pylist() == [10, 11]
    listing = [p.rsplit("/", 1)[-1] for p in lake.fs.ls(lake._path(part.relpath), refresh=True)]
    assert sorted(listing) == sorted([MANIFEST, manifest_file(lake, part)])
    with lake._lock(part), pytest.raises(PartitionLockedError):
        lake.write(part, table(1))
    assert lake.read_table(part).num_rows == 2
    # A lock left by a writer that died on this host is taken over.
    lock = lake._path("bronze", "orders", "_locks", "ds=2026-01-02.lock")
    lake.fs.pipe_file(
        lock,
        b'{"host": "%s", "pid": 999999999, "since": %f}'
        % (os.uname().nodename.encode(), time.time()),
    )
    lake.write(part, table(3))
    assert lake.read_table(part).num_rows == 3
