"""`kaizen serve`: the prediction API under uvicorn, on loopback by default.

One process serves several projects, each under its own prefix (`/<project>/predict`, ...):
`KAIZEN_SERVE_PROJECTS` (a JSON list of project names), or every project
under `KAIZEN_PROJECTS_DIR` when it is empty. It binds `KAIZEN_PREDICTION_API_HOST`
(127.0.0.1) and `KAIZEN_PREDICTION_API_PORT` (6570) and refuses to start without
`KAIZEN_PREDICTION_API_TOKEN`, or when a project's Feast registry has no feature views.
`--workers N` runs N processes on the one socket (uvicorn's supervisor); each loads the
models, refreshes the aliases and writes its own prediction log files.
"""

from __future__ import annotations

import os
import socket

from kaizen.asgi import require_token as checked_token
from kaizen.config import Settings
from kaizen.errors import ConfigError, KaizenError
from kaizen.logs import get_logger

log = get_logger(__name__)
APP_FACTORY = "kaizen.serving.app:create_app"
TOKEN_VARIABLE = "KAIZEN_PREDICTION_API_TOKEN"


def require_token(settings: Settings) -> str:
    """The configured token (`kaizen.asgi`'s rules), or one line saying why the API will not
    start without one."""
    return checked_token(settings.prediction_api_token, TOKEN_VARIABLE, "prediction API")


def served_projects(settings: Settings) -> list[str]:
    """The projects the API serves: `serve_projects`, else every project of the install."""
    from kaizen.project.locate import project_names

    known = project_names(settings.projects_dir)
    names = list(dict.fromkeys(settings.serve_projects)) or known
    if not names:
        raise ConfigError(
            f"no project under {settings.projects_dir} to serve: create one with `kaizen init NAME`"
        )
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"KAIZEN_SERVE_PROJECTS names {unknown}, which are not projects under "
            f"{settings.projects_dir} (known: {', '.join(known) or 'none'})"
        )
    return names


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
    names = served_projects(settings)
    for name in names:
        project = settings.for_project(name)
        if not (project.feast_repo / "feature_store.yaml").is_file():
            raise ConfigError(f"{name}: no Feast repo at {project.feast_repo} (KAIZEN_FEAST_REPO)")
        try:  # fail here, in one line, when a registry is not applied
            open_store(project)
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None
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
            "prediction API on http://%s:%d with %d worker(s) for %s (bearer token from %s)",
            host,
            port,
            workers,
            ", ".join(f"/{n}" for n in names),
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
