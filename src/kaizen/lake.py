"""The lake: partitions `<root>/<layer>/<name>/ds=<ds>/` on a local disk or any fsspec store.

Every partition is written whole or not at all, and a rerun replaces it:

* data files are named by their content hash (`part-<sha>.parquet`), so the same rows give
  the same file names and bytes;
* `_manifest.json` lists the files, their checksums and row counts, and is the commit
  marker: a partition without a manifest does not exist, and readers only read the
  files its manifest names;
* locally, the partition is built in `_staging/` and swapped in with one atomic rename
  (`renameat2(RENAME_EXCHANGE)` when replacing), so even a directory-globbing reader
  (Spark, DuckDB, Feast) never sees a half-written partition;
* on S3, objects are uploaded first and the manifest is put last (a single PUT is atomic);
  files left by a crashed writer are not in any manifest and are removed by the next write;
* one writer per partition: a non-blocking `flock` locally, a create-only lock object
  (`If-None-Match: *`) on S3; a second writer fails at once with `PartitionLockedError`.

Names beginning with `_` or `.` are never partitions, which is also the convention Spark
and pyarrow use to skip files when reading a directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import io
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from kaizen.errors import InputError, PartitionLockedError

# The lake's layers: a batch lands in bronze, passes its gate to silver or goes to
# quarantine; features are staged, then published once their suite passes.
BRONZE = "bronze"
SILVER = "silver"
QUARANTINE = "quarantine"
STAGED = "features_staged"
PUBLISHED = "features"

MANIFEST = "_manifest.json"
MANIFEST_FORMAT = "kaizen.partition/1"
# Keys every manifest has; anything else is the writer's lineage (see `lineage()`).
_STRUCTURAL = frozenset(
    {"format", "layer", "name", "ds", "rows", "columns", "files", "attachments"}
)
_SEGMENT = re.compile(r"^[a-z][a-z0-9_]*$")
_DS = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A lock on S3 older than this is presumed abandoned by a writer that died elsewhere.
S3_LOCK_TTL_S = 3600


@dataclass(frozen=True, order=True)
class Partition:
    layer: str
    name: str
    ds: str

    def __post_init__(self) -> None:
        for label, value in (("layer", self.layer), ("name", self.name)):
            if not _SEGMENT.match(value):
                raise InputError(f"invalid lake {label} {value!r}: use lower_snake_case")
        if not _DS.match(self.ds):
            raise InputError(f"invalid partition date {self.ds!r}: expected YYYY-MM-DD")

    @property
    def relpath(self) -> str:
        return f"{self.layer}/{self.name}/ds={self.ds}"

    def __str__(self) -> str:
        return self.relpath


def lineage(manifest: Mapping[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The writer-supplied part of a manifest, to carry forward when a batch moves on."""
    return {k: v for k, v in manifest.items() if k not in _STRUCTURAL and k not in drop}


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _canonical_json(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=2, default=str) + "\n").encode()


