"""The load gate end to end: a temporary API serving one registered version, driven by the
locust scenario as a subprocess; and the pure parts (cores, CSV figures, the check)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_production_gate import _errors, _logged, _version, _world
from test_serving import World, world  # noqa: F401  (the module-scoped registered versions)

from kaizen.loadtest.runner import CoreSplit, LoadResult, breaches, read_stats, split_cores
from kaizen.loadtest.target import pinned_api, settings_env
from kaizen.loadtest.traffic import recent_bodies
from kaizen.params import load_params
from kaizen.promotion import load_gate
from kaizen.promotion.production import judge, paired_evidence
from kaizen.runtime import Runtime

REPO = Path(__file__).resolve().parents[2]


def _load_params(rt: Runtime, **update: object) -> Runtime:
    p = rt.params
    load = p.promote.load_test.model_copy(update=update)
    rt.__dict__["params"] = p.model_copy(
        update={"promote": p.promote.model_copy(update={"load_test": load})}
    )
    return rt


def test_the_challenger_is_load_tested_and_a_breached_budget_is_not_promoted(
    world: World,  # noqa: F811
) -> None:
    rt = world.runtime(world.small.root / "lake")
    world.aliases(rt, world.versions[0], world.versions[1])
    _load_params(rt, users=2, spawn_rate=2, duration_seconds=3, p99_ms=0.001, sample_requests=50)
    bodies = recent_bodies(rt, 50, rt.params.promote.load_test.seed)
    assert bodies and set(bodies[0]) == {"customer_id", "requested_amount"}
    assert len({json.dumps(b, sort_keys=True) for b in bodies}) == len(bodies)
    figures = load_gate.run(rt, world.versions[1])
    assert "error" not in figures, figures
    assert figures["requests"] > 10 and figures["failures"] == 0, figures
    assert figures["p99_ms"] >= figures["p50_ms"] > 0
    sampled = figures.get("sample_requests", figures.get("customers"))  # the gate's key for it
    assert figures["users"] == 2 and sampled == len(bodies)

    failed = load_gate.check(figures, rt.params.promote.load_test)
    assert not failed.passed
    assert f"/predict p99 {figures['p99_ms']:.0f} ms > budget 0.001 ms" in failed.detail
    generous = rt.params.promote.load_test.model_copy(update={"p99_ms": 1e6})
    assert load_gate.check(figures, generous).passed

    # Everything else passes, so the load test alone decides: not promoted.
    promote = load_params(REPO / "projects" / "credit_risk" / "params.yaml").promote
    p = promote.model_copy(
        update={
            "non_inferiority": promote.non_inferiority.model_copy(
                update={"bootstrap_samples": 200}
            ),
            "load_test": rt.params.promote.load_test,
        }
    )
    champion, challenger = _version("1", (3.0, 0.0)), _version("2", (3.05, 0.0))
    predictions, labels = _world()
    log = _logged(predictions, champion, "served", "champion")
    evidence, _ = paired_evidence(log, labels, champion, challenger, "invoice_id")
    assert judge(evidence, _errors(), p, baked=True, expired=False)[0] == "promote"
    verdict, found = judge(evidence, _errors(), p, baked=True, expired=False, load=figures)
    assert verdict == "demote"
    assert [c.name for c in found if not c.passed] == ["load_test"]
    print(
        f"\nload gate: {LoadResult(**{k: figures[k] for k in LoadResult.__dataclass_fields__}).summary()}"
    )


def test_a_version_that_cannot_be_served_fails_the_gate(world: World) -> None:  # noqa: F811
    rt = world.runtime(world.small.root / "lake")
    _load_params(rt, duration_seconds=1, sample_requests=10, startup_timeout_seconds=90)
    figures = load_gate.run(rt, "999")
    assert "error" in figures and "load-test API exited" in figures["error"], figures
    assert not load_gate.check(figures, rt.params.promote.load_test).passed


def test_a_disabled_load_test_is_skipped_and_says_so(world: World) -> None:  # noqa: F811
    rt = _load_params(world.runtime(world.small.root / "lake"), enabled=False)
    figures = load_gate.run(rt, world.versions[1])
    check = load_gate.check(figures, rt.params.promote.load_test)
    assert check.passed and "enabled is false" in check.detail


def test_kaizen_loadtest_prints_the_figures_and_fails_over_budget(
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`make loadtest`'s command against a running API, with a budget no server can meet."""
    lake = world.small.root / "lake"
    rt = world.runtime(lake)
    params = yaml.safe_load((REPO / "projects" / "credit_risk" / "params.yaml").read_text())
    params["promote"]["load_test"].update(p99_ms=0.001, sample_requests=50)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    cores = split_cores()
    with pinned_api(rt.settings, world.versions[0], cores.server, 90) as (url, token):
        env = {
            **os.environ,
            **settings_env(rt.settings),
            "KAIZEN_PARAMS_FILE": str(params_file),
            "KAIZEN_PREDICTION_API_PORT": url.rsplit(":", 1)[1],
            "KAIZEN_PREDICTION_API_TOKEN": token,
        }
        kaizen = Path(sys.executable).with_name("kaizen")
        command = [str(kaizen), "loadtest", "--users", "2", "--duration", "3"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "/predict p50 " in done.stdout and "req/s; errors 0/" in done.stdout, done.stdout
    assert "2 users for 3s; locust on CPU" in done.stdout
    assert "load test over budget: /predict p99 " in done.stderr
    assert "> budget 0.001 ms" in done.stderr and token not in done.stdout + done.stderr
    print("\n" + done.stdout.strip())


def test_cores_are_split_between_server_and_locust() -> None:
    assert split_cores({0, 1}) == CoreSplit((0,), (1,))
    assert split_cores({0, 1}).pinned
    assert split_cores({2, 3, 5, 7}) == CoreSplit((2, 3), (5, 7))
    one = split_cores({3})
    assert not one.pinned and "no pinning" in one.describe()


def _stats(tmp_path: Path, rows: list[dict[str, str]], failures: list[dict[str, str]]) -> Path:
    prefix = tmp_path / "run"
    for name, data in (("stats", rows), ("failures", failures)):
        with open(f"{prefix}_{name}.csv", "w", newline="") as f:
            if data:
                writer = csv.DictWriter(f, fieldnames=list(data[0]))
                writer.writeheader()
                writer.writerows(data)
    return prefix


def test_locust_figures_are_read_and_judged(tmp_path: Path) -> None:
    def row(kind: str, name: str, count: str, failed: str, p50: str, p99: str) -> dict[str, str]:
        return {
            "Type": kind,
            "Name": name,
            "Request Count": count,
            "Failure Count": failed,
            "Requests/s": "12.5",
            "50%": p50,
            "99%": p99,
        }

    prefix = _stats(
        tmp_path,
        [
            row("GET", "/health", "5", "0", "2", "3"),
            row("POST", "/credit_risk/predict", "95", "2", "40", "310"),
            row("", "Aggregated", "100", "2", "38", "300"),
        ],
        [{"Method": "POST", "Name": "/credit_risk/predict", "Error": "503: features unavailable"}],
    )
    total, predict, first = read_stats(prefix, "/credit_risk/predict")
    assert total["Request Count"] == "100" and predict is not None and predict["99%"] == "310"
    assert first == "POST /credit_risk/predict: 503: features unavailable"
    result = LoadResult(100, 2, 40.0, 310.0, 12.5, 4, 10, "shared", first)
    assert result.error_rate == 0.02
    problems = breaches(result, 300)
    assert problems[0] == "/predict p99 310 ms > budget 300 ms"
    assert "2 of 100 requests failed" in problems[1]
    clean = LoadResult(100, 0, 40.0, 310.0, 12.5, 4, 10, "shared", None)
    assert breaches(clean, 310) == []


def test_params_require_the_section_and_old_records_replay_without_it(tmp_path: Path) -> None:
    from kaizen.errors import ConfigError
    from kaizen.params import PromoteParams

    params = yaml.safe_load((REPO / "projects" / "credit_risk" / "params.yaml").read_text())
    del params["promote"]["load_test"]
    missing = tmp_path / "params.yaml"
    missing.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="load_test"):
        load_params(missing)
    old = PromoteParams.from_record(params["promote"])  # a decision recorded before the gate
    assert old.load_test is None
    assert not load_gate.check({"requests": 1}, old.load_test).passed
