"""Training: the stages on the labelled world, MLflow registration with a release manifest,
`dvc repro` from a fresh clone (and through the train DAG), and the S3 DVC remote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import SecretStr
from support import clone_working_tree, make_settings

from kaizen.errors import InputError
from kaizen.featurestore.store import apply
from kaizen.model.data import LABEL, check_trainable
from kaizen.model.manifest import file_md5
from kaizen.runtime import Runtime
from kaizen.stages.evaluate import evaluate
from kaizen.stages.register import register
from kaizen.stages.train import train
from kaizen.stages.training_set import training_set

MANIFEST_KEYS = {
    "git_commit",
    "params_sha256",
    "training_set_md5",
    "training_set_rows",
    "training_set_cutoff",
    "feature_service",
    "feature_service_version",
    "gx_suites",
    "holdout",
    "holdout_window",
    "airflow_run",
}


def small_params(rt: Runtime, **evaluate: object) -> Runtime:
    """The labelled world is small: a 5-day holdout instead of the default."""
    p = rt.params
    rt.__dict__["params"] = p.model_copy(
        update={"evaluate": p.evaluate.model_copy(update={"holdout_days": 5, **evaluate})}
    )
    return rt


@pytest.fixture
def bare_rt(tmp_path: Path) -> Runtime:
    """Params and settings only, for a test that reads no lake and no store."""
    return small_params(Runtime(make_settings(tmp_path)))


@pytest.fixture
def rt(labelled_world: Path, tmp_path: Path) -> Runtime:
    shutil.copytree(labelled_world / "lake", tmp_path / "lake")
    runtime = small_params(Runtime(make_settings(tmp_path)))
    apply(runtime.settings)
    return runtime


def _train(rt: Runtime, root: Path) -> dict[str, Path]:
    paths = {
        "ts": root / "training" / "ts.parquet",
        "model": root / "model",
        "eval": root / "eval",
        "registered": root / "registered.json",
    }
    training_set(paths["ts"], rt)
    train(paths["ts"], paths["model"], rt)
    evaluate(paths["ts"], paths["model"], paths["eval"], rt)
    return paths


@pytest.fixture
def trained(rt: Runtime, tmp_path: Path) -> dict[str, Path]:
    """A model of its own, for a test that registers it (in its own MLflow store)."""
    return _train(rt, tmp_path)


@pytest.fixture(scope="module")
def trained_once(
    labelled_world: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Runtime, dict[str, Path]]:
    """One model per module for the tests that only read it or train beside it (a training
    set, a fit and an evaluation with its explanations cost tens of seconds each here). No
    test registers it: its store holds no version (test_a_single_class_... checks)."""
    root = tmp_path_factory.mktemp("trained-once")
    shutil.copytree(labelled_world / "lake", root / "lake")
    runtime = small_params(Runtime(make_settings(root)))
    apply(runtime.settings)
    return runtime, _train(runtime, root)


def test_training_window_precedes_the_holdout(
    trained_once: tuple[Runtime, dict[str, Path]],
) -> None:
    _, trained = trained_once
    info = json.loads((trained["model"] / "train.json").read_text())
    assert info["train_window"][1] < info["holdout_window"][0]  # no leakage across time
    assert info["training_set"]["md5"] == file_md5(trained["ts"])
    assert (
        "region" in info["inputs"]["categorical"] and "late_ratio_180d" in info["inputs"]["numeric"]
    )
    metrics = json.loads((trained["eval"] / "metrics.json").read_text())
    holdout = metrics["holdout"]
    assert {"roc_auc", "pr_auc", "brier", "log_loss"} <= set(holdout)
    assert 0.5 < holdout["roc_auc"] <= 1 and 0 < holdout["brier"] < 0.25
    assert set(metrics["slices"]) == {"region", "tenure_band"}
    # "missing": invoices of customers who signed up that day have no profile features yet.
    assert set(metrics["slices"]["region"]) <= {
        "north",
        "south",
        "east",
        "west",
        "central",
        "missing",
    }
    for plot in ("roc", "precision_recall", "calibration", "importance"):
        assert json.loads((trained["eval"] / "plots" / f"{plot}.json").read_text())


def test_the_same_data_and_params_give_identical_metrics(
    trained_once: tuple[Runtime, dict[str, Path]], tmp_path: Path
) -> None:
    rt, trained = trained_once
    train(trained["ts"], tmp_path / "model2", rt)
    evaluate(trained["ts"], tmp_path / "model2", tmp_path / "eval2", rt)
    assert (tmp_path / "eval2" / "metrics.json").read_text() == (
        trained["eval"] / "metrics.json"
    ).read_text()


def test_register_carries_the_release_manifest_and_loads_in_a_fresh_process(
    rt: Runtime, trained: dict[str, Path]
) -> None:
    result = register(trained["ts"], trained["model"], trained["eval"], trained["registered"], rt)
    from kaizen.model.registry import client

    version = client(rt).get_model_version("credit_risk", result.details["version"])
    tags = {
        k.removeprefix("kaizen."): v for k, v in version.tags.items() if k.startswith("kaizen.")
    }
    assert set(tags) >= MANIFEST_KEYS
    assert tags["training_set_md5"] == file_md5(trained["ts"])
    assert tags["feature_service"] == "credit_risk_v1" and tags["feature_service_version"] == "1"
    assert set(json.loads(tags["gx_suites"])) >= {"raw_orders", "features_customer_payments"}
    assert len(tags["git_commit"]) >= 40
    # The ONNX form is registered with the version, within its parity tolerance.
    assert tags["onnx"] == "onnx/model.onnx"
    metrics = client(rt).get_run(version.run_id).data.metrics
    assert 0 <= metrics["onnx_parity_max_abs_diff"] <= rt.params.register_.onnx.parity_atol
    assert metrics["onnx_predict_ms_one_row"] > 0
    assert (
        client(rt).get_model_version_by_alias("credit_risk", "candidate").version == version.version
    )
    # A fresh process loads models:/credit_risk/<v> with skops' check on, and predicts.
    script = textwrap.dedent(f"""
        import mlflow, pandas as pd
        from kaizen.model.data import model_inputs
        mlflow.set_tracking_uri({json.dumps(rt.settings.mlflow_tracking_uri or _backend(rt))})
        model = mlflow.sklearn.load_model("models:/credit_risk/{version.version}")
        frame = pd.read_parquet({str(trained["ts"])!r})
        print(model.predict_proba(frame[model_inputs(frame, ["invoice_id", "customer_id", "event_timestamp"]).all].head(4))[:, 1].round(6).tolist())
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(scores) == 4 and all(0 < s < 1 for s in scores)
    # The MLflow store was reset but DVC's run cache gave the model back: a new run registers
    # it and names the training run it came from.
    reset = rt.settings.model_copy(update={"runtime_dir": trained["model"].parent / "reset"})
    elsewhere = Runtime(reset)
    elsewhere.__dict__["params"] = rt.params
    again = register(
        trained["ts"], trained["model"], trained["eval"], trained["model"].parent / "again.json",
        elsewhere,
    )  # fmt: skip
    assert again.details["run_id"] != result.details["run_id"]
    restored = client(elsewhere).get_run(again.details["run_id"])
    assert restored.data.tags["kaizen.training_run"] == result.details["run_id"]


