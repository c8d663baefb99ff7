"""A temporary prediction API that serves exactly one model version, for the load gate.

`pinned_api()` starts `python -m kaizen.loadtest.target VERSION` on a free loopback port with
a generated token; the child serves the settings' project alone, under `/<project>`, with
VERSION as its only model whatever the aliases say, and
writes its prediction log to a throwaway lake, so load-test requests never become live
evidence. The child gets the parent's settings through KAIZEN_* variables.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
from pydantic import SecretStr

from kaizen.config import Settings
from kaizen.errors import KaizenError
from kaizen.logs import get_logger
from kaizen.seaweed import free_port

log = get_logger(__name__)
STOP_TIMEOUT_S = 15


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as the KAIZEN_* variables that rebuild it in a child process."""
    env = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, list | dict):  # pydantic-settings reads these as JSON
            value = json.dumps(value)
        env[f"KAIZEN_{name.upper()}"] = str(value)
    return env


@contextmanager
def pinned_api(
    settings: Settings, version: str, cores: tuple[int, ...], startup_timeout_s: float
) -> Iterator[tuple[str, str]]:
    """(url, token) of a running API serving `version` of the settings' project only (its
    routes under /<project>); stopped on exit."""
    from kaizen.loadtest.runner import pinned

    token = secrets.token_urlsafe(32)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="kaizen-load-gate-") as tmp:
        env = {
            **os.environ,
            **settings_env(settings),
            "KAIZEN_LAKE_ROOT": str(Path(tmp) / "lake"),
            "KAIZEN_PREDICTION_API_HOST": "127.0.0.1",
            "KAIZEN_PREDICTION_API_PORT": str(port),
            "KAIZEN_PREDICTION_API_TOKEN": token,
            "OMP_NUM_THREADS": "1",
        }
        command = [sys.executable, "-m", "kaizen.loadtest.target", version]
        with open(Path(tmp) / "server.log", "w+") as out:
            proc = subprocess.Popen(
                pinned(command, cores), env=env, stdout=out, stderr=subprocess.STDOUT
            )
            try:
                _wait_healthy(proc, url, startup_timeout_s, out)
                yield url, token
            finally:
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float, out: IO[str]) -> None:
    """Until GET /health is 200 (the version is loaded); one line why when it never is."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=2, trust_env=False) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out.seek(0)
                lines = [line for line in out.read().splitlines() if line.strip()]
                raise KaizenError(
                    f"the load-test API exited with {proc.returncode}: "
                    f"{lines[-1] if lines else 'no output'}"
                )
            try:
                if http.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    raise KaizenError(f"the load-test API did not become healthy within {timeout_s:g}s")


def serve_version(version: str) -> None:
    """Serve `version` as the only model of the settings' project on their host, port and
    token."""
    import uvicorn

    from kaizen.config import get_settings
    from kaizen.logs import configure_logging
    from kaizen.runtime import Runtime
    from kaizen.serving.app import build_app, build_predictor
    from kaizen.serving.server import require_token

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    token = require_token(settings)
    rt = Runtime(settings)
    champion = rt.params.promote.champion_alias
    predictor = build_predictor(rt, resolve=lambda alias: version if alias == champion else None)
    predictor.refresher.refresh()  # loaded before /health says ok
    config = uvicorn.Config(
        build_app(predictor, token),
        host=settings.prediction_api_host,
        port=settings.prediction_api_port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    uvicorn.Server(config).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="the registered model version to serve")
    args = parser.parse_args()
    try:
        serve_version(args.version)
    except KaizenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
