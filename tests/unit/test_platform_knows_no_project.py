"""The platform knows no project: src/kaizen names no example's domain, and has no cycles."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from support import REPO

SRC = REPO / "src" / "kaizen"
# The worked examples' domain: entities, keys, views, labels and request fields.
DOMAIN = re.compile(
    r"customer|invoice|late[ _-]?(payment|rate|count|ratio|payer)|p\(late\)|paid 30"
    r"|requested[ _]amount|credit[ _]risk|furniture|income_band|tenure_days"
    r"|user_profile|user_engagement|activity_id|\bchurn",
    re.IGNORECASE,
)


def _files() -> list[Path]:
    return sorted(
        p
        for p in SRC.rglob("*")
        if p.is_file() and p.suffix in (".py", ".yaml", ".json", ".md", ".html", ".txt")
    )


def test_the_platform_names_no_projects_domain() -> None:
    found = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}"
        for path in _files()
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if DOMAIN.search(line)
    ]
    assert not found, "src/kaizen names a project's domain:\n" + "\n".join(found)


def _imports(path: Path) -> set[str]:
    """Modules under kaizen this file imports (at any depth, lazily or not)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("kaizen"):
                out.add(node.module)
                out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("kaizen"))
    return out


def _modules() -> dict[str, set[str]]:
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = _imports(path)
    return {m: {i for i in deps if i in modules and i != m} for m, deps in modules.items()}


def test_no_import_cycles_between_modules() -> None:
    graph = _modules()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_serving_does_not_import_promotion() -> None:
    graph = _modules()
    bad = sorted(
        f"{m} -> {d}"
        for m, deps in graph.items()
        if m.startswith("kaizen.serving")
        for d in deps
        if d.startswith("kaizen.promotion")
    )
    assert not bad, bad
