"""One SparkSession per process, built on first use from the settings.

Starting Spark costs 8-14 s here, so stages and tests share the session `get_spark()`
returns. The master is `KAIZEN_SPARK_MASTER` (default `local[2]`); the session works in
UTC, keeps shuffles small, runs no UI and no Hive catalog, and moves data to and from
pandas through Arrow. Nothing starts at import time.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from typing import TYPE_CHECKING

from kaizen.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from kaizen.config import Settings

SESSION_CONF = {
    "spark.app.name": "kaizen",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.driver.memory": "1g",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.pyspark.python": sys.executable,
}
# A local driver talks only to itself: bind to loopback so no host name has to resolve.
LOCAL_CONF = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}

_lock = threading.Lock()
_session: SparkSession | None = None


def get_spark(settings: Settings | None = None) -> SparkSession:
    """The process's shared SparkSession (started on the first call)."""
    global _session
    with _lock:
        if _session is not None and _alive(_session):
            return _session
        if settings is None:
            from kaizen.config import get_settings

            settings = get_settings()
        if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
            raise ConfigError("Spark needs Java 17: install it or set JAVA_HOME")
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.master(settings.spark_master)
        conf = SESSION_CONF | (LOCAL_CONF if settings.spark_master.startswith("local") else {})
        for key, value in conf.items():
            builder = builder.config(key, value)
        _session = builder.getOrCreate()
        _session.sparkContext.setLogLevel("WARN")
        return _session


def stop_spark() -> None:
    """Stop the shared session (the next `get_spark()` starts a new one)."""
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None


def _alive(session: SparkSession) -> bool:
    from pyspark import SparkContext

    return SparkContext._active_spark_context is session.sparkContext
