"""The shape of a benchmark result and how the report is written."""

from __future__ import annotations

import datetime as dt
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
IMPROVEMENTS = Path(__file__).resolve().parent / "improvements.json"  # before/after per change
REPO = Path(__file__).resolve().parents[1]
PROJECT_NAME = "credit_risk"  # the worked example every suite runs on
PROJECT = REPO / "projects" / PROJECT_NAME


def project_params() -> Any:
    """credit_risk's own params (params.yaml `project:`: `simulate` and `featurize`)."""
    from credit_risk.params import CreditRiskParams

    from kaizen.params import load_params

    return CreditRiskParams.model_validate(load_params(PROJECT / "params.yaml").project)


def feature_names(view: str) -> list[str]:
    """A credit_risk view's feature columns, in order (its Feast repo's schema)."""
    from credit_risk.features.schema import view_features

    return list(view_features(project_params().featurize)[view])


@dataclass
class Row:
    row: str
    hot_path: str
    baseline: str
    measured_s: float
    baseline_s: float
    goal: str  # e.g. "<= 1.5x", ">= 0.5x" or "report"
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # set when the benchmark crashed: the row is reported, the run goes on
    higher_is_better: bool = False  # a throughput row: ratio = baseline_s / measured_s

    @property
    def ratio(self) -> float:
        if self.higher_is_better:
            return self.baseline_s / self.measured_s if self.measured_s else 0.0
        return self.measured_s / self.baseline_s if self.baseline_s else float("inf")

    @property
    def passed(self) -> bool | None:
        if self.error:
            return False
        if self.goal.startswith("<="):
            return self.ratio <= float(self.goal[2:].strip().rstrip("x"))
        if self.goal.startswith(">="):
            return self.ratio >= float(self.goal[2:].strip().rstrip("x"))
        return None

    def to_dict(self) -> dict[str, Any]:
        ratio = None if self.error or not self.baseline_s else round(self.ratio, 3)
        return {**asdict(self), "ratio": ratio, "pass": self.passed}


def child_env(*overlays: dict[str, str]) -> dict[str, str]:
    """The environment for a benchmark's child process: the one the bench was launched with
    (not os.environ, which earlier suites' stores and contexts have written into), then
    `overlays` in order."""
    from bench import LAUNCH_ENV

    env = dict(LAUNCH_ENV)
    for overlay in overlays:
        env.update(overlay)
    return env


def error_row(row: str, hot_path: str, goal: str, exc: BaseException) -> Row:
    """A crashed benchmark as a row of the report, so one failure never hides the others."""
    message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return Row(row, hot_path, "-", 0.0, 0.0, goal, notes=message, error=message)


