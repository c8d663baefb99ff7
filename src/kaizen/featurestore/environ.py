"""What a project's Feast repo sees when Feast imports it: variables and sys.path.

`feature_store.yaml` takes the registry and online store from two variables (Feast expands
`${VAR}` in that file); the repo's Python reads the lake root and the project's params from
two more. `kaizen feast-env` prints them so the `feast` CLI sees the same store.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from kaizen.config import Settings

ONLINE_STORES = {
    "sqlite": "kaizen.featurestore.online_stores.MonotonicSqliteOnlineStore",
    "redis": "kaizen.featurestore.online_stores.MonotonicRedisOnlineStore",
}


# os.environ and the working directory are the process's: one thread at a time may set them
# for a repo (the prediction API loads several projects' stores from background threads).
REPO_LOCK = threading.RLock()


def feast_environ(settings: Settings) -> dict[str, str]:
    """The variables `feature_store.yaml` and the repo's modules read."""
    data = settings.feast_data_dir
    if settings.feast_registry == "sql":
        registry = {
            "registry_type": "sql",
            "path": settings.postgres_url,
            "cache_ttl_seconds": 30,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
        }
    else:
        registry = {
            "registry_type": "file",
            "path": str(data / "registry.db"),
            "cache_ttl_seconds": 30,
        }
    if settings.feast_online_store == "redis":
        online = {"type": ONLINE_STORES["redis"], "connection_string": settings.redis_connection}
    else:
        online = {"type": ONLINE_STORES["sqlite"], "path": str(data / "online.db")}
    return {
        "KAIZEN_HOME": str(settings.home),
        "KAIZEN_PROJECT": str(settings.project_dir or ""),
        "KAIZEN_LAKE_ROOT": settings.lake_root,
        "KAIZEN_PARAMS_FILE": str(settings.params_file),
        "FEAST_KAIZEN_REGISTRY": json.dumps(registry),
        "FEAST_KAIZEN_ONLINE_STORE": json.dumps(online),
        "FEAST_USAGE": "False",
    }


def project_importable(settings: Settings) -> list[str]:
    """Put the project's source folders on sys.path: its repo imports its schema helpers.
    Returns them (what `kaizen feast-env` prints as PYTHONPATH)."""
    if settings.project_dir is None:
        return []
    from kaizen.project.hooks import add_paths
    from kaizen.project.project import load_project

    project = load_project(settings.project_dir)
    add_paths(project.folder, project.declaration.paths)
    return [str((project.folder / p).resolve()) for p in project.declaration.paths]


@contextlib.contextmanager
def scoped_environ(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ for the block, the previous values after (under REPO_LOCK)."""
    with REPO_LOCK:
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@contextlib.contextmanager
def in_repo(repo: Path) -> Iterator[None]:
    """Feast imports the repo's modules by their path relative to the working directory,
    with the repo on sys.path; fresh each time, since two projects' repos use the same
    module names (views, services) and their contents depend on the settings."""

    def forget() -> None:
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", "") or "").startswith(str(repo) + os.sep):
                del sys.modules[name]

    with REPO_LOCK:
        cwd = os.getcwd()
        forget()
        sys.path.insert(0, str(repo))
        os.chdir(repo)
        try:
            yield
        finally:
            os.chdir(cwd)
            sys.path.remove(str(repo))
            forget()
