"""`evaluate`: score the model on its frozen time-based holdout, overall and per slice.

Writes `metrics.json` (DVC metrics) and `plots/*.json` (DVC plots: ROC, precision-recall,
calibration, feature importance), and logs the same to the model's MLflow run with images.
Also the model's explainability report (`explain/report.{json,html}`), logged to the run and
published in the lake at `reports/explain/latest.html` (plus a copy named by the run).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from kaizen.errors import InputError
from kaizen.labels import ELAPSED_DAYS, RESOLVED_DAYS, STATE
from kaizen.logs import get_logger
from kaizen.model import metrics, serialization
from kaizen.model.data import (
    LABEL,
    Inputs,
    holdout_of,
    slice_values,
    split_by_time,
    trained,
    trained_inputs,
)
from kaizen.model.explain import log_background
from kaizen.model.explain_report import explain_holdout, publish, render_html
from kaizen.params import CensoredParams
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed

log = get_logger(__name__)


def holdout_scores(
    training_set: Path, model: Any, info: dict[str, Any]
) -> tuple[pd.DataFrame, np.ndarray]:
    holdout = holdout_of(pd.read_parquet(training_set), info)
    if holdout.empty:
        raise InputError(
            "the holdout window is empty: lengthen the training set or shorten train.holdout_days"
        )
    inputs = trained_inputs(info)
    return holdout, model.predict_proba(holdout[inputs.all])[:, 1]


def censored_scores(
    training_set: Path, model: Any, info: dict[str, Any], p: CensoredParams
) -> dict[str, Any] | None:
    """The holdout's censoring-weighted ROC AUC and Brier (kaizen.model.censored): what the
    model will score on the final labels of its holdout rows watched `min_elapsed_days` or
    more, judged from their label states now. None when the set carries no label states;
    `estimable: false` with the one-line reason when they say too little yet."""
    from kaizen.model.censored import States, censored_report, delay_strata

    frame = pd.read_parquet(training_set)
    missing = [c for c in (STATE, ELAPSED_DAYS, RESOLVED_DAYS) if c not in frame.columns]
    if missing:
        log.info("censoring-aware metrics skipped: the training set has no %s columns", missing)
        return None
    train, held = split_by_time(frame, info["holdout_days"], info["row_id"])
    rows = pd.concat([train, held], ignore_index=True)
    target = np.r_[
        np.zeros(len(train), bool), (held[ELAPSED_DAYS] >= p.min_elapsed_days).to_numpy()
    ]
    inputs = trained_inputs(info)
    try:
        states = States.from_frame(rows)
        if inputs.numeric:  # how soon a label is known, from what the model sees of the row
            features = rows[inputs.numeric].to_numpy(dtype=float)
            states = replace(states, strata=delay_strata(features, states, p.seed))
        scores = model.predict_proba(rows[inputs.all])[:, 1]
        report = censored_report(scores, states, p, target)
    except InputError as exc:
        log.info("censoring-aware metrics not estimable: %s", exc)
        return {"estimable": False, "reason": str(exc)}
    log.info(
        "holdout, censoring-aware (%d rows, %d censored): ROC AUC %.4f [%.4f, %.4f], Brier %.4f",
        report["rows"],
        report["censored_rows"],
        report["roc_auc"]["estimate"],
        report["roc_auc"]["low"],
        report["roc_auc"]["high"],
        report["brier"]["estimate"],
    )
    return {"estimable": True, **report}


def importance(
    model: Any, holdout: pd.DataFrame, inputs_of: Inputs, repeats: int, seed: int
) -> list[dict[str, float]]:
    from sklearn.inspection import permutation_importance

    inputs = inputs_of.all
    if holdout[LABEL].nunique() < 2:
        return []
    found = permutation_importance(
        model,
        holdout[inputs],
        holdout[LABEL],
        scoring="roc_auc",
        n_repeats=repeats,
        random_state=seed,
        n_jobs=1,
    )
    ranked = sorted(
        zip(inputs, found.importances_mean, found.importances_std, strict=True), key=lambda r: -r[1]
    )
    return [
        {"feature": f, "importance": round(float(m), 6), "std": round(float(s), 6)}
        for f, m, s in ranked
    ]


def _figures(
    curves: dict[str, list[dict[str, float]]], ranked: list[dict[str, float]]
) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    for name, (x, y, xlabel, ylabel) in {
        "roc": ("fpr", "tpr", "false positive rate", "true positive rate"),
        "precision_recall": ("recall", "precision", "recall", "precision"),
        "calibration": (
            "predicted",
            "observed",
            "mean predicted probability",
            "observed positive rate",
        ),
    }.items():
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(
            [r[x] for r in curves[name]],
            [r[y] for r in curves[name]],
            marker="." if name == "calibration" else None,
        )
        if name in ("roc", "calibration"):
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=name.replace("_", "-"))
        figures[name] = fig
    fig, ax = plt.subplots(figsize=(6, 5))
    top = ranked[:15][::-1]
    ax.barh([r["feature"] for r in top], [r["importance"] for r in top])
    ax.set(xlabel="drop in ROC AUC when shuffled", title="feature importance (holdout)")
    fig.tight_layout()
    figures["importance"] = fig
    return figures


def evaluate(
    training_set: str | Path, model_dir: str | Path, out: str | Path, rt: Runtime | None = None
) -> StageResult:
    import mlflow

    from kaizen.model import tracking

    rt = rt or Runtime()
    training_set, model_dir, out = Path(training_set), Path(model_dir), Path(out)
    p = rt.params.evaluate
    result = StageResult("evaluate", str(model_dir))
    with (
        timed(result, log, rt),
        threadpool_limits(limits=1),
    ):  # many small predictions: threads only wait
        model = serialization.load(model_dir)
        info = trained(model_dir)
        inputs = trained_inputs(info)
        holdout, proba = holdout_scores(training_set, model, info)
        y = holdout[LABEL].to_numpy()
        overall = metrics.score(y, proba)
        overall["window"] = [
            holdout.event_timestamp.min().date().isoformat(),
            holdout.event_timestamp.max().date().isoformat(),
        ]
        slices = metrics.by_slice(y, proba, slice_values(holdout, rt.project.declaration.slices))
        curves = (
            metrics.curves(y, proba)
            if len(np.unique(y)) == 2
            else {"roc": [], "precision_recall": [], "calibration": []}
        )
        ranked = importance(
            model, holdout, inputs, p.permutation_repeats, rt.params.train.random_state
        )
        evaluation: dict[str, Any] = {"holdout": overall, "slices": slices}
        censored = censored_scores(training_set, model, info, p.censored)
        if censored is not None:  # only a set with label states has them
            evaluation["censored"] = censored
        (out / "plots").mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(evaluation, indent=2, sort_keys=True) + "\n")
        for name, rows in {**curves, "importance": ranked}.items():
            (out / "plots" / f"{name}.json").write_text(json.dumps(rows, indent=1) + "\n")
        report, background = explain_holdout(
            model,
            holdout,
            inputs,
            info["keys"],
            rt.params.explain,
            rt.params.serve.decision_threshold,
            rt.params.serve.decisions,
        )
        run = json.loads((model_dir / "run.json").read_text())
        report_html = render_html(report, f"Explainability report: MLflow run {run['run_id']}")
        (out / "explain").mkdir(parents=True, exist_ok=True)
        (out / "explain" / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (out / "explain" / "report.html").write_text(report_html)
        tracking.configure(rt.settings, rt.experiment)
        with mlflow.start_run(run_id=run["run_id"]):
            mlflow.log_metrics(
                {f"holdout_{k}": v for k, v in overall.items() if isinstance(v, float)}
            )
            for name, values in slices.items():
                for value, m in values.items():
                    mlflow.log_metrics(
                        {
                            f"slice_{name}_{value}_{k}".replace("<", "lt").replace("+", "plus"): v
                            for k, v in m.items()
                            if k in metrics.METRICS and v is not None
                        }
                    )
            if censored and censored["estimable"]:
                mlflow.log_metrics(
                    {
                        f"holdout_censored_{metric}{end}": censored[metric][key]
                        for metric in ("roc_auc", "brier")
                        for end, key in (("", "estimate"), ("_low", "low"), ("_high", "high"))
                    }
                )
            mlflow.log_dict(evaluation, "evaluation/metrics.json")
            if ranked:
                import matplotlib.pyplot as plt

                for name, figure in _figures(curves, ranked).items():
                    mlflow.log_figure(figure, f"evaluation/{name}.png")
                    plt.close(figure)  # pyplot keeps every figure: a long loop would grow
            mlflow.log_artifacts(str(out / "explain"), "explain")
            log_background(background)
            mlflow.set_tag("kaizen.stage", "evaluated")
        published = publish(rt.lake, report_html, run["run_id"])
        log.info("explainability report: %s (this model: %s)", *published)
        result.rows_in = result.rows_out = len(holdout)
        result.output = str(out / "metrics.json")
        result.details = {k: overall[k] for k in ("roc_auc", "pr_auc", "brier", "log_loss")}
        log.info(
            "holdout %s .. %s: ROC AUC %s, PR AUC %s, Brier %s, log loss %s (%d rows, %d positive)",
            *overall["window"],
            overall["roc_auc"],
            overall["pr_auc"],
            overall["brier"],
            overall["log_loss"],
            overall["rows"],
            overall["positives"],
        )
    return result
