"""The DVC remote for this profile: a local directory (`local`), S3 (`stack`).

`.dvc/config` names both remotes and defaults to the local one. For S3 the endpoint and
credentials come from the settings and go into `.dvc/config.local` (never committed), and
the default remote switches to `s3`: `kaizen dvc-remote` writes it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kaizen.config import Settings
from kaizen.errors import ConfigError


def _dvc(home: Path, *args: str) -> None:
    dvc = str(Path(sys.executable).with_name("dvc"))
    proc = subprocess.run([dvc, *args], cwd=home, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(
            f"dvc {' '.join(args[:3])} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1]}"
        )


def configure(settings: Settings) -> str:
    """Point DVC at this profile's remote; returns the remote's name."""
    home = settings.home
    if settings.profile == "local":
        _dvc(home, "remote", "default", "--local", "local")
        return "local"
    if not (
        settings.s3_endpoint_url and settings.s3_access_key_id and settings.s3_secret_access_key
    ):
        raise ConfigError(
            "the stack profile's DVC remote needs KAIZEN_S3_ENDPOINT_URL, KAIZEN_S3_ACCESS_KEY_ID and KAIZEN_S3_SECRET_ACCESS_KEY"
        )
    # Through DVC's own config API, not `dvc remote modify`: a secret on a command line is
    # visible to every user of the machine, and one starting with "-" reads as an option.
    from dvc.config import Config

    config = Config(dvc_dir=str(home / ".dvc"))
    with config.edit("local") as local:
        remote = local["remote"].setdefault("s3", {})
        remote["endpointurl"] = settings.s3_endpoint_url
        remote["access_key_id"] = settings.s3_access_key_id.get_secret_value()
        remote["secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
        local["core"]["remote"] = "s3"
    (home / ".dvc" / "config.local").chmod(0o600)  # it holds the S3 secret
    return "s3"
