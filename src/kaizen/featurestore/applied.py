"""When `feast apply` has nothing to do: the repo's fingerprint and the marker of the last apply.

`store.apply` runs Feast's apply only when what it would apply changed since the last apply
on this machine. The fingerprint is a SHA-256 of everything the repo's objects derive from:

* the repo's files (every `*.py`, `feature_store.yaml`, `.feastignore`), sorted by path;
* the variables Feast expands and the repo reads (`feast_environ`: the resolved registry and
  online store, the lake root, the params file's path);
* the params sections the repo reads (`REPO_PARAMS`: TTLs, feature windows);
* the `*.py` files of the project's source folders the repo imports (its schema helpers);
* the Feast and Kaizen versions.

The marker (`MARKER`, next to the registry under `feast_data_dir`) holds the fingerprint of
the last successful apply and a digest of what the registry held right after it. An apply is
skipped only when both still match and the local stores exist: a deleted registry file or
SQLite online store, or a registry changed by someone else (objects added, removed or
redefined; materialization only touches their metadata), applies again.
`kaizen apply --force` applies regardless. Nothing secret is written: the marker holds
digests and object counts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

MARKER = ".applied.json"
REPO_PARAMS = ("featurize", "feature_store", "project")  # the params.yaml sections it reads
_REPO_CONFIG = ("feature_store.yaml", ".feastignore")
_SKIP_DIRS = frozenset({"__pycache__", "data", "node_modules"})


def _python_files(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        found += [Path(root) / f for f in files if f.endswith(".py")]
    return sorted(found)


def repo_files(repo: Path) -> list[Path]:
    """The files `feast apply` reads from the repo."""
    return sorted(
        [*_python_files(repo), *(repo / name for name in _REPO_CONFIG if (repo / name).is_file())]
    )


def _repo_params(params_file: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(params_file).read_text()) or {}
    except FileNotFoundError:
        return {}
    return {key: data.get(key) for key in REPO_PARAMS if isinstance(data, dict)}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def fingerprint(
    repo: Path,
    environ: Mapping[str, str],
    params_file: Path,
    code: Iterable[str | Path] = (),
) -> str:
    """The digest of everything the applied objects derive from (see the module's doc)."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    for path in repo_files(repo):
        add(f"repo:{path.relative_to(repo).as_posix()}", path.read_bytes())
    add("environ", json.dumps(dict(environ), sort_keys=True).encode())
    add("params", json.dumps(_repo_params(params_file), sort_keys=True, default=str).encode())
    for folder in sorted({str(Path(c).resolve()) for c in code}):
        for path in _python_files(Path(folder)):
            add(f"code:{path}", path.read_bytes())
    add("versions", f"feast={_version('feast')} kaizen={_version('kaizen')}".encode())
    return digest.hexdigest()


def registry_digest(store: Any) -> tuple[str, dict[str, int]]:
    """A digest of the registry's object definitions (their specs: materialization intervals
    and timestamps live in their metadata) and the object counts."""
    kinds = {
        "entities": store.list_entities(),
        "feature_views": store.list_feature_views(),
        "on_demand_feature_views": store.list_on_demand_feature_views(),
        "feature_services": store.list_feature_services(),
    }
    digest = hashlib.sha256()
    for kind, objects in kinds.items():
        for obj in sorted(objects, key=lambda o: o.name):
            spec = _stable(obj.to_proto().spec).SerializeToString(deterministic=True)
            digest.update(f"{kind}\0{obj.name}\0{len(spec)}\0".encode())
            digest.update(spec)
    return digest.hexdigest(), {kind: len(objects) for kind, objects in kinds.items()}


def _stable(spec: Any) -> Any:
    """What a spec defines, without what `to_proto` stamps or re-encodes on each call: the
    `meta` (timestamps) of nested messages such as an on-demand view's sources, and a UDF's
    dill bytes (they may differ between processes; its source text, `body_text`, stays)."""
    for field, value in spec.ListFields():
        if field.name == "meta" or (field.name == "body" and "body_text" in _names(spec)):
            spec.ClearField(field.name)
        elif field.message_type is None:
            continue
        elif field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:
                for item in value.values():
                    _stable(item)
        elif field.is_repeated:
            for item in value:
                _stable(item)
        else:
            _stable(value)
    return spec


def _names(message: Any) -> set[str]:
    return set(message.DESCRIPTOR.fields_by_name)


def stores_exist(environ: Mapping[str, str]) -> bool:
    """The local files of this profile's registry and online store exist (a SQL registry and
    Redis are judged by `registry_digest`)."""
    for variable in ("FEAST_KAIZEN_REGISTRY", "FEAST_KAIZEN_ONLINE_STORE"):
        config = json.loads(environ.get(variable) or "{}")
        is_file = config.get("registry_type") == "file" or "Sqlite" in str(config.get("type"))
        if is_file and not Path(config.get("path", "")).is_file():
            return False
    return True


def read_marker(data_dir: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((Path(data_dir) / MARKER).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def write_marker(data_dir: Path, fingerprint: str, registry: str, counts: dict[str, int]) -> None:
    """Record a successful apply (atomically: a reader sees the old marker or the new one)."""
    marker = {
        "fingerprint": fingerprint,
        "registry": registry,
        "counts": counts,
        "applied_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=MARKER, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(marker, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, data_dir / MARKER)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
