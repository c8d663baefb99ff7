"""Opening the Feast store of a profile, and applying the declarative repo idempotently.

`feature_repo/feature_store.yaml` takes the registry and online store from two variables
(Feast expands `${VAR}` in that file), which this module derives from the settings:

* `local`: a registry file and Kaizen's monotonic SQLite store under `feast_data_dir`;
* `stack`: the SQL registry on Postgres and Kaizen's monotonic Redis store.

`kaizen feast-env` prints them so the `feast` CLI sees the same store.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kaizen.config import Settings
from kaizen.errors import ConfigError
from kaizen.logs import get_logger
from kaizen.postgres import ensure_database

log = get_logger(__name__)
# Feast warns on every apply that on-demand views are "experimental"; we rely on them by
# design (feature_repo/on_demand.py), and the repeat drowns the task logs.
EXPERIMENTAL_ODFV = "On demand feature view is an experimental feature"
ONLINE_STORES = {
    "sqlite": "kaizen.featurestore.online_stores.MonotonicSqliteOnlineStore",
    "redis": "kaizen.featurestore.online_stores.MonotonicRedisOnlineStore",
}


def with_redis_timeout(settings: Settings, seconds: float) -> Settings:
    """The settings with socket timeouts on the Redis online store (Feast passes the
    connection string's `key=value` parts to the client): a serving process fails fast when
    Redis is down or hung. Batch jobs keep no timeout: a large pipelined write may be slow."""
    if settings.feast_online_store != "redis":
        return settings
    parts = settings.redis_connection.split(",")
    keys = {p.split("=", 1)[0] for p in parts if "=" in p}
    extra = [
        f"{k}={seconds}" for k in ("socket_timeout", "socket_connect_timeout") if k not in keys
    ]
    return settings.model_copy(update={"redis_connection": ",".join([*parts, *extra])})


def feast_environ(settings: Settings) -> dict[str, str]:
    """The variables `feature_store.yaml` expands, as YAML flow mappings."""
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
        "KAIZEN_LAKE_ROOT": settings.lake_root,
        "KAIZEN_PARAMS_FILE": str(settings.params_file),
        "FEAST_KAIZEN_REGISTRY": json.dumps(registry),
        "FEAST_KAIZEN_ONLINE_STORE": json.dumps(online),
        "FEAST_USAGE": "False",
    }


def _prepare(settings: Settings) -> None:
    os.environ.update(feast_environ(settings))
    settings.feast_data_dir.mkdir(parents=True, exist_ok=True)
    if settings.feast_registry == "sql":
        ensure_database(settings.postgres_url)


def open_store(settings: Settings, *, require_applied: bool = True) -> Any:
    """A FeatureStore on the project's repo for this profile (cached per process)."""
    _prepare(settings)
    if settings.lake_root.startswith("s3://"):
        offline_reads_s3(settings)
    store = _open(str(settings.feast_repo), json.dumps(feast_environ(settings), sort_keys=True))
    if require_applied and not store.list_feature_views(allow_cache=True):
        raise ConfigError(
            "the Feast registry has no feature views for this profile: run `kaizen apply`"
        )
    return store


def offline_reads_s3(settings: Settings) -> None:
    """Let the DuckDB offline store read the feature views' files from the S3 lake.

    Feast's DuckDB store reads a FileSource through ibis' default DuckDB connection with no
    endpoint or credentials of its own (those would be stored in the registry), so it would
    ask AWS. This gives that connection the `httpfs` extension (from the
    `duckdb-extension-httpfs` package: DuckDB's own download needs the internet) and a
    temporary secret for the lake's bucket from the settings; nothing is written to disk but
    the extension."""
    bucket = settings.lake_root.split("://", 1)[1].split("/", 1)[0]
    key = settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else ""
    secret = (
        settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else ""
    )
    _duckdb_s3_secret(bucket, settings.s3_endpoint_url or "", settings.s3_region, key, secret)


@functools.lru_cache(maxsize=4)
def _duckdb_s3_secret(bucket: str, endpoint_url: str, region: str, key: str, secret: str) -> None:
    import glob

    import ibis

    con = ibis.get_backend()  # the connection `ibis.read_parquet` (Feast's DuckDB store) uses
    state = con.raw_sql(
        "SELECT installed, loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'"
    ).fetchone()
    installed, loaded = state if state else (False, False)
    if not installed:
        with contextlib.suppress(ImportError):
            import duckdb_extension_httpfs

            folder = os.path.dirname(duckdb_extension_httpfs.__file__)
            found = sorted(glob.glob(os.path.join(folder, "extensions", "*", "httpfs.*")))
            if found:
                con.raw_sql(f"INSTALL '{found[0]}'")
    if not loaded:
        con.raw_sql("LOAD httpfs")

    def quoted(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    options = [
        "TYPE s3",
        f"REGION {quoted(region)}",
        f"SCOPE {quoted(f's3://{bucket}')}",
    ]
    if key and secret:
        options += [f"KEY_ID {quoted(key)}", f"SECRET {quoted(secret)}"]
    if endpoint_url:  # an S3-compatible store (SeaweedFS, MinIO): path-style URLs
        scheme, _, host = endpoint_url.partition("://")
        options += [
            f"ENDPOINT {quoted(host.rstrip('/'))}",
            "URL_STYLE 'path'",
            f"USE_SSL {'true' if scheme == 'https' else 'false'}",
        ]
    name = "kaizen_lake_" + "".join(c if c.isalnum() else "_" for c in bucket)
    con.raw_sql(f"CREATE OR REPLACE SECRET {name} ({', '.join(options)})")


@functools.lru_cache(maxsize=4)
def _open(repo: str, _environ_key: str) -> Any:
    from feast import FeatureStore

    return FeatureStore(repo_path=repo)


APPLY_LOCK_KEY = 0x4B41495A454E  # "KAIZEN": the advisory lock every `apply` takes


@contextlib.contextmanager
def _apply_lock(settings: Settings) -> Iterator[None]:
    """One `apply` at a time: a file registry is rewritten whole (a lock file on this
    machine); two applies on a fresh SQL registry race to create its tables and one fails,
    so there the lock is a PostgreSQL advisory lock, held across machines and released by
    the server if the holder dies."""
    path = settings.feast_data_dir / ".apply.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if settings.feast_registry != "sql":
            yield
            return
        import sqlalchemy as sa

        engine = sa.create_engine(settings.postgres_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": APPLY_LOCK_KEY})
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": APPLY_LOCK_KEY})
        finally:
            engine.dispose()


@contextlib.contextmanager
def _in_repo(repo: Path) -> Iterator[None]:
    """Feast imports the repo's modules by their path relative to the working directory,
    with the repo on sys.path; fresh each time, since their paths depend on the settings."""

    def forget() -> None:
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", "") or "").startswith(str(repo) + os.sep):
                del sys.modules[name]

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


def apply(settings: Settings) -> dict[str, int]:
    """`feast apply` for the repo: creates, updates and removes objects; a no-op when in sync."""
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    _prepare(settings)
    repo = Path(settings.feast_repo).resolve()
    with _apply_lock(settings), _in_repo(repo):
        config = load_repo_config(repo, repo / "feature_store.yaml")
        # Scoped: Airflow's task runner installs its own filters after our imports.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=EXPERIMENTAL_ODFV, category=RuntimeWarning)
            apply_total(config, repo, skip_source_validation=True)
    _open.cache_clear()
    store = open_store(settings, require_applied=False)
    counts = {
        "entities": len(store.list_entities()),
        "feature_views": len(store.list_feature_views()),
        "on_demand_feature_views": len(store.list_on_demand_feature_views()),
        "feature_services": len(store.list_feature_services()),
    }
    log.info("Feast repo %s applied: %s", repo, counts)
    return counts
