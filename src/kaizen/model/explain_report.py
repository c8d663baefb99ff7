"""The explainability report of one model: global importance (mean |SHAP|), SHAP values on a
holdout sample, and the top drivers of example rows, as JSON numbers plus one
self-contained HTML page (plots embedded as PNG data URIs, so it opens anywhere offline)."""

from __future__ import annotations

import base64
import html
import io
import uuid
from typing import Any

import numpy as np
import pandas as pd

from kaizen.model.data import Inputs
from kaizen.model.explain import ProbabilityExplainer
from kaizen.params import ExplainParams


def explain_holdout(
    model: Any,
    holdout: pd.DataFrame,
    inputs: Inputs,
    key_columns: list[str],
    p: ExplainParams,
    threshold: float,
    decisions: tuple[str, str],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The report's numbers, and the background they were computed against (the API explains
    against the same rows). Background and sample are disjoint seeded draws of the holdout."""
    rng = np.random.default_rng(p.seed)
    order = rng.permutation(len(holdout))
    background = holdout.iloc[order[: p.background_rows]]
    rest = order[p.background_rows :] if len(order) > p.background_rows else order
    sample = holdout.iloc[np.sort(rest[: p.sample_rows])].reset_index(drop=True)
    found = ProbabilityExplainer(model, background, inputs, p.seed).explain(sample)
    examples = {
        "highest_risk": int(np.argmax(found.proba)),
        "lowest_risk": int(np.argmin(found.proba)),
        "near_threshold": int(np.argmin(np.abs(found.proba - threshold))),
    }
    keys = [k for k in key_columns if k in sample.columns]
    report = {
        "explainer": "shap.PermutationExplainer over the calibrated predict_proba",
        "rows": len(sample),
        "background_rows": len(background),
        "decision_threshold": threshold,
        "base_value": round(float(found.base.mean()), 6),
        "max_additivity_error": float(
            np.abs(found.base + found.values.sum(axis=1) - found.proba).max()
        ),
        "global_importance": found.mean_abs(),
        "examples": {
            name: {
                "keys": {k: str(sample.at[row, k]) for k in keys},
                "probability": round(float(found.proba[row]), 6),
                "decision": decisions[1] if found.proba[row] >= threshold else decisions[0],
                "drivers": found.drivers(row, p.examples_top_k),
            }
            for name, row in examples.items()
        },
        "shap_values": {
            "features": found.features,
            "base": found.base.round(6).tolist(),
            "values": found.values.round(6).tolist(),
            "probability": found.proba.round(6).tolist(),
        },
    }
    return report, background[inputs.all].reset_index(drop=True)


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figures(report: dict[str, Any]) -> dict[str, str]:
    """name -> base64 PNG: the global bar chart, a SHAP beeswarm-style strip, one per example."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    top = report["global_importance"][:15][::-1]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.barh([r["feature"] for r in top], [r["mean_abs_shap"] for r in top])
    ax.set(xlabel="mean |SHAP| on P(positive)", title="global importance (holdout sample)")
    out["importance"] = _png(fig)

    shap = report["shap_values"]
    values = np.asarray(shap["values"])
    names = [r["feature"] for r in top]
    fig, ax = plt.subplots(figsize=(6, 5))
    jitter = np.random.default_rng(0)
    for y, name in enumerate(names):
        column = values[:, shap["features"].index(name)]
        ax.scatter(column, y + jitter.uniform(-0.2, 0.2, len(column)), s=6, alpha=0.5)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="SHAP value (change in P(positive))", title="SHAP values per row")
    out["shap_values"] = _png(fig)

    for name, example in report["examples"].items():
        drivers = example["drivers"][::-1]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.barh(
            [d["feature"] for d in drivers],
            [d["contribution"] for d in drivers],
            color=["tab:red" if d["contribution"] > 0 else "tab:blue" for d in drivers],
        )
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set(
            xlabel="contribution to P(positive)",
            title=f"{name.replace('_', ' ')}: P(positive) {example['probability']:.3f}",
        )
        out[name] = _png(fig)
    return out


def render_html(report: dict[str, Any], title: str) -> str:
    images = figures(report)
    esc = html.escape

    def img(name: str) -> str:
        return f'<img alt="{esc(name)}" src="data:image/png;base64,{images[name]}">'

    rows = "".join(
        f"<tr><td>{esc(r['feature'])}</td><td>{r['mean_abs_shap']:.4f}</td></tr>"
        for r in report["global_importance"]
    )
    examples = []
    for name, ex in report["examples"].items():
        who = ", ".join(f"{k} {esc(v)}" for k, v in ex.get("keys", {}).items())
        drivers = "".join(
            f"<tr><td>{esc(d['feature'])}</td><td>{d['contribution']:+.4f}</td></tr>"
            for d in ex["drivers"]
        )
        examples.append(
            f"<h3>{esc(name.replace('_', ' '))}</h3><p>{who}: P(positive) {ex['probability']:.4f},"
            f" decision <b>{esc(ex['decision'])}</b></p>{img(name)}"
            f"<table><tr><th>feature</th><th>contribution</th></tr>{drivers}</table>"
        )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "td,th{padding:2px 8px;text-align:left}</style></head><body>"
        f"<h1>{esc(title)}</h1><p>{esc(report['explainer'])}; {report['rows']} holdout rows"
        f" against a background of {report['background_rows']}; base value"
        f" {report['base_value']:.4f}; decision threshold {report['decision_threshold']}.</p>"
        f"<h2>Global importance</h2>{img('importance')}{img('shap_values')}"
        f"<table><tr><th>feature</th><th>mean |SHAP|</th></tr>{rows}</table>"
        f"<h2>Examples</h2>{''.join(examples)}</body></html>"
    )


def publish(lake: Any, page: str, run_id: str) -> tuple[str, str]:
    """Leave the page where a person finds it: `reports/explain/latest.html` and a copy per
    MLflow run (`reports/explain/runs/<run_id>.html`). Each is written to a temporary name
    and renamed (a local rename is atomic; an object-store put is atomic by itself), the run's
    copy first so `latest` never names a page that is not there."""
    blob = page.encode("utf-8")
    paths = []
    for rel in (f"reports/explain/runs/{run_id}.html", "reports/explain/latest.html"):
        target = f"{lake._path(rel)}"
        lake.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        if lake.is_local:
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            lake.fs.pipe_file(tmp, blob)
            lake.fs.mv(tmp, target)
        else:
            lake.fs.pipe_file(target, blob)
        paths.append(lake.url(rel))
    return paths[1], paths[0]
