"""One self-contained HTML page per run: the verdicts, the tables and the plots.

Plots are PNGs inlined as data URIs (matplotlib, no JavaScript, nothing fetched), so the file
reads the same from the lake, from MLflow or attached to a ticket.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from typing import Any

import pandas as pd

PLOT_IDS = ("drift-today", "drift-trend", "positive-rate", "quality", "scores")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only: never a window, also without a display
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _img(plot_id: str, title: str, png: str) -> str:
    return (
        f'<figure id="{plot_id}"><img alt="{html.escape(title)}" '
        f'src="data:image/png;base64,{png}"><figcaption>{html.escape(title)}</figcaption></figure>'
    )


def _note(plot_id: str, text: str) -> str:
    return f'<p class="note" id="{plot_id}">{html.escape(text)}</p>'


def _days_axis(ax: Any, days: pd.Series) -> None:
    """Dates as days (never hours, even for one or two points)."""
    import matplotlib.dates as mdates

    stamps = pd.to_datetime(pd.Series(days))
    first, last = stamps.min(), stamps.max()
    # A day of padding each side; without it one point spans years (and thousands of ticks).
    ax.set_xlim(first - pd.Timedelta(days=1), last + pd.Timedelta(days=1))
    span = (last - first).days + 3
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, span // 8)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)


def _figure(width: float = 8.0, height: float = 3.6) -> tuple[Any, Any]:
    return _pyplot().subplots(figsize=(width, height))


def drift_today(metrics: dict[str, Any], threshold: float) -> str:
    features = [
        f for f in (metrics.get("data_drift") or {}).get("features", []) if f["psi"] is not None
    ]
    if not features:
        reason = (metrics.get("data_drift") or {}).get(
            "reason"
        ) or "no champion to compare with yet"
        return _note("drift-today", f"Data drift not judged: {reason}.")
    features = sorted(features, key=lambda f: f["psi"])
    fig, ax = _figure(8, 0.3 * len(features) + 1.5)
    colours = ["#c0392b" if f["drifted"] else "#2e86c1" for f in features]
    ax.barh([f["feature"] for f in features], [f["psi"] for f in features], color=colours)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"PSI {threshold}")
    ax.set_xlabel("PSI vs the champion's holdout (red: drifted)")
    ax.legend(loc="lower right")
    return _img("drift-today", "Data drift per input today", _png(fig))


def drift_trend(trend: pd.DataFrame, threshold: float) -> str:
    psi = trend[(trend["section"] == "data_drift") & (trend["metric"] == "psi")]
    if psi.empty:
        return _note("drift-trend", "No drift history yet.")
    fig, ax = _figure(9.5, 3.8)
    wide = psi.pivot_table(index="ds", columns="key", values="value").sort_index()
    for column in wide.columns:
        ax.plot(pd.to_datetime(wide.index), wide[column], marker="o", markersize=3, label=column)
    ax.axhline(threshold, color="black", linestyle="--", linewidth=1)
    ax.set_ylabel("PSI vs the champion's holdout")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _days_axis(ax, psi["ds"])
    return _img("drift-trend", "Drift per input over time (PSI)", _png(fig))


def positive_rate_plot(daily: pd.DataFrame, trend: pd.DataFrame, threshold: float) -> str:
    rolling = trend[(trend["section"] == "positive_rate") & (trend["metric"] == "rate")]
    if daily.empty and rolling.empty:
        return _note("positive-rate", "No final labels yet: labels are final only after a delay.")
    fig, ax = _figure()
    if not daily.empty:
        ax.bar(pd.to_datetime(daily["day"]), daily["rate"], color="#aed6f1", label="daily")
    if not rolling.empty:
        rolling = rolling.sort_values("ds")
        ax.plot(
            pd.to_datetime(rolling["ds"]),
            rolling["value"],
            color="#1b4f72",
            marker="o",
            markersize=3,
            label="window (monitored)",
        )
    ax.axhline(
        threshold, color="#c0392b", linestyle="--", linewidth=1, label=f"alert {threshold:.0%}"
    )
    ax.set_ylabel("positive rate (by the day labels became final)")
    ax.legend(loc="upper left", fontsize=7)
    _days_axis(ax, pd.concat([daily["day"], rolling["ds"]]) if not rolling.empty else daily["day"])
    return _img("positive-rate", "Positive rate of final labels", _png(fig))


def quality_plot(trend: pd.DataFrame) -> str:
    quality = trend[(trend["section"] == "quality") & trend["metric"].isin(["roc_auc", "brier"])]
    if quality.empty:
        return _note("quality", "Live quality: no labelled live traffic yet.")
    fig, axes = _pyplot().subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("roc_auc", "brier"), strict=True):
        rows = quality[quality["metric"] == metric]
        for key, part in rows.groupby("key"):
            part = part.sort_values("ds")
            ax.plot(pd.to_datetime(part["ds"]), part["value"], marker="o", markersize=3, label=key)
        ax.set_title(metric.replace("_", " ").upper())
        ax.legend(fontsize=7)
        _days_axis(ax, rows["ds"])
    return _img("quality", "Live quality of champion and challenger on delayed labels", _png(fig))


def scores_plot(reference: Any, current: Any, positive: str = "the positive label") -> str:
    if reference is None or current is None or len(current) == 0:
        return _note("scores", "Prediction drift: no live traffic yet.")
    fig, ax = _figure()
    bins = [i / 40 for i in range(41)]
    ax.hist(reference, bins=bins, density=True, alpha=0.5, label="holdout (reference)")
    ax.hist(current, bins=bins, density=True, alpha=0.5, label="served (current)")
    ax.set_xlabel(f"champion probability: {positive}")
    ax.legend()
    return _img("scores", "Prediction drift: served scores vs the holdout", _png(fig))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}
.breach{color:#c0392b}.ok{color:#1e8449}figure{margin:1em 0}img{max-width:100%}.note{color:#666}
"""


