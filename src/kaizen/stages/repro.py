"""`repro`: run the project's DVC training pipeline (`dvc repro`), as a scheduler would.

The pipeline is the project's own `projects/<name>/dvc.yaml`, in the install's one DVC repo
(`.dvc/` at its root): `dvc repro` runs in the project's folder, so its stages' paths, its
`params.yaml` and its `dvc.lock` are the project's. The child sees these settings
(`Settings.as_environ`: the home, the project and every setting given explicitly), so its
`kaizen -p <name> ...` stages resolve the same stores as the caller. DVC's own lock
serialises runs (`--wait-for-lock`: a second run waits instead of failing); the Airflow run
that asked is passed down so the registered version's manifest names it. DVC's remotes are
pointed at this profile's storage and the project's lake first (`kaizen.dvcremote`): the
stages' lake inputs are `remote://<name>_lake/...`, an S3 prefix in the `stack` profile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kaizen.errors import ConfigError, KaizenError
from kaizen.logs import get_logger
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed

log = get_logger(__name__)
PIPELINE = "dvc.yaml"
REGISTERED = Path("data/registered.json")  # register's output, inside the project's folder


def repro(rt: Runtime | None = None, airflow_run: str = "", trigger: str = "") -> StageResult:
    """`dvc repro` of the project's pipeline; `trigger` (why it trains) is recorded on the
    version it registers."""
    rt = rt or Runtime()
    folder = rt.settings.require_project()
    pipeline = folder / PIPELINE
    if not pipeline.is_file():
        raise ConfigError(f"project {folder.name}: no {PIPELINE} in {folder}")
    registered_file = folder / REGISTERED
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        **rt.settings.as_environ(),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if airflow_run:
        env["KAIZEN_AIRFLOW_RUN"] = airflow_run
    if trigger:
        from kaizen.model.manifest import TRIGGER_ENV

        env[TRIGGER_ENV] = trigger
    result = StageResult("repro", str(pipeline))
    with timed(result, log, rt):
        from kaizen.dvcremote import configure

        configure(rt.settings)
        before = registered_file.read_text() if registered_file.exists() else ""
        proc = subprocess.Popen(
            [str(Path(bin_dir) / "dvc"), "--wait-for-lock", "repro", PIPELINE],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        tail: list[str] = []
        for line in proc.stdout or ():  # stream: a long training shows its progress as it goes
            log.info("dvc: %s", line.rstrip())
            tail = [*tail[-19:], line.rstrip()]
        if proc.wait() != 0:
            last = next(
                (t for t in reversed(tail) if t.startswith(("ERROR", "error:"))),
                tail[-1] if tail else "",
            )
            raise KaizenError(f"dvc repro of {folder.name} failed (exit {proc.returncode}): {last}")
        now = registered_file.read_text() if registered_file.exists() else ""
        registered = json.loads(now) if now else {}
        result.details = {**registered, "new_version": now != before}
        result.output = registered.get("model_uri", "")
        log.info(
            "dvc repro of %s done: %s",
            folder.name,
            "registered " + result.output
            if result.details["new_version"]
            else "nothing changed, no new version",
        )
    return result