@pytest.mark.slow
def test_the_pyfunc_form_returns_probabilities_in_an_env_of_only_its_requirements(
    rt: Runtime, trained: dict[str, Path], tmp_path: Path
) -> None:
    """A client of MLflow's generic form: a fresh venv holding mlflow-skinny and the model's
    own requirements.txt (scikit-learn, skops, ...), no Kaizen, no project."""
    import mlflow

    from kaizen.model.data import model_inputs

    result = register(trained["ts"], trained["model"], trained["eval"], trained["registered"], rt)
    model_dir = Path(mlflow.artifacts.download_artifacts(
        f"models:/credit_risk/{result.details['version']}", dst_path=str(tmp_path / "model")
    ))  # fmt: skip
    info = mlflow.models.get_model_info(str(model_dir))
    [output] = info.signature.outputs.inputs
    assert output.shape == (-1, 2), output  # the signature says: two probabilities per row
    frame = pd.read_parquet(trained["ts"])
    inputs = frame[model_inputs(frame, ["invoice_id", "customer_id", "event_timestamp"]).all]
    inputs.head(8).to_parquet(tmp_path / "rows.parquet")
    uv, venv = Path(sys.executable).with_name("uv"), tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, venv], check=True, timeout=120)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", venv / "bin" / "python",
         "-c", Path(__file__).parents[2] / "constraints.txt",
         "-r", model_dir / "requirements.txt", "mlflow-skinny", "pyarrow"],
        check=True, timeout=600, env={**os.environ, "VIRTUAL_ENV": str(venv)},
    )  # fmt: skip
    script = textwrap.dedent(f"""
        import json, mlflow.pyfunc, pandas as pd
        model = mlflow.pyfunc.load_model({str(model_dir)!r})
        print(json.dumps(model.predict(pd.read_parquet({str(tmp_path / "rows.parquet")!r})).tolist()))
    """)
    proc = subprocess.run(
        [venv / "bin" / "python", "-c", script], capture_output=True, text=True, timeout=180,
        cwd=tmp_path, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    answered = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = mlflow.sklearn.load_model(str(model_dir)).predict_proba(inputs.head(8))
    assert len(answered) == 8 and all(abs(sum(row) - 1) < 1e-9 for row in answered)
    np.testing.assert_allclose(answered, expected, rtol=0, atol=1e-12)
    version = mlflow.MlflowClient().get_model_version("credit_risk", result.details["version"])
    assert json.loads(version.tags["kaizen.pyfunc_columns"]) == ["P(0)", "P(1)"]


def _backend(rt: Runtime) -> str:
    from kaizen.model.tracking import tracking_uri

    return tracking_uri(rt.settings)


@pytest.mark.parametrize(
    ("labels", "message"),
    [([], "is empty"), ([0] * 400, "single class"), ([0] * 40 + [1] * 5, "too small")],
)
def test_an_untrainable_set_is_one_clear_error(
    bare_rt: Runtime, labels: list[int], message: str
) -> None:
    rt = bare_rt
    frame = pd.DataFrame({LABEL: labels})
    with pytest.raises(InputError, match=message) as err:
        check_trainable(frame, rt.params.train, "the training set")
    assert "\n" not in str(err.value)


def test_a_single_class_training_set_registers_nothing(
    trained_once: tuple[Runtime, dict[str, Path]], tmp_path: Path
) -> None:
    rt, trained = trained_once
    frame = pd.read_parquet(trained["ts"])
    frame[LABEL] = 0
    bad = tmp_path / "bad" / "ts.parquet"
    bad.parent.mkdir()
    frame.to_parquet(bad)
    shutil.copy(trained["ts"].with_suffix(".json"), bad.with_suffix(".json"))
    with pytest.raises(InputError, match="single class"):
        train(bad, tmp_path / "bad-model", rt)
    assert not (tmp_path / "bad-model").exists()
    from kaizen.model.registry import latest_version

    assert latest_version(rt) is None


# -- dvc repro from a fresh clone, and through Airflow ------------------------------------------


PROJECT = Path("projects") / "credit_risk"  # inside the clone: its dvc.yaml, data/, params.yaml


def _clone(tmp_path: Path, labelled_world: Path) -> tuple[Path, dict[str, str]]:
    clone = tmp_path / "clone"
    clone_working_tree(clone)
    shutil.copytree(labelled_world / "lake", clone / PROJECT / "data" / "lake")
    params = clone / PROJECT / "params.yaml"
    params.write_text(params.read_text().replace("holdout_days: 7 ", "holdout_days: 5 "))
    # A fresh clone in a clean shell: MLflow exports MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI
    # when a test in this process sets them, and children would inherit another test's stores.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAIZEN_", "AIRFLOW_", "MLFLOW_", "FEAST_"))
    }
    env.update(
        {
            "KAIZEN_HOME": str(clone),
            "KAIZEN_PROJECT": "credit_risk",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            "KAIZEN_GX_DATA_DOCS": "failures",
        }
    )
    return clone, env