def render(
    metrics: dict[str, Any],
    trend: pd.DataFrame,
    daily_positive: pd.DataFrame,
    reference_scores: Any,
    current_scores: Any,
    plots: bool = True,
    positive: str = "positive",
) -> str:
    """The day's page. Without `plots` every figure is a note (the tables are all there):
    drawing them is most of the page's cost, and a long simulated run needs them only some days."""
    p = metrics["params"]

    def plot(plot_id: str, draw: Callable[..., str], *args: Any) -> str:
        if plots:
            return draw(*args)
        return _note(
            plot_id,
            f"Plots are drawn every {p['plots_every_days']} days and on alert days; today's numbers are in the tables.",
        )

    breaches = metrics["breaches"]
    title = f"Kaizen monitoring: {metrics['model']} on {metrics['ds']}"
    verdict = (
        f'<p class="breach">{len(breaches)} breach(es)</p>'
        if breaches
        else '<p class="ok">No breach.</p>'
    )
    retrain = metrics["retrain"]
    drift = metrics.get("data_drift") or {}
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Champion: v{metrics.get('champion') or '-'}; challenger: v{metrics.get('challenger') or '-'}; "
        f"current window {html.escape(' .. '.join(metrics['window']))} "
        f"({html.escape(metrics.get('current_source', '-'))}).</p>",
        verdict,
        _table(
            [{"key": k, **v} for k, v in breaches.items()],
            ["key", "since", "message", "actionable"],
        ),
        f"<p>Retrain requested: <b>{retrain['requested']}</b> ({html.escape(retrain.get('why', ''))})</p>",
        "<h2>Data drift</h2>",
        f"<p>Drifted share {_fmt(drift.get('share'))} (breach above {p['drift_share']}); "
        f"{drift.get('current_rows', 0)} current vs {drift.get('reference_rows', 0)} reference rows.</p>",
        plot("drift-today", drift_today, metrics, p["psi_threshold"]),
        plot("drift-trend", drift_trend, trend, p["psi_threshold"]),
        _table(
            drift.get("features", []),
            [
                "feature",
                "kind",
                "psi",
                "test",
                "p_value",
                "drifted",
                "reference_mean",
                "current_mean",
            ],
        ),
        "<h2>Prediction drift</h2>",
        _table(
            [metrics.get("prediction_drift") or {}],
            ["judged", "psi", "p_value", "reference_mean", "current_mean", "breach", "reason"],
        ),
        plot("scores", scores_plot, reference_scores, current_scores, positive),
        f"<h2>Business metric: positive rate ({html.escape(positive)})</h2>",
        _table(
            [metrics["positive_rate"]],
            ["window", "labels", "positives", "rate", "threshold", "breach"],
        ),
        plot(
            "positive-rate",
            positive_rate_plot,
            daily_positive,
            trend,
            p["positive_rate_alert"],
        ),
        "<h2>Live model quality</h2>",
        _table(
            [{"version": k, **v} for k, v in (metrics.get("quality") or {}).items()],
            ["version", "alias", "roles", "rows", "positives", "roc_auc", "brier", "judged"],
        ),
        plot("quality", quality_plot, trend),
        "<h2>Training-serving skew</h2>",
        _table(
            [
                {"feature": k, "mismatch_share": v}
                for k, v in ((metrics.get("skew") or {}).get("features") or {}).items()
            ],
            ["feature", "mismatch_share"],
        )
        if (metrics.get("skew") or {}).get("judged")
        else _note(
            "skew", f"Skew: {(metrics.get('skew') or {}).get('reason', 'no live traffic yet')}."
        ),
        "<h2>Feature freshness</h2>",
        _table(
            [{"view": k, **v} for k, v in metrics["freshness"].items()],
            ["view", "newest", "lag_days", "slo_days", "breach"],
        ),
    ]
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(sections)}</body></html>\n"
    )
