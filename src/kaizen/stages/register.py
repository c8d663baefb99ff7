"""`register`: log the model to MLflow and register it as a new version of the project's model.

The version carries its release manifest as tags and as `release_manifest.json`, is logged
with a signature, an input example and its audited skops trusted types (so it loads in a
fresh process with the check on), and gets the `candidate` alias: it waits there for the
promotion gates. Nothing is registered when an earlier stage refused the data.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd

from kaizen.errors import ModelRefused
from kaizen.logs import get_logger
from kaizen.model import manifest, serialization
from kaizen.model.data import Inputs, holdout_of, trained, trained_inputs
from kaizen.params import OnnxParams
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed

log = get_logger(__name__)
# Written explicitly: MLflow's requirement inference imports and inspects the model (slow).
# What each column of the pyfunc form's (n, 2) output is: the probability of each class.
PYFUNC_COLUMNS_TAG = "kaizen.pyfunc_columns"
REQUIREMENTS = ("scikit-learn", "skops", "numpy", "pandas", "scipy")
ONNX_DIR = "onnx"  # run artifact folder of the ONNX form
ONNX_TAG = "kaizen.onnx"  # version tag: the ONNX form's artifact path in the run


def pip_requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in REQUIREMENTS]


def _training_run(client: Any, run_id: str) -> str | None:
    """The training run to register from, or None when this MLflow store does not have it:
    `dvc repro` restored the model from DVC's run cache after the store was reset (e.g.
    `make clean`), so the version is logged from a new run that names the original."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
        return run_id
    except MlflowException:
        log.warning(
            "training run %s is not in this MLflow store (the model came from DVC's run "
            "cache); registering it from a new run",
            run_id,
        )
        return None


@dataclass(frozen=True)
class OnnxForm:
    serialized: bytes
    metrics: dict[str, float]


def onnx_form(model: Any, inputs: Inputs, holdout: pd.DataFrame, p: OnnxParams) -> OnnxForm:
    """The model in ONNX form, refused (ModelRefused) when ONNX Runtime's probabilities leave
    `parity_atol` of scikit-learn's on the holdout."""
    import time

    from kaizen.model.onnx_export import OnnxModel, export, parity

    started = time.perf_counter()
    serialized = export(model, inputs)
    runtime = OnnxModel(serialized, inputs)
    gap = parity(model, runtime, holdout)
    if not gap <= p.parity_atol:  # NaN refuses too
        raise ModelRefused(
            f"the ONNX form scores differently: max |P ONNX - scikit-learn| {gap:.2e} > "
            f"register.onnx.parity_atol {p.parity_atol:.0e} on {len(holdout):,} holdout rows "
            "(isotonic calibration converts approximately: use sigmoid, or set "
            "register.onnx.enabled: false)"
        )
    row = holdout[inputs.all].head(1)
    sklearn_ms, onnx_ms = (
        _median_ms(model.predict_proba, row),
        _median_ms(runtime.predict_proba, row),
    )
    log.info(
        "ONNX form: max |P gap| %.1e on %d holdout rows (tolerance %.0e); one-row predict "
        "%.2f ms vs %.2f ms in scikit-learn; converted and checked in %.1f s",
        gap,
        len(holdout),
        p.parity_atol,
        onnx_ms,
        sklearn_ms,
        time.perf_counter() - started,
    )
    return OnnxForm(
        serialized,
        {
            "onnx_parity_max_abs_diff": gap,
            "onnx_predict_ms_one_row": onnx_ms,
            "sklearn_predict_ms_one_row": sklearn_ms,
        },
    )


