"""PostgreSQL databases the stack profile uses (Feast registry, MLflow), created on first use."""

from __future__ import annotations

from kaizen.errors import ConfigError
from kaizen.logs import get_logger

log = get_logger(__name__)


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database of the same server."""
    import sqlalchemy as sa

    return sa.engine.make_url(url).set(database=database).render_as_string(hide_password=False)


def ensure_database(url: str) -> None:
    """Create the database `url` names if the server does not have it yet."""
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            query = sa.text("SELECT 1 FROM pg_database WHERE datname = :d")
            if not conn.execute(query, {"d": target.database}).scalar():
                conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
                log.info("created PostgreSQL database %s", target.database)
    except sa.exc.ProgrammingError as exc:
        if "already exists" not in str(exc):  # created concurrently by another process
            raise
    except sa.exc.OperationalError as exc:
        shown = target.render_as_string(hide_password=True)
        raise ConfigError(
            f"PostgreSQL unreachable at {shown}: {str(exc.orig).strip().splitlines()[0]}"
        ) from None
    finally:
        admin.dispose()
