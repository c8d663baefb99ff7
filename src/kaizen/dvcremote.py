"""DVC's remotes for this profile: where pushed data goes, and where each project's lake is.

The install has one DVC repo (`.dvc/` at its root) and a pipeline per project
(`projects/<name>/dvc.yaml`). `.dvc/config` (committed) names the storage remotes `local` (a
directory, the default) and `s3`, shared by every project (DVC's cache is content-addressed),
and per project the remote `<name>_lake` (`lake_remote(name)`): its `local` profile lake,
`projects/<name>/data/lake`, which the project's stages read as `remote://<name>_lake/...`.
`configure` (`kaizen -p <name> dvc-remote`, and every `repro` first) writes this profile's
choices to `.dvc/config.local` (git-ignored, mode 600): the default remote, S3's endpoint and
credentials from the settings, and the selected project's `<name>_lake` pointed at its
KAIZEN_LAKE_ROOT when the committed URL is not that (an S3 prefix in `stack`; any path for a
project `.dvc/config` does not name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaizen.config import Settings
from kaizen.errors import ConfigError


def lake_remote(project: str) -> str:
    """The DVC remote a project's dvc.yaml reads its lake inputs through."""
    return f"{project}_lake"


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


def _lake_remote(settings: Settings, committed: str | None) -> dict[str, Any] | None:
    """The project's lake remote's local override, or None when the committed URL (already
    absolute, as DVC loads it) is the project's lake root."""
    root = settings.lake_root.rstrip("/")
    if root.startswith(("s3://", "s3a://")):
        return {"url": "s3://" + root.split("://", 1)[1], **_s3_credentials(settings)}
    if "://" in root:
        raise ConfigError(f"DVC cannot read the lake at {root}: use a local path or s3://")
    if committed and "://" not in committed and Path(committed).resolve() == Path(root).resolve():
        return None
    return {"url": str(Path(root).resolve())}


def configure(settings: Settings) -> str:
    """Point DVC at this profile's remote and the selected project's lake; returns the
    default remote's name."""
    home = settings.home
    project = settings.require_project().name
    # Through DVC's own config API, not `dvc remote modify`: a secret on a command line is
    # visible to every user of the machine, and one starting with "-" reads as an option.
    from dvc.config import Config

    name = "local" if settings.profile == "local" else "s3"
    s3 = _s3_credentials(settings) if name == "s3" else None
    remote = lake_remote(project)
    path = home / ".dvc" / "config.local"
    if not path.exists():  # created private: it may hold the S3 secret
        path.touch(mode=0o600)
    config = Config(dvc_dir=str(home / ".dvc"))
    committed = config.load_one("repo")["remote"].get(remote, {}).get("url")
    lake = _lake_remote(settings, committed)
    with config.edit("local") as local:
        if s3 is not None:
            local["remote"].setdefault("s3", {}).update(s3)
        if lake is None:
            local["remote"].pop(remote, None)
        else:
            local["remote"][remote] = lake
        local["core"]["remote"] = name
    path.chmod(0o600)  # DVC may have rewritten it with the default mode
    return name
