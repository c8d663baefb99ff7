"""`.github/workflows/ci.yml` against `.ci/run`, by parsing both: a fork's CI runs the same
make targets, with the services the tests need. Each check returns the problems it finds, so
the last test can show a drifted workflow is caught, not only that today's passes."""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaizen.config import Settings

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
CI_RUN = REPO / ".ci" / "run"


def make_targets(script: str) -> list[str]:
    """The make targets a shell script runs, in order."""
    targets = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["make"]:
            targets += [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return targets


def _job(workflow: dict[str, Any]) -> dict[str, Any]:
    (job,) = workflow["jobs"].values()
    return job


def workflow_targets(workflow: dict[str, Any]) -> list[str]:
    return [t for step in _job(workflow)["steps"] for t in make_targets(step.get("run", ""))]


def target_problems(workflow: dict[str, Any], ci_run: str) -> list[str]:
    """The workflow must run install, then every target `.ci/run` runs, in its order."""
    expected = ["install", *[t for t in make_targets(ci_run) if t != "install"]]
    found = workflow_targets(workflow)
    return [] if found == expected else [f"make targets {found} != .ci/run's {expected}"]


def _host_port(url: str) -> tuple[str, int]:
    host, port = re.search(r"@?([\w.]+):(\d+)", url).groups()  # type: ignore[union-attr]
    return host, int(port)


def service_problems(workflow: dict[str, Any]) -> list[str]:
    """PostgreSQL and Redis published on loopback at the ports the tests use (Settings'
    defaults, which tests/conftest.py probes), healthy before the steps run, no password."""
    settings = Settings(_env_file=None)
    wanted = {
        "postgres": _host_port(settings.postgres_url),
        "redis": _host_port(settings.redis_connection),
    }
    services = _job(workflow).get("services", {})
    problems = []
    for name, (host, port) in wanted.items():
        service = services.get(name)
        if service is None:
            problems.append(f"no {name} service")
            continue
        if f"{host}:{port}:{port}" not in service.get("ports", []):
            problems.append(f"{name} is not published on {host}:{port}")
        if "--health-cmd" not in service.get("options", ""):
            problems.append(f"{name} has no health check: steps could start before it answers")
        if any("PASSWORD" in key for key in service.get("env", {})):
            problems.append(f"{name} has a password written in the workflow")
    return problems


def job_problems(workflow: dict[str, Any]) -> list[str]:
    job = _job(workflow)
    steps = job["steps"]
    problems = []
    if str(job.get("env", {}).get("CI")).lower() != "true":
        problems.append("CI is not true: missing services would skip tests instead of failing")
    if not job.get("timeout-minutes"):
        problems.append("no timeout-minutes")
    pythons = [s["with"]["python-version"] for s in steps if "setup-python" in s.get("uses", "")]
    if pythons != ["3.11"]:
        problems.append(f"python {pythons}, not 3.11")
    caches = [s for s in steps if s.get("uses", "").startswith("actions/cache")]
    if not caches or "uv" not in caches[0]["with"]["path"]:
        problems.append("uv's download cache is not cached")
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    if not uploads or uploads[0].get("if") != "failure()":
        problems.append("test artifacts are not uploaded on failure")
    elif "test-artifacts" not in uploads[0]["with"]["path"]:
        problems.append("the upload misses test-artifacts/")
    return problems


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def test_the_workflow_runs_what_ci_run_runs(workflow: dict[str, Any]) -> None:
    assert make_targets(CI_RUN.read_text()) == ["lint", "test"]
    assert target_problems(workflow, CI_RUN.read_text()) == []
    assert workflow_targets(workflow) == ["install", "lint", "test"]


def test_the_workflow_declares_the_services_and_settings_the_tests_need(
    workflow: dict[str, Any],
) -> None:
    assert service_problems(workflow) == []
    assert job_problems(workflow) == []


def test_the_make_targets_exist() -> None:
    makefile = (REPO / "Makefile").read_text()
    for target in ("install", "lint", "test", "format", "all"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert re.search(r"^all: install lint test\b", makefile, re.M)


def test_a_drifted_workflow_is_caught(workflow: dict[str, Any]) -> None:
    ci_run = CI_RUN.read_text()
    no_lint = copy.deepcopy(workflow)
    _job(no_lint)["steps"] = [s for s in _job(no_lint)["steps"] if s.get("run") != "make lint"]
    assert target_problems(no_lint, ci_run)

    exposed = copy.deepcopy(workflow)
    services = _job(exposed)["services"]
    services["postgres"]["ports"] = ["5432:5432"]
    services["postgres"]["env"] = {"POSTGRES_PASSWORD": "postgres"}
    del services["redis"]
    assert service_problems(exposed) == [
        "postgres is not published on 127.0.0.1:5432",
        "postgres has a password written in the workflow",
        "no redis service",
    ]

    loose = copy.deepcopy(workflow)
    job = _job(loose)
    del job["timeout-minutes"]
    job["env"]["CI"] = "false"
    job["steps"] = [s for s in job["steps"] if "upload-artifact" not in s.get("uses", "")]
    assert len(job_problems(loose)) == 3
