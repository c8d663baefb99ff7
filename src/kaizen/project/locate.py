"""Which project a command is about: named, given by path, the one the working directory
is in, or the only one there is."""

from __future__ import annotations

from pathlib import Path

from kaizen.errors import ConfigError

DECLARATION = "kaizen.yaml"


def project_names(projects_dir: Path) -> list[str]:
    """The projects of an install: folders under `projects_dir` with a declaration."""
    if not projects_dir.is_dir():
        return []
    return sorted(p.name for p in projects_dir.iterdir() if (p / DECLARATION).is_file())


def locate(project: str | None, projects_dir: Path, home: Path) -> Path | None:
    """The project's folder; None when nothing selects one and there are several (the
    commands that need one say so through `Settings.require_project`)."""
    if project:
        candidates = [Path(project), projects_dir / project]
        if not Path(project).is_absolute():
            candidates.insert(1, home / project)
        for folder in candidates:
            if (folder / DECLARATION).is_file():
                return folder.resolve()
        known = ", ".join(project_names(projects_dir)) or "none"
        raise ConfigError(
            f"project {project!r}: no {DECLARATION} there or under {projects_dir} (known: {known})"
        )
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / DECLARATION).is_file():
            return folder
    names = project_names(projects_dir)
    return (projects_dir / names[0]).resolve() if len(names) == 1 else None
