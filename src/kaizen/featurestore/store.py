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
import io
import json
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kaizen.config import Settings
from kaizen.errors import ConfigError
from kaizen.featurestore.environ import feast_environ, in_repo, project_importable, scoped_environ
from kaizen.logs import get_logger
from kaizen.postgres import ensure_database

log = get_logger(__name__)
# Feast warns on every apply that on-demand views are "experimental"; we rely on them by
# design (feature_repo/on_demand.py), and the repeat drowns the task logs.
EXPERIMENTAL_ODFV = "On demand feature view is an experimental feature"


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


def _prepare(settings: Settings) -> None:
    """What opening or applying the repo needs. Its variables are set only around each use
    (`scoped_environ`): a process serves several projects, and a child process (the
    platform's) must not inherit one project's KAIZEN_PARAMS_FILE or lake root."""
    project_importable(settings)  # the repo imports the project's schema helpers
    settings.feast_data_dir.mkdir(parents=True, exist_ok=True)
    if settings.feast_registry == "sql":
        ensure_database(settings.postgres_url)


def open_store(settings: Settings, *, require_applied: bool = True) -> Any:
    """A FeatureStore on the project's repo for this profile (cached per process)."""
    environ = feast_environ(settings)
    with scoped_environ(environ):  # Feast expands feature_store.yaml's variables on open
        _prepare(settings)
        if settings.lake_root.startswith("s3://"):
            offline_reads_s3(settings)
        store = _open(str(settings.feast_repo), json.dumps(environ, sort_keys=True))
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


def apply(settings: Settings, *, force: bool = False) -> dict[str, Any]:
    """`feast apply` for the repo: creates, updates and removes objects. Skipped when nothing
    it reads changed since the last apply here and the registry still holds what that apply
    left (`kaizen.featurestore.applied`); `force` applies regardless. The object counts, and
    `skipped`."""
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    from kaizen.featurestore.applied import fingerprint, write_marker

    _prepare(settings)
    repo = Path(settings.feast_repo).resolve()
    environ = feast_environ(settings)
    with _apply_lock(settings), scoped_environ(environ):
        digest = fingerprint(repo, environ, settings.params_file, project_importable(settings))
        counts = None if force else _unchanged(settings, environ, digest)
        if counts is not None:
            log.info(
                "feast apply: repo unchanged (fingerprint %s), skipped: %s", digest[:12], counts
            )
            return {**counts, "skipped": True}
        with in_repo(repo):
            config = load_repo_config(repo, repo / "feature_store.yaml")
            # Scoped: Airflow's task runner installs its own filters after our imports.
            with warnings.catch_warnings(), _feast_output_to_debug():
                warnings.filterwarnings(
                    "ignore", message=EXPERIMENTAL_ODFV, category=RuntimeWarning
                )
                apply_total(config, repo, skip_source_validation=True)
        _open.cache_clear()
        registry, counts = _registry(settings)
        write_marker(settings.feast_data_dir, digest, registry, counts)
    log.info(
        "feast apply: repo %s applied (fingerprint %s%s): %s",
        repo,
        digest[:12],
        ", forced" if force else "",
        counts,
    )
    return {**counts, "skipped": False}


def _registry(settings: Settings) -> tuple[str, dict[str, int]]:
    from kaizen.featurestore.applied import registry_digest

    return registry_digest(open_store(settings, require_applied=False))


def _unchanged(settings: Settings, environ: dict[str, str], digest: str) -> dict[str, int] | None:
    """The registry's object counts when an apply would change nothing, else None."""
    from kaizen.featurestore.applied import read_marker, stores_exist

    marker = read_marker(settings.feast_data_dir)
    if marker is None or marker.get("fingerprint") != digest or not stores_exist(environ):
        return None
    registry, counts = _registry(settings)
    return counts if registry == marker.get("registry") else None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def _feast_output_to_debug() -> Iterator[None]:
    """What Feast prints while applying ("Applying changes for project ...", "Deploying
    infrastructure for ...") goes to the debug log, not to stdout."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                log.debug("feast: %s", _ANSI.sub("", line).strip())
