"""Explainability: the report every evaluated model gets, and its SHAP values' additivity."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from test_training import trained_once  # noqa: F401  (one trained model for the module)

from kaizen.errors import InputError
from kaizen.model import serialization
from kaizen.model.data import model_inputs
from kaizen.model.explain import ProbabilityExplainer
from kaizen.runtime import Runtime


def test_every_evaluated_model_has_a_report_in_mlflow_and_the_lake(
    trained_once: tuple[Runtime, dict[str, Path]],  # noqa: F811
) -> None:
    rt, trained = trained_once
    report = json.loads((trained["eval"] / "explain" / "report.json").read_text())
    p = rt.params.explain
    assert report["rows"] <= p.sample_rows and report["background_rows"] == p.background_rows
    # Calibrated probability explained: base value + contributions reproduce it.
    assert report["max_additivity_error"] < 1e-6
    shap = report["shap_values"]
    values = np.asarray(shap["values"])
    assert values.shape == (report["rows"], len(shap["features"]))
    rounded = np.asarray(shap["base"]) + values.sum(axis=1)  # each value rounded to 1e-6
    assert np.allclose(rounded, shap["probability"], rtol=0, atol=len(shap["features"]) * 1e-6)
    importance = [r["mean_abs_shap"] for r in report["global_importance"]]
    assert importance == sorted(importance, reverse=True) and importance[0] > 0
    examples = report["examples"]
    assert examples["highest_risk"]["probability"] >= examples["lowest_risk"]["probability"]
    for ex in examples.values():
        magnitudes = [abs(d["contribution"]) for d in ex["drivers"]]
        assert len(magnitudes) == p.examples_top_k and magnitudes == sorted(magnitudes)[::-1]
        assert ex["keys"]["customer_id"] and ex["decision"] in {"approve", "review"}

    run_id = json.loads((trained["model"] / "run.json").read_text())["run_id"]
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "explain")}
    assert logged == {
        "explain/report.json",
        "explain/report.html",
        "explain/background.parquet",
    }
    latest = Path(rt.lake.url("reports/explain/latest.html"))
    page = latest.read_text()
    assert run_id in page and page.count("data:image/png;base64,") == 2 + len(examples)
    assert Path(rt.lake.url(f"reports/explain/runs/{run_id}.html")).read_text() == page


def test_one_row_explained_with_unseen_category_and_missing_values(
    trained_once: tuple[Runtime, dict[str, Path]],  # noqa: F811
) -> None:
    _, trained = trained_once
    model = serialization.load(trained["model"])
    frame = pd.read_parquet(trained["ts"])
    inputs = model_inputs(frame, ["invoice_id", "customer_id", "event_timestamp"])
    explainer = ProbabilityExplainer(model, frame.tail(20), inputs, seed=1)
    row = frame.tail(1).copy()
    row["region"] = "atlantis"  # never seen in training
    row[inputs.numeric[0]] = np.nan
    started = time.perf_counter()
    found = explainer.explain(row)
    print(f"one row explained in {1000 * (time.perf_counter() - started):.0f} ms")
    expected = model.predict_proba(row[inputs.all])[:, 1]
    assert np.allclose(found.proba, expected)
    assert abs(found.base[0] + found.values[0].sum() - expected[0]) < 1e-9
    with pytest.raises(InputError, match="lack the model inputs region"):
        explainer.explain(row.drop(columns=["region"]))