def _median_ms(predict: Any, row: pd.DataFrame, repeats: int = 15) -> float:
    import time

    predict(row)  # warm
    spent = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict(row)
        spent.append((time.perf_counter() - started) * 1e3)
    return float(sorted(spent)[len(spent) // 2])


def register(
    training_set: str | Path,
    model_dir: str | Path,
    eval_dir: str | Path,
    out: str | Path,
    rt: Runtime | None = None,
) -> StageResult:
    import mlflow
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from kaizen.model import tracking

    rt = rt or Runtime()
    training_set, model_dir, eval_dir, out = (
        Path(training_set),
        Path(model_dir),
        Path(eval_dir),
        Path(out),
    )
    p = rt.params.register_
    result = StageResult("register", str(model_dir))
    with timed(result, log, rt):
        model = serialization.load(model_dir)
        trusted = json.loads((model_dir / "trusted_types.json").read_text())
        run = json.loads((model_dir / "run.json").read_text())
        evaluation = json.loads((eval_dir / "metrics.json").read_text())
        description = json.loads(training_set.with_suffix(".json").read_text())
        release = manifest.build(rt, training_set, description, evaluation["holdout"])
        frame = pd.read_parquet(training_set)
        info = trained(model_dir)
        inputs = trained_inputs(info).all
        example = frame[inputs].tail(5)
        # MLflow's pyfunc form answers predict_proba, as its signature says: a client of the
        # generic form needs the probability, not a class label at a threshold it never chose.
        signature = infer_signature(example, model.predict_proba(example))
        # The gates score every candidate and champion on the candidate's holdout: keep it.
        holdout = holdout_of(frame, info)
        onnx = onnx_form(model, trained_inputs(info), holdout, p.onnx) if p.onnx.enabled else None
        experiment = tracking.configure(rt.settings, rt.experiment)
        client = MlflowClient()
        run_id = _training_run(client, run["run_id"])
        with mlflow.start_run(
            run_id=run_id,
            experiment_id=None if run_id else experiment.experiment_id,
            run_name=None if run_id else "registered from DVC's cache",
        ) as active:
            if run_id is None:
                mlflow.set_tag("kaizen.training_run", run["run_id"])
            logged = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                input_example=example,
                serialization_format="skops",
                pyfunc_predict_fn="predict_proba",
                skops_trusted_types=trusted,
                pip_requirements=pip_requirements(),
                registered_model_name=rt.model_name,
            )
            mlflow.log_dict(release, "release_manifest.json")
            with tempfile.TemporaryDirectory() as tmp:
                holdout.to_parquet(Path(tmp) / "holdout.parquet", index=False)
                mlflow.log_artifact(str(Path(tmp) / "holdout.parquet"), "evaluation")
                if onnx is not None:
                    (Path(tmp) / "model.onnx").write_bytes(onnx.serialized)
                    mlflow.log_artifact(str(Path(tmp) / "model.onnx"), ONNX_DIR)
                    mlflow.log_metrics(onnx.metrics)
            mlflow.set_tags({**manifest.as_tags(release), "kaizen.stage": "registered"})
        number = str(logged.registered_model_version)
        tags = manifest.as_tags(release)
        tags[PYFUNC_COLUMNS_TAG] = json.dumps([f"P({c})" for c in model.classes_.tolist()])
        if onnx is not None:
            tags[ONNX_TAG] = f"{ONNX_DIR}/model.onnx"
        for key, value in tags.items():
            client.set_model_version_tag(rt.model_name, number, key, value)
        client.set_registered_model_alias(rt.model_name, p.candidate_alias, number)
        registered = {
            "name": rt.model_name,
            "version": number,
            "alias": p.candidate_alias,
            "run_id": active.info.run_id,
            "model_uri": f"models:/{rt.model_name}/{number}",
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(registered, indent=2, sort_keys=True) + "\n")
        result.rows_in = result.rows_out = 1
        result.output = registered["model_uri"]
        result.details = registered
        log.info(
            "registered %s version %s as @%s (ROC AUC %s on %s)",
            rt.model_name,
            number,
            p.candidate_alias,
            evaluation["holdout"]["roc_auc"],
            evaluation["holdout"]["window"],
        )
    return result