class Lake:
    """A lake rooted at a local path or fsspec URL; see the module docstring for the rules."""

    def __init__(self, root: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.root = root.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, self._root = fsspec.core.url_to_fs(self.root, **self.storage_options)
        self._root = self._root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    @classmethod
    def from_settings(cls, settings: Any | None = None) -> Lake:
        if settings is None:
            from kaizen.config import get_settings

            settings = get_settings()
        return cls(settings.lake_root, settings.storage_options(settings.lake_root))

    # -- addresses -------------------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return "/".join([self._root, *parts])

    def url(self, part: Partition | str = "") -> str:
        """A user-facing address (a path locally, the full URL on S3)."""
        rel = part.relpath if isinstance(part, Partition) else part
        return f"{self.root}/{rel}" if rel else self.root

    def file_urls(self, part: Partition) -> list[str]:
        """Full URLs of the committed data files, for engines that read files themselves."""
        manifest = self.manifest(part)
        if manifest is None:
            return []
        return [self.url(f"{part.relpath}/{f['path']}") for f in manifest["files"]]

    # -- reading ---------------------------------------------------------------------------
    def manifest(self, part: Partition) -> dict[str, Any] | None:
        try:
            with self.fs.open(self._path(part.relpath, MANIFEST), "rb") as fh:
                return json.loads(fh.read())
        except FileNotFoundError:
            return None

    def exists(self, part: Partition) -> bool:
        return self.fs.exists(self._path(part.relpath, MANIFEST))

    def partitions(self, layer: str, name: str) -> list[str]:
        """Committed partition dates of a dataset, oldest first."""
        base = self._path(layer, name)
        try:
            entries = self.fs.ls(base, detail=False)
        except FileNotFoundError:
            return []
        dates = []
        for entry in entries:
            leaf = entry.rstrip("/").rsplit("/", 1)[-1]
            if leaf.startswith("ds=") and self.fs.exists(f"{entry.rstrip('/')}/{MANIFEST}"):
                dates.append(leaf[3:])
        return sorted(dates)

    def read_table(self, part: Partition, columns: list[str] | None = None) -> pa.Table:
        manifest = self.manifest(part)
        if manifest is None:
            raise FileNotFoundError(f"no committed partition at {self.url(part)}")
        tables = []
        for entry in manifest["files"]:
            with self.fs.open(self._path(part.relpath, entry["path"]), "rb") as fh:
                tables.append(pq.read_table(fh, columns=columns))
        if not tables:
            return pa.table({})
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def read_many(
        self, layer: str, name: str, dates: list[str], columns: list[str] | None = None
    ) -> pa.Table | None:
        """Every committed partition of `dates` as one table (None when there is none)."""
        import pyarrow.dataset as pads

        paths = []
        for ds in dates:
            manifest = self.manifest(Partition(layer, name, ds))
            if manifest is not None:
                paths += [
                    self._path(f"{layer}/{name}/ds={ds}", f["path"]) for f in manifest["files"]
                ]
        if not paths:
            return None
        dataset = pads.dataset(
            paths, format="parquet", filesystem=None if self.is_local else self.fs
        )
        return dataset.to_table(columns=columns)

    def read_attachment(self, part: Partition, name: str) -> bytes:
        manifest = self.manifest(part)
        if manifest is None or name not in manifest.get("attachments", {}):
            raise FileNotFoundError(f"{name} is not attached to {self.url(part)}")
        return self.fs.cat_file(self._path(part.relpath, name))

    # -- writing ---------------------------------------------------------------------------
    def write(
        self,
        part: Partition,
        table: pa.Table,
        *,
        meta: Mapping[str, Any] | None = None,
        attachments: Mapping[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """Commit `table` (plus small attachments) as `part`, replacing any previous version."""
        data = table_to_parquet_bytes(table)
        files = {f"part-{_sha256(data)[:16]}.parquet": data}
        file_entries = [
            {"path": name, "rows": table.num_rows, "bytes": len(blob), "sha256": _sha256(blob)}
            for name, blob in files.items()
        ]
        attachments = dict(attachments or {})
        for name in attachments:
            if name.startswith(("_", ".")) or "/" in name or name.endswith(".parquet"):
                raise InputError(f"invalid attachment name {name!r}")
        manifest = {
            **(meta or {}),
            "format": MANIFEST_FORMAT,
            "layer": part.layer,
            "name": part.name,
            "ds": part.ds,
            "rows": table.num_rows,
            "columns": table.schema.names,
            "files": file_entries,
            "attachments": {n: _sha256(b) for n, b in sorted(attachments.items())},
        }
        blobs = {**files, **attachments, MANIFEST: _canonical_json(manifest)}
        with self._lock(part):
            if self.is_local:
                self._commit_local(part, blobs)
            else:
                self._commit_object_store(part, blobs)
        return manifest

    def delete(self, part: Partition) -> bool:
        """Remove a partition; it disappears in one step (manifest first on S3)."""
        with self._lock(part):
            target = self._path(part.relpath)
            if not self.fs.exists(target):
                return False
            if self.is_local:
                trash = self._path(
                    part.layer, part.name, "_staging", f"ds={part.ds}.{uuid.uuid4().hex}"
                )
                os.makedirs(os.path.dirname(trash), exist_ok=True)
                os.rename(target, trash)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                self.fs.rm_file(self._path(part.relpath, MANIFEST))
                self.fs.rm(target, recursive=True)
            return True

    # -- local commit: build aside, swap in with one rename ----------------------------------
    def _commit_local(self, part: Partition, blobs: Mapping[str, bytes]) -> None:
        staging_root = self._path(part.layer, part.name, "_staging")
        os.makedirs(staging_root, exist_ok=True)
        # Leftovers of a writer killed before its commit; safe to remove: we hold the lock.
        for leftover in os.listdir(staging_root):
            if leftover.startswith(f"ds={part.ds}."):
                shutil.rmtree(os.path.join(staging_root, leftover), ignore_errors=True)
        staging = os.path.join(staging_root, f"ds={part.ds}.{uuid.uuid4().hex}")
        os.makedirs(staging)
        # The manifest goes last so that even the staging copy is complete when it has one.
        for name in sorted(blobs, key=lambda n: n == MANIFEST):
            with open(os.path.join(staging, name), "wb") as fh:
                fh.write(blobs[name])
                fh.flush()
                os.fsync(fh.fileno())
        _fsync_dir(staging)
        target = self._path(part.relpath)
        if os.path.exists(target):
            if _rename_exchange(staging, target):
                shutil.rmtree(staging, ignore_errors=True)  # now holds the old version
            else:  # filesystems without RENAME_EXCHANGE: a brief gap, never a partial view
                old = f"{staging}.old"
                os.rename(target, old)
                os.rename(staging, target)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, target)
        _fsync_dir(os.path.dirname(target))

    # -- object store commit: objects first, manifest last -----------------------------------
    def _commit_object_store(self, part: Partition, blobs: Mapping[str, bytes]) -> None:
        target = self._path(part.relpath)
        for name, blob in blobs.items():
            if name != MANIFEST:
                self.fs.pipe_file(f"{target}/{name}", blob)
        self.fs.pipe_file(f"{target}/{MANIFEST}", blobs[MANIFEST])
        keep = set(blobs)
        with contextlib.suppress(FileNotFoundError):
            for entry in self.fs.ls(target, detail=False, refresh=True):
                if entry.rstrip("/").rsplit("/", 1)[-1] not in keep:
                    self.fs.rm(entry, recursive=True)
        self.fs.invalidate_cache(target)

    # -- one writer per partition ------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self, part: Partition) -> Iterator[None]:
        lock_path = self._path(part.layer, part.name, "_locks", f"ds={part.ds}.lock")
        if self.is_local:
            with _local_lock(lock_path, part):
                yield
        else:
            with self._object_lock(lock_path, part):
                yield

    @contextlib.contextmanager
    def _object_lock(self, lock_path: str, part: Partition) -> Iterator[None]:
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        for attempt in range(2):
            try:
                self.fs.pipe_file(lock_path, json.dumps(owner).encode(), mode="create")
                break
            except OSError as exc:
                if not _lock_taken(exc):
                    raise
                holder = self._read_lock(lock_path)
                if attempt == 0 and _abandoned(holder):
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm_file(lock_path)
                    continue
                raise PartitionLockedError(
                    f"{part} is being written by another writer ({_describe_holder(holder)}); "
                    "retry when it finishes"
                ) from None
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(lock_path)

    def _read_lock(self, lock_path: str) -> dict[str, Any]:
        try:
            return json.loads(self.fs.cat_file(lock_path))
        except (FileNotFoundError, ValueError):
            return {}


@contextlib.contextmanager
def _local_lock(lock_path: str, part: Partition) -> Iterator[None]:
    import fcntl

    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise PartitionLockedError(
                f"{part} is being written by another writer (pid {holder}); retry when it finishes"
            ) from None
        # The kernel drops a flock when its holder dies, so a killed writer never blocks a rerun.
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _lock_taken(exc: OSError) -> bool:
    """A create-only PUT refused because the object exists (s3fs reports it as EINVAL)."""
    if isinstance(exc, FileExistsError):
        return True
    cause = getattr(exc, "__cause__", None)
    code = getattr(cause, "response", {}).get("Error", {}).get("Code")
    return code in ("PreconditionFailed", "ConditionalRequestConflict")


def _abandoned(holder: Mapping[str, Any]) -> bool:
    if not holder:
        return True
    if time.time() - float(holder.get("since", 0)) > S3_LOCK_TTL_S:
        return True
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder.get("pid", 0)), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError):
            return False
    return False


def _describe_holder(holder: Mapping[str, Any]) -> str:
    if not holder:
        return "unknown"
    age = time.time() - float(holder.get("since", time.time()))
    return f"pid {holder.get('pid')} on {holder.get('host')}, for {age:.0f}s"


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _rename_exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux renameat2). False when the OS cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