def _run(
    args: list[str], clone: Path, env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=clone, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc


@pytest.mark.slow
@pytest.mark.airflow
def test_dvc_repro_from_a_fresh_clone_through_the_training_dag(
    labelled_world: Path, tmp_path: Path
) -> None:
    """The project's training DAG runs `dvc repro` of its dvc.yaml in a fresh clone; the same
    `dvc repro` by hand in the project's folder then runs nothing; metrics, plots and the
    manifest's training-set hash come from that one run."""
    clone, env = _clone(tmp_path, labelled_world)
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(clone / "projects"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    project = clone / PROJECT
    _run(["kaizen", "-p", "credit_risk", "apply"], clone, env)
    _run(["airflow", "db", "migrate"], clone, env)
    ran = _run(
        ["airflow", "dags", "test", "credit_risk.training", "--conf", '{"force": true}'],
        clone,
        env,
        timeout=900,
    )
    output = ran.stdout + ran.stderr
    for stage in ("training_set", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in output, output[-3000:]
    again = _run(["dvc", "repro"], project, env)
    assert "Running stage" not in again.stdout and "up to date" in again.stdout
    metrics = json.loads(_run(["dvc", "metrics", "show", "--json"], project, env).stdout)
    workspace = next(iter(metrics.values()))  # keyed "" (the workspace) by DVC 3
    holdout = workspace["data"]["data/eval/metrics.json"]["data"]["holdout"]
    assert 0.5 < holdout["roc_auc"] <= 1
    _run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], project, env)
    assert (tmp_path / "plots" / "index.html").stat().st_size > 1000
    # The version names the Airflow run, and its training-set hash is the one DVC recorded.
    import yaml

    lock = yaml.safe_load((project / "dvc.lock").read_text())
    outs = {o["path"]: o["md5"] for o in lock["stages"]["training_set"]["outs"]}
    registered = json.loads((project / "data" / "registered.json").read_text())
    script = (
        "import mlflow,json;from mlflow.tracking import MlflowClient;"
        f"mlflow.set_tracking_uri('sqlite:///{clone}/.kaizen/mlflow/mlflow.db');"
        f"mlflow.set_registry_uri('sqlite:///{clone}/.kaizen/mlflow/mlflow.db');"
        f"print(json.dumps(MlflowClient().get_model_version('credit_risk','{registered['version']}').tags))"
    )
    tags = json.loads(
        _run([sys.executable, "-c", script], clone, env).stdout.strip().splitlines()[-1]
    )
    assert tags["kaizen.training_set_md5"] == outs["data/training/training_set.parquet"]
    assert tags["kaizen.airflow_run"].startswith("credit_risk.training/")
    assert "pushed" in _run(["dvc", "push"], project, env).stdout  # the local remote


@pytest.mark.services
@pytest.mark.slow
def test_dvc_push_and_pull_through_the_s3_remote(
    labelled_world: Path, tmp_path: Path, s3: object
) -> None:
    clone, env = _clone(tmp_path, labelled_world)
    env.update(
        {
            "KAIZEN_PROFILE": "stack",
            "KAIZEN_ENGINE": "pandas",
            "KAIZEN_FEAST_REGISTRY": "file",
            "KAIZEN_FEAST_ONLINE_STORE": "sqlite",
            "KAIZEN_LAKE_ROOT": str(clone / PROJECT / "data" / "lake"),
            **s3.environ(),
        }
    )  # type: ignore[attr-defined]
    project = clone / PROJECT
    _run(["kaizen", "dvc-remote"], clone, env)
    # A remote prefix of its own: the session's store is shared, and DVC pushes only the
    # objects a remote lacks (another test's push of the same bytes reads "up to date").
    prefix = f"s3://{s3.bucket}/dvc-{uuid.uuid4().hex[:8]}"  # type: ignore[attr-defined]
    _run(["dvc", "remote", "modify", "--local", "s3", "url", prefix], clone, env)
    assert "secret_access_key" in (clone / ".dvc" / "config.local").read_text()
    assert "secret_access_key" not in (clone / ".dvc" / "config").read_text()
    _run(["kaizen", "apply"], clone, env)
    _run(["dvc", "repro", "training_set"], project, env)
    before = file_md5(project / "data" / "training" / "training_set.parquet")
    assert "pushed" in _run(["dvc", "push"], project, env).stdout
    shutil.rmtree(clone / ".dvc" / "cache")
    (project / "data" / "training" / "training_set.parquet").unlink()
    _run(["dvc", "pull", "training_set"], project, env)
    assert file_md5(project / "data" / "training" / "training_set.parquet") == before


@pytest.mark.services
@pytest.mark.slow
def test_the_stack_profile_tracks_in_postgres_with_artifacts_on_s3(
    labelled_world: Path, tmp_path: Path, s3: object, postgres: str
) -> None:
    import uuid

    import sqlalchemy as sa

    database = f"kaizen_test_mlflow_{uuid.uuid4().hex[:8]}"
    base = make_settings(tmp_path)
    settings = base.model_copy(
        update={
            "profile": "stack",
            "engine": "pandas",
            "feast_registry": "file",
            "feast_online_store": "sqlite",
            "mlflow_backend_store_uri": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
            "mlflow_artifacts_destination": f"s3://{s3.bucket}/mlflow-{database}",  # type: ignore[attr-defined]
            "s3_endpoint_url": s3.endpoint_url,  # type: ignore[attr-defined]
            "s3_access_key_id": SecretStr(s3.access_key_id),  # type: ignore[attr-defined]
            "s3_secret_access_key": SecretStr(s3.secret_access_key),  # type: ignore[attr-defined]
        }
    )
    shutil.copytree(labelled_world / "lake", tmp_path / "lake")
    rt = small_params(Runtime(settings))
    apply(settings)
    ts, model, ev = tmp_path / "ts" / "ts.parquet", tmp_path / "model", tmp_path / "eval"
    try:
        training_set(ts, rt)
        train(ts, model, rt)
        evaluate(ts, model, ev, rt)
        result = register(ts, model, ev, tmp_path / "registered.json", rt)
        script = textwrap.dedent(f"""
            import os, mlflow, pandas as pd
            from kaizen.model.data import model_inputs
            mlflow.set_tracking_uri({settings.mlflow_backend_store_uri!r})
            info = mlflow.models.get_model_info("models:/credit_risk/{result.details["version"]}")
            print(info.artifact_path if hasattr(info, "artifact_path") else "", mlflow.get_run({result.details["run_id"]!r}).info.artifact_uri)
            model = mlflow.sklearn.load_model("models:/credit_risk/{result.details["version"]}")
            frame = pd.read_parquet({str(ts)!r})
            print(model.predict_proba(frame[model_inputs(frame, ["invoice_id", "customer_id", "event_timestamp"]).all].head(2))[:, 1].tolist())
        """)
        env = {
            **os.environ,
            "MLFLOW_S3_ENDPOINT_URL": s3.endpoint_url,  # type: ignore[attr-defined]
            "AWS_ACCESS_KEY_ID": s3.access_key_id,
            "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
        }  # type: ignore[attr-defined]
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "s3://" in proc.stdout  # the run's artifacts live on S3
    finally:
        engine = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        engine.dispose()


def test_new_labels_count_from_the_versions_cutoff_not_its_windowed_rows(
    bare_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training set keeps `lookback_days`: its row count stops growing once the history is
    longer, while labels keep arriving. New labels are those final since the cut-off."""
    from types import SimpleNamespace

    from kaizen.model import registry
    from kaizen.stages import training_set as stage

    rt = bare_rt
    final_by = {None: 12_000, "2026-03-01": 11_900}  # 100 became final since the cut-off
    monkeypatch.setattr(stage, "final_labels", lambda _rt, cutoff=None: final_by[cutoff])
    version = SimpleNamespace(
        version="7",
        tags={"kaizen.training_set_cutoff": "2026-03-01", "kaizen.training_set_rows": "9000"},
    )
    monkeypatch.setattr(registry, "latest_version", lambda _rt: version)
    assert stage.new_labels_since_last_model(rt) == (100, "7")  # not 12,000 - 9,000
    version.tags = {"kaizen.training_set_rows": "11950"}  # registered before the cut-off tag
    assert stage.new_labels_since_last_model(rt) == (50, "7")
    monkeypatch.setattr(registry, "latest_version", lambda _rt: None)
    assert stage.new_labels_since_last_model(rt) == (12_000, "-")


def test_with_censored_labels_the_set_holds_unresolved_rows_and_train_fits_them(
    rt: Runtime, tmp_path: Path
) -> None:
    from kaizen.model import serialization

    p = rt.params
    rt.__dict__["params"] = p.model_copy(
        update={"train": p.train.model_copy(update={"labels": "censored", "censored_rounds": 2})}
    )
    ts = tmp_path / "censored" / "ts.parquet"
    training_set(ts, rt)
    frame, info = pd.read_parquet(ts), json.loads(ts.with_suffix(".json").read_text())
    assert info["labels"] == "censored" and info["censored"] > 0
    assert set(frame["state"]) == {"positive", "negative", "censored"}
    assert not {"state", "elapsed_days", "resolved_days"} & set(info["features"])
    train(ts, tmp_path / "model", rt)
    fitted = json.loads((tmp_path / "model" / "train.json").read_text())
    assert fitted["labels"] == "censored" and fitted["censored"] > 0
    assert not {"state", "elapsed_days", "resolved_days"} & {
        *fitted["inputs"]["numeric"],
        *fitted["inputs"]["categorical"],
    }
    model = serialization.load(tmp_path / "model")  # the audited sklearn types only
    inputs = [*fitted["inputs"]["numeric"], *fitted["inputs"]["categorical"]]
    scores = model.predict_proba(frame[inputs].tail(20))[:, 1]
    assert ((scores > 0) & (scores < 1)).all()
    # A final fit never trains on a set built with censored rows.
    rt.__dict__["params"] = p
    with pytest.raises(InputError, match=r"built with train\.labels: censored"):
        train(ts, tmp_path / "model-final", rt)


def test_a_final_set_is_todays_set_with_the_label_states(
    trained: dict[str, Path], rt: Runtime
) -> None:
    frame = pd.read_parquet(trained["ts"])
    info = json.loads(trained["ts"].with_suffix(".json").read_text())
    assert info["labels"] == "final" and info["censored"] == 0
    assert set(frame["state"]) == {"positive", "negative"}
    assert (frame["elapsed_days"] >= frame["resolved_days"]).all()
    # With label states evaluate also reports the censoring-aware metrics (here refused: 18
    # positives in the 5-day holdout, min_class_rows is 20); with nothing censored and a
    # lower floor they are the holdout's own.
    from kaizen.model import serialization
    from kaizen.stages.evaluate import censored_scores

    metrics = json.loads((trained["eval"] / "metrics.json").read_text())
    assert metrics["censored"]["estimable"] is False
    assert "too few to estimate" in metrics["censored"]["reason"]
    model_info = json.loads((trained["model"] / "train.json").read_text())
    p = rt.params.evaluate.censored.model_copy(
        update={"min_class_rows": 5, "bootstrap_samples": 20}
    )
    found = censored_scores(trained["ts"], serialization.load(trained["model"]), model_info, p)
    assert found["censored_rows"] == 0 and found["rows"] == metrics["holdout"]["rows"]
    for metric in ("roc_auc", "brier"):
        assert found[metric]["estimate"] == pytest.approx(metrics["holdout"][metric], abs=1e-6)
