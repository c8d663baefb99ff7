"""`repro`: run the DVC training pipeline (`dvc repro`) in the project, as a scheduler would.

DVC's own lock serialises runs (`--wait-for-lock`: a second run waits instead of failing);
the Airflow run that asked is passed down so the registered version's manifest names it.
DVC's remotes are pointed at this profile's lake and storage first (`kaizen.dvcremote`):
the stages' lake inputs are `remote://lake/...`, an S3 prefix in the `stack` profile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kaizen.errors import KaizenError
from kaizen.logs import get_logger
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed

log = get_logger(__name__)
REGISTERED = Path("data/registered.json")


def repro(rt: Runtime | None = None, airflow_run: str = "") -> StageResult:
    rt = rt or Runtime()
    home = rt.settings.home
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "KAIZEN_HOME": str(home),
    }
    if airflow_run:
        env["KAIZEN_AIRFLOW_RUN"] = airflow_run
    result = StageResult("repro", "dvc.yaml")
    with timed(result, log, rt):
        from kaizen.dvcremote import configure

        configure(rt.settings)
        before = (home / REGISTERED).read_text() if (home / REGISTERED).exists() else ""
        proc = subprocess.Popen(
            [str(Path(bin_dir) / "dvc"), "--wait-for-lock", "repro"],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        tail: list[str] = []
        for line in proc.stdout:  # stream: a long training shows its progress as it goes
            log.info("dvc: %s", line.rstrip())
            tail = [*tail[-19:], line.rstrip()]
        if proc.wait() != 0:
            last = next(
                (t for t in reversed(tail) if t.startswith(("ERROR", "error:"))),
                tail[-1] if tail else "",
            )
            raise KaizenError(f"dvc repro failed (exit {proc.returncode}): {last}")
        registered = (
            json.loads((home / REGISTERED).read_text()) if (home / REGISTERED).exists() else {}
        )
        result.details = {**registered, "new_version": (home / REGISTERED).read_text() != before}
        result.output = registered.get("model_uri", "")
        log.info(
            "dvc repro done: %s",
            "registered " + result.output
            if result.details["new_version"]
            else "nothing changed, no new version",
        )
    return result
