"""`kaizen init NAME`: a new project folder from the template shipped with the platform.

The template (kaizen/templates/project) is a small, complete project: an `account` entity
keyed by a string `account_id`, sources `accounts` and `events`, the views `account_profile`
and `account_activity`, and the label "no event in the next 7 days". Every path and file
says `__name__` where the project's name goes. After copying, the GX suites are compiled
from the declaration and rules, and the project's DVC lake remote is added to .dvc/config.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from kaizen.errors import ConfigError, InputError

PLACEHOLDER = "__name__"
# Files DVC or Airflow would pick up inside the platform's package (a `dvc.yaml` anywhere in
# the repo is a pipeline) carry this suffix in the template and lose it when copied.
TEMPLATE_SUFFIX = ".tmpl"
NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
RESERVED = {"kaizen", "tests", "src", "test", "support"}  # would shadow an import
_SKIP = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def template_dir() -> Path:
    return Path(str(resources.files("kaizen") / "templates" / "project"))


def check_name(name: str, projects_dir: Path) -> None:
    """A lower_snake_case name that is a valid Python package and not yet a project."""
    if not NAME.fullmatch(name or "") or len(name) > 40:
        raise InputError(
            f"project name {name!r}: use lower_snake_case (a-z, 0-9, _; a letter first, "
            "at most 40 characters)"
        )
    if name in RESERVED:
        raise InputError(f"project name {name!r} is reserved: pick another")
    if (projects_dir / name).exists():
        raise ConfigError(f"project {name!r} already exists at {projects_dir / name}")


def _copy(src: Path, dst: Path, name: str) -> list[Path]:
    written = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if _SKIP & set(rel.parts) or path.suffix == ".pyc":
            continue
        target = dst / str(rel).replace(PLACEHOLDER, name).removesuffix(TEMPLATE_SUFFIX)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            shutil.copyfile(path, target)
        else:
            target.write_text(text.replace(PLACEHOLDER, name), encoding="utf-8")
        written.append(target)
    return written


def tidy(folder: Path) -> None:
    """Sort imports and format with ruff when it is installed: where the new name sorts
    among the imports depends on the name. Best effort: without ruff the code is the same."""
    if importlib.util.find_spec("ruff") is None:
        return
    for args in (["check", "--select", "I", "--fix", "--quiet"], ["format", "--quiet"]):
        subprocess.run(
            [sys.executable, "-m", "ruff", *args, "."],
            cwd=folder,
            check=False,
            capture_output=True,
            timeout=60,
        )


def add_lake_remote(name: str, folder: Path, home: Path) -> bool:
    """Name the project's lake (`<name>_lake`, its local `data/lake`) in `home/.dvc/config`
    when that file exists and does not name it yet; True when it was added."""
    from kaizen.dvcremote import lake_remote

    config = home / ".dvc" / "config"
    if not config.is_file():
        return False
    remote = lake_remote(name)
    text = config.read_text(encoding="utf-8")
    if f"['remote \"{remote}\"']" in text or f'[remote "{remote}"]' in text:
        return False
    url = Path(os.path.relpath(folder / "data" / "lake", config.parent)).as_posix()
    if not text.endswith("\n"):
        text += "\n"
    config.write_text(text + f"['remote \"{remote}\"']\n    url = {url}\n", encoding="utf-8")
    return True


def scaffold(name: str, projects_dir: Path, *, home: Path | None = None) -> Path:
    """Create `projects_dir/name` from the template, compile its GX suites and add its DVC
    lake remote; returns the new folder. A bad or taken name is one line, nothing written."""
    from kaizen.config import get_settings
    from kaizen.quality.suites import build
    from kaizen.runtime import Runtime

    projects_dir = Path(projects_dir).resolve()
    check_name(name, projects_dir)
    template = template_dir()
    if not (template / "kaizen.yaml").is_file():
        raise ConfigError(f"the project template is missing at {template}: reinstall kaizen")
    folder = projects_dir / name
    projects_dir.mkdir(parents=True, exist_ok=True)
    try:
        _copy(template, folder, name)
        tidy(folder)
        rt = Runtime(get_settings().for_project(str(folder)))
        build(rt.settings, rt.catalog)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    add_lake_remote(name, folder, home or projects_dir.parent)
    return folder
