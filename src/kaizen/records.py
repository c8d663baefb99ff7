"""Immutable records in the lake: gate decisions and the promotion ledger.

A record is a folder `<lake_root>/records/<kind>/<id>/` holding `record.json` and optional
attachments. It is created once and never changed: `record.json` is written create-only
(O_EXCL locally, `If-None-Match: *` on S3) after its attachments, so a record either exists
whole or not at all, and two writers can never both create the same id. Append-only logs
(the ledger) take the next sequence number and retry on a clash.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from typing import Any

import fsspec

from kaizen.errors import InputError, KaizenError

RECORD = "record.json"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RecordExists(KaizenError):
    """A record with this id was created first by someone else."""


class RecordStore:
    def __init__(self, root: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.root = root.rstrip("/") + "/records"
        self.fs, self._root = fsspec.core.url_to_fs(self.root, **dict(storage_options or {}))
        self.local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )

    @classmethod
    def from_settings(cls, settings: Any) -> RecordStore:
        return cls(settings.lake_root, settings.storage_options(settings.lake_root))

    def _dir(self, kind: str, record_id: str) -> str:
        for label, value in (("kind", kind), ("id", record_id)):
            if not _ID.match(value):
                raise InputError(f"invalid record {label} {value!r}")
        return f"{self._root}/{kind}/{record_id}"

    def put(
        self,
        kind: str,
        record_id: str,
        payload: Mapping[str, Any],
        attachments: Mapping[str, bytes] | None = None,
    ) -> str:
        """Create the record; RecordExists if the id is taken. Returns its address."""
        folder = self._dir(kind, record_id)
        if self.fs.exists(f"{folder}/{RECORD}"):
            raise RecordExists(f"{kind} record {record_id} already exists")
        self.fs.makedirs(folder, exist_ok=True)
        for name, blob in (attachments or {}).items():
            if name == RECORD or "/" in name or name.startswith("."):
                raise InputError(f"invalid attachment name {name!r}")
            self.fs.pipe_file(f"{folder}/{name}", blob)
        body = (json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n").encode()
        self._create(f"{folder}/{RECORD}", body, kind, record_id)
        return f"{self.root}/{kind}/{record_id}"

    def _create(self, path: str, body: bytes, kind: str, record_id: str) -> None:
        if self.local:
            tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"  # threads write too
            with open(tmp, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # atomic and fails if the name exists: create-only
            except FileExistsError:
                raise RecordExists(f"{kind} record {record_id} already exists") from None
            finally:
                os.unlink(tmp)
            return
        try:
            self.fs.pipe_file(path, body, mode="create")
        except OSError as exc:
            from kaizen.lake import _lock_taken

            if _lock_taken(exc):
                raise RecordExists(f"{kind} record {record_id} already exists") from None
            raise

    def get(self, kind: str, record_id: str) -> dict[str, Any]:
        try:
            return json.loads(self.fs.cat_file(f"{self._dir(kind, record_id)}/{RECORD}"))
        except FileNotFoundError:
            raise InputError(f"no {kind} record {record_id!r}") from None

    def attachment(self, kind: str, record_id: str, name: str) -> bytes:
        return self.fs.cat_file(f"{self._dir(kind, record_id)}/{name}")

    def ids(self, kind: str) -> list[str]:
        """Ids of the complete records of a kind, in name order."""
        base = f"{self._root}/{kind}"
        try:
            entries = self.fs.ls(base, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if _ID.match(name) and self.fs.exists(f"{entry.rstrip('/')}/{RECORD}"):
                found.append(name)
        return sorted(found)

    def latest(self, kind: str) -> tuple[str, dict[str, Any]] | None:
        """The complete record with the highest id of a kind, and its body (None: no record).
        Checks only from the top down, so a long log costs one listing, not a read per record."""
        base = f"{self._root}/{kind}"
        self._dir(kind, "0")  # validates the kind
        try:
            entries = self.fs.ls(base, detail=False, refresh=True)
        except FileNotFoundError:
            return None
        names = sorted((e.rstrip("/").rsplit("/", 1)[-1] for e in entries), reverse=True)
        for name in names:
            if not _ID.match(name):
                continue
            try:
                return name, json.loads(self.fs.cat_file(f"{base}/{name}/{RECORD}"))
            except FileNotFoundError:  # a record still being written, or abandoned
                continue
        return None

    def append(self, kind: str, payload: Mapping[str, Any]) -> str:
        """Add to an append-only log: the next zero-padded sequence id, retried on a clash."""
        for _ in range(50):
            existing = self.ids(kind)
            seq = int(existing[-1]) + 1 if existing else 1
            record_id = f"{seq:08d}"
            try:
                self.put(kind, record_id, {**payload, "seq": seq})
                return record_id
            except RecordExists:
                continue
        raise KaizenError(f"could not append to {kind}: too many concurrent writers")
