"""The platform as a user runs it: DataOps, train and promote through the real DAGs, then a
prediction on the online features, in the `local` profile (and `stack` with its services).

Each profile runs in a fresh clone of the working tree (the train DAG runs `dvc repro` in
KAIZEN_HOME) and in a clean child process, so Airflow, MLflow and Feast read their stores
from this run's settings only. The history before the tested window is prepared by the same
stages the DAG runs, called directly; the last days of DataOps go through `dataops_daily`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import clone_working_tree

# The smallest world that trains and promotes: terms 0, so an invoice's label is final 30
# days after it is issued; 45 days leave 15 labelled days (5 of them the holdout).
DAYS = 45
CUSTOMERS = 2000
DAG_DAYS = 2  # the last days go through dataops_daily (~8 s each, more under load)

DRIVER = textwrap.dedent("""
    import dataclasses, datetime as dt, json, os, sys
    sys.path.insert(0, sys.argv[1])  # tests/: the conftest's stage-by-stage pipeline
    from conftest import run_pipeline
    from kaizen.config import get_settings
    from kaizen.lake import Partition
    from kaizen.orchestrate import run_daily, run_once
    from kaizen.runtime import Runtime
    from kaizen.simulate import simulate
    from kaizen.transforms.views import VIEWS, as_of

    rt = Runtime(get_settings())
    world = rt.params.simulate
    dates = [(world.start + dt.timedelta(days=i)).isoformat() for i in range(world.days)]
    simulate(world, rt.settings.raw_root, storage_options=rt.settings.storage_options(rt.settings.raw_root))
    dag_days = int(sys.argv[2])
    run_pipeline(rt, dates[:-dag_days])
    dataops = run_daily("dataops_daily", dates[-dag_days:], rt.settings)
    train = run_once("train", rt.settings, conf={"force": True})
    promote = run_once("promote", rt.settings) if train.ok else None
    pushed = None
    if rt.settings.profile == "stack" and train.ok:  # the trained outputs to the S3 DVC remote
        import subprocess
        from kaizen.dvcremote import configure
        configure(rt.settings)
        dvc = os.path.join(os.path.dirname(sys.executable), "dvc")
        proc = subprocess.run([dvc, "push"], cwd=rt.settings.home, capture_output=True, text=True)
        pushed = (proc.returncode, proc.stdout[-300:] + proc.stderr[-300:])

    from kaizen.promotion.models import by_alias
    from kaizen.serving.app import build_predictor
    from kaizen.serving.schemas import PredictRequest

    champion = by_alias(rt, "champion")
    asked_at = as_of(dates[-1]).to_pydatetime()
    answer = None
    if champion is not None:
        predictor = build_predictor(rt, clock=lambda: asked_at)
        predictor.refresher.refresh()
        [answer] = predictor.predict([PredictRequest(customer_id=1, requested_amount=900.0)])
        predictor.log.flush()
    manifests = {
        f"{layer}/{source}/{ds}": rt.lake.manifest(Partition(layer, source, ds))
        for ds in dates[-dag_days:]
        for layer, source in [("silver", s) for s in rt.catalog.names] + [("features", v) for v in VIEWS]
    }
    print("E2E " + json.dumps({
        "dataops": [(o.ds, o.state, o.failed_tasks, o.seconds) for o in dataops],
        "train": (train.state, train.failed_tasks, train.seconds),
        "promote": promote and (promote.state, promote.failed_tasks, promote.seconds),
        "champion": champion,
        "answer": answer and dataclasses.asdict(answer),
        "manifests": manifests,
        "pushed": pushed,
        "online_store": rt.settings.feast_online_store,
        "engine": rt.settings.engine,
    }, default=str))
""")


def _clone(tmp_path: Path) -> Path:
    """A clone of the working tree with the small world in its params.yaml."""
    clone = tmp_path / "clone"
    clone_working_tree(clone)
    import yaml

    params_file = clone / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["simulate"].update({"days": DAYS, "customers": CUSTOMERS, "terms_days": 0, "seed": 21})
    params["evaluate"]["holdout_days"] = 5
    # The staging gate's in-process latency budget measures this machine's load, not the
    # flow under test (CI runners are shared); the budget gate has its own tests.
    params["promote"]["budget"]["latency_p99_ms"] = 5000
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    return clone


def _clean_env(clone: Path, tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAIZEN_", "AIRFLOW", "MLFLOW_", "FEAST_", "AWS_"))
    }
    env.update(
        {
            "KAIZEN_HOME": str(clone),
            "KAIZEN_AIRFLOW_HOME": str(tmp_path / "airflow"),
            "KAIZEN_GX_DATA_DOCS": "failures",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        }
    )
    return env


def _drive(clone: Path, env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(clone / "tests"), str(DAG_DAYS)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("E2E "))
    return json.loads(line[4:])


def _assert_flow(result: dict) -> None:
    assert [(ds, state, failed) for ds, state, failed, _ in result["dataops"]] == [
        (ds, "success", []) for ds, *_ in result["dataops"]
    ]
    # Every DAG-run day landed validated silver for every source and published features.
    assert result["manifests"] and all(
        m and m.get("rows", 0) > 0 for m in result["manifests"].values()
    )
    assert result["train"][:2] == ["success", []], result["train"]
    assert result["promote"][:2] == ["success", []], result["promote"]
    assert result["champion"] is not None  # a registered version is @champion
    answer = result["answer"]
    assert answer is not None and 0 < answer["probability"] < 1
    assert answer["fresh"] is True and answer["alias"] == "champion", answer
    assert answer["model_version"] == result["champion"]


@pytest.mark.slow
@pytest.mark.airflow
def test_local_profile_end_to_end(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    env = _clean_env(clone, tmp_path)
    started = time.perf_counter()
    result = _drive(clone, env)
    print(
        f"local e2e: {time.perf_counter() - started:.0f}s",
        json.dumps({k: v for k, v in result.items() if k != "manifests"}),
    )
    _assert_flow(result)