def median_time(fn: Callable[[], Any], repeat: int = 3, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def write_report(
    rows: list[Row], scale: dict[str, Any], results: Path = RESULTS, partial: bool = False
) -> tuple[Path, Path]:
    results.mkdir(parents=True, exist_ok=True)
    today = dt.date.today().isoformat()
    meta = {
        "date": today,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
        "scale": scale,
    }
    json_path = results / f"{today}.json"
    # A partial run updates its rows and keeps the day's others; a full run replaces the day.
    merged = {r.row: r for r in _load(json_path)} if partial else {}
    rows = sorted((merged | {r.row: r for r in rows}).values(), key=_order)
    _write_atomic(
        json_path,
        json.dumps({"meta": meta, "rows": [r.to_dict() for r in rows]}, indent=2) + "\n",
    )
    md_path = results / f"{today}.md"
    _write_atomic(md_path, markdown(rows, meta))
    return json_path, md_path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _order(row: Row) -> tuple[int, str]:
    digits = "".join(c for c in row.row if c.isdigit())
    return (int(digits) if digits else 0, row.row)


def _load(path: Path) -> list[Row]:
    if not path.exists():
        return []
    fields = set(Row.__dataclass_fields__)
    rows = []
    for r in json.loads(path.read_text())["rows"]:
        row = Row(**{k: v for k, v in r.items() if k in fields})
        if "higher_is_better" not in r and r.get("ratio") and row.measured_s and row.baseline_s:
            # files written before the flag: the stored ratio says which way it was computed
            inverse = row.baseline_s / row.measured_s
            row.higher_is_better = abs(r["ratio"] - inverse) < abs(r["ratio"] - row.ratio)
        rows.append(row)
    return rows


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        f"# Benchmarks {meta['date']} ({meta['cpus']} CPUs, Python {meta['python']})",
        "",
        "| row | hot path | baseline (same run) | measured | baseline | ratio | goal | pass | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.error:
            lines.append(
                f"| {r.row} | {r.hot_path} | - | - | - | - | {r.goal} | ERROR | {r.error} |"
            )
            continue
        verdict = {True: "pass", False: "FAIL", None: "-"}[r.passed]
        lines.append(
            f"| {r.row} | {r.hot_path} | {r.baseline} | {r.measured_s:.3f}s | {r.baseline_s:.3f}s "
            f"| {r.ratio:.2f}x | {r.goal} | {verdict} | {r.notes} |"
        )
    return "\n".join(lines + scaling(rows) + improvements(rows)) + "\n"


def scaling(rows: list[Row]) -> list[str]:
    """Row 8 by size and engine, and the size at which Spark overtakes pandas (if it does).

    Compares whole DAG runs and stage sums at each size both engines ran; a size one engine
    crashed at is left out rather than guessed."""
    runs: dict[int, dict[str, Row]] = {}
    for r in rows:
        if not r.error and "rows_per_day" in r.extra and "engine" in r.extra:
            runs.setdefault(int(r.extra["rows_per_day"]), {})[str(r.extra["engine"])] = r
    both = {size: by for size, by in sorted(runs.items()) if {"pandas", "spark"} <= set(by)}
    if not both:
        return []
    lines = [
        "",
        "## Row 8 scaling: pandas and Spark",
        "",
        "| orders/day | pandas DAG | Spark DAG | Spark / pandas | pandas stages | Spark stages "
        "| slowest stage on Spark, Spark / pandas |",
        "|---|---|---|---|---|---|---|",
    ]
    ratio: dict[int, float] = {}  # Spark DAG time / pandas DAG time, per size
    for size, by in both.items():
        pandas, spark = by["pandas"], by["spark"]
        ratio[size] = spark.measured_s / pandas.measured_s
        pandas_stages = pandas.extra.get("stages_s", {})
        spark_stages = spark.extra.get("stages_s", {})
        slowest = max(spark_stages, key=spark_stages.get) if spark_stages else None
        stage_note = (
            f"{slowest} {spark_stages[slowest]:.1f}s, "
            f"{spark_stages[slowest] / pandas_stages[slowest]:.2f}x"
            if slowest and pandas_stages.get(slowest)
            else "-"
        )
        lines.append(
            f"| {size:,} | {pandas.measured_s:.1f}s | {spark.measured_s:.1f}s "
            f"| {ratio[size]:.2f}x | {pandas.baseline_s:.1f}s "
            f"| {spark.baseline_s:.1f}s | {stage_note} |"
        )
    first, last = min(ratio), max(ratio)
    trend = (
        f"Spark / pandas goes from {ratio[first]:.2f}x at {first:,} to {ratio[last]:.2f}x "
        f"at {last:,} orders a day"
    )
    overtakes = next((size for size in ratio if ratio[size] < 1), None)
    if overtakes is not None:
        verdict = f"Spark overtakes pandas at {overtakes:,} orders a day; {trend}."
    else:
        verdict = f"Spark does not overtake pandas up to {last:,} orders a day; {trend}."
    return [*lines, "", verdict]


def improvements(rows: list[Row], path: Path = IMPROVEMENTS) -> list[str]:
    """The before -> after table: each recorded change, its ratio before, and this run's."""
    if not path.exists():
        return []
    ratios = {r.row: r.ratio for r in rows if not r.error}
    lines = [
        "",
        "## Improvements (before -> after)",
        "",
        "| row | change | before | after (this report) |",
        "|---|---|---|---|",
    ]
    for item in json.loads(path.read_text()):
        after = ratios.get(item["row"])
        lines.append(
            f"| {item['row']} | {item['change']} | {item['before']:.2f}x ({item['before_measured']}) "
            f"| {'not in this run' if after is None else f'{after:.2f}x'} |"
        )
    return lines
