"""`kaizen serve`: the prediction API under uvicorn, on loopback by default.

It binds `KAIZEN_PREDICTION_API_HOST` (127.0.0.1) and `KAIZEN_PREDICTION_API_PORT` (6570)
and refuses to start without `KAIZEN_PREDICTION_API_TOKEN`, or when the Feast registry has no
feature views. `--workers N` runs N processes on the one socket (uvicorn's supervisor); each
loads the models, refreshes the aliases and writes its own prediction log files.
"""

from __future__ import annotations

import os
import socket

from kaizen.config import Settings
from kaizen.errors import ConfigError, KaizenError
from kaizen.logs import get_logger
from kaizen.serving.auth import TOKEN_VARIABLE, require_token

log = get_logger(__name__)
APP_FACTORY = "kaizen.serving.app:create_app"


def serve(settings: Settings, workers: int = 1) -> None:
    """Run the API in the foreground until SIGINT / SIGTERM (the log is flushed on the way out)."""
    import uvicorn

    from kaizen.featurestore.store import open_store

    # One-row predictions: OpenMP threads only wait for each other (every thread the server
    # starts inherits this; `ServedModel.score` limits the request threads as well).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {workers})")
    require_token(settings)
    if not (settings.feast_repo / "feature_store.yaml").is_file():
        raise ConfigError(f"no Feast repo at {settings.feast_repo} (KAIZEN_FEAST_REPO)")
    open_store(settings)  # fail here, in one line, when the registry is not applied
    host, port = settings.prediction_api_host, settings.prediction_api_port
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        raise KaizenError(
            f"the prediction API cannot listen on {host}:{port} ({os.strerror(exc.errno or 0)}): "
            "stop what holds it or choose another port with KAIZEN_PREDICTION_API_PORT"
        ) from None
    try:
        config = uvicorn.Config(
            APP_FACTORY,
            factory=True,
            workers=workers,
            log_config=None,  # Kaizen's logging, configured by the CLI and in each worker
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
        log.info(
            "prediction API on http://%s:%d with %d worker(s) (bearer token from %s)",
            host,
            port,
            workers,
            TOKEN_VARIABLE,
        )
        server = uvicorn.Server(config)
        if workers == 1:
            server.run(sockets=[sock])
        else:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
