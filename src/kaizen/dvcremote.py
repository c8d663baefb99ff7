"""DVC's remotes for this profile: where pushed data goes, and where the lake is.

`.dvc/config` (committed) names the storage remotes `local` (a directory, the default) and
`s3`, and the remote `lake`: `data/lake`, the `local` profile's lake, which `dvc.yaml`'s
stages read as `remote://lake/...`. `configure` (`kaizen dvc-remote`, and every `repro`
first) writes this profile's choices to `.dvc/config.local` (git-ignored, mode 600): the
default remote, S3's endpoint and credentials from the settings, and `lake` pointed at
KAIZEN_LAKE_ROOT when that is not `data/lake` (an S3 prefix in `stack`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaizen.config import Settings
from kaizen.errors import ConfigError

LAKE = "lake"


def _s3_credentials(settings: Settings) -> dict[str, str]:
    if not (
        settings.s3_endpoint_url and settings.s3_access_key_id and settings.s3_secret_access_key
    ):
        raise ConfigError(
            "the stack profile's DVC remote needs KAIZEN_S3_ENDPOINT_URL, KAIZEN_S3_ACCESS_KEY_ID and KAIZEN_S3_SECRET_ACCESS_KEY"
        )
    return {
        "endpointurl": settings.s3_endpoint_url,
        "access_key_id": settings.s3_access_key_id.get_secret_value(),
        "secret_access_key": settings.s3_secret_access_key.get_secret_value(),
    }


def _lake_remote(settings: Settings) -> dict[str, Any] | None:
    """The `lake` remote's local override, or None when the committed `data/lake` is right."""
    root = settings.lake_root.rstrip("/")
    if root.startswith(("s3://", "s3a://")):
        return {"url": "s3://" + root.split("://", 1)[1], **_s3_credentials(settings)}
    if "://" in root:
        raise ConfigError(f"DVC cannot read the lake at {root}: use a local path or s3://")
    if Path(root).resolve() == (settings.home / "data" / "lake").resolve():
        return None
    return {"url": str(Path(root).resolve())}


def configure(settings: Settings) -> str:
    """Point DVC at this profile's remote and lake; returns the default remote's name."""
    home = settings.home
    # Through DVC's own config API, not `dvc remote modify`: a secret on a command line is
    # visible to every user of the machine, and one starting with "-" reads as an option.
    from dvc.config import Config

    name = "local" if settings.profile == "local" else "s3"
    s3 = _s3_credentials(settings) if name == "s3" else None
    lake = _lake_remote(settings)
    path = home / ".dvc" / "config.local"
    if not path.exists():  # created private: it may hold the S3 secret
        path.touch(mode=0o600)
    config = Config(dvc_dir=str(home / ".dvc"))
    with config.edit("local") as local:
        if s3 is not None:
            local["remote"].setdefault("s3", {}).update(s3)
        if lake is None:
            local["remote"].pop(LAKE, None)
        else:
            local["remote"][LAKE] = lake
        local["core"]["remote"] = name
    path.chmod(0o600)  # DVC may have rewritten it with the default mode
    return name
