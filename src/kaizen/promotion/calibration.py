"""Gate calibration: how often do the gates promote challengers whose truth is planted?

A synthetic world of paired scores (no pipeline, no services): a latent risk x, labels drawn
from P(y | x), and models that see x through noise, part of it shared by every model trained
on the same data and part of it their own seed's. Three kinds of challenger are planted
against one champion:

* null: the same model with another seed (the same expected ROC AUC);
* regression: a noisier model, `regression` ROC AUC below the champion;
* improvement: a sharper model, `improvement` ROC AUC above it.

Each trial runs the REAL gate decisions: the staging comparison (`checks.compare`) on a
holdout, then, if it passes, the production judgement (`production.judge`) on live evidence
that grows by `live_rows_per_day` final labels a day until it decides or `max_bake_days`
runs out. Only the days on which the judgement can change are judged: a new look, the end
of the bake, the expiry (a later day at the same look is the same test, see
`production.look_sample`). Both comparisons are run: `improvement` (drift-triggered
candidates) and `non_inferiority` (the rest, by default).

`kaizen calibrate` (`make gate-calibration`) writes the figures as dated Markdown and JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from kaizen.params import PromoteParams
from kaizen.promotion import checks, sequential
from kaizen.promotion.production import judge

KINDS = ("null", "regression", "improvement")
TESTS = ("improvement", "non_inferiority")
GOALS = {  # kind -> (bound, "max" | "min") on the promotion rate, per test
    "improvement": {
        "null": (0.05, "max"),
        "regression": (0.05, "max"),
        "improvement": (0.80, "min"),
    },
    "non_inferiority": {"regression": (0.05, "max"), "improvement": (0.80, "min")},
}


@dataclass(frozen=True)
class World:
    positive_rate: float = 0.08  # P(y = 1)
    champion_auc: float = 0.75
    regression: float = 0.02  # planted ROC AUC loss
    improvement: float = 0.03  # planted ROC AUC gain
    shared: float = 0.8  # share of a model's error variance common to same-data models
    holdout_rows: int = 4000  # the staging holdout
    live_rows_per_day: int = 250  # live requests whose label becomes final each day
    seed: int = 0


SPREAD = 2.0  # sd of the latent risk x (the Bayes ROC AUC is ~0.86 at an 8% rate)


def _calibrated(s: np.ndarray, sigma: float, intercept: float) -> np.ndarray:
    """P(y = 1 | s) for s = x + sigma * e, x ~ N(0, SPREAD^2), y ~ Bernoulli(expit(intercept
    + x)) (the probit approximation of the logistic-normal integral): a calibrated model."""
    k = SPREAD**2 / (SPREAD**2 + sigma**2)
    var = SPREAD**2 * sigma**2 / (SPREAD**2 + sigma**2)
    return expit((intercept + k * s) / math.sqrt(1 + math.pi * var / 8))


@lru_cache(maxsize=8)
def _design(world: World) -> dict[str, float]:
    """The intercept giving `positive_rate`, and each kind's noise giving its ROC AUC,
    solved on one large seeded sample (so every run plants the same models)."""
    rng = np.random.default_rng(12345)
    n = 400_000
    x, e = SPREAD * rng.normal(size=n), rng.normal(size=n)
    u = rng.random(n)
    intercept = brentq(lambda a: expit(a + x).mean() - world.positive_rate, -15, 5)
    y = (u < expit(intercept + x)).astype(int)

    def sigma_for(auc: float) -> float:
        return brentq(lambda s: roc_auc_score(y, x + s * e) - auc, 1e-3, 20.0, xtol=1e-4)

    champion = sigma_for(world.champion_auc)
    return {
        "intercept": intercept,
        "null": champion,
        "champion": champion,
        "regression": sigma_for(world.champion_auc - world.regression),
        "improvement": sigma_for(world.champion_auc + world.improvement),
    }


def plant(kind: str, world: World, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` rows: label, champion and challenger probabilities (a planted `kind`)."""
    d = _design(world)
    x = SPREAD * rng.normal(size=n)
    y = (rng.random(n) < expit(d["intercept"] + x)).astype("int64")
    common = rng.normal(size=n)  # the error both models share (same training data)

    def model(sigma: float) -> np.ndarray:
        own = rng.normal(size=n)  # this seed's
        s = x + sigma * (math.sqrt(world.shared) * common + math.sqrt(1 - world.shared) * own)
        return _calibrated(s, sigma, d["intercept"])

    return pd.DataFrame(
        {"label": y, "champion": model(d["champion"]), "challenger": model(d[kind])}
    )


def trial(kind: str, test: str, world: World, p: PromoteParams, seed: int) -> dict[str, Any]:
    """One planted challenger through both gates; what each decided, and when."""
    rng = np.random.default_rng([world.seed, KINDS.index(kind), seed])
    holdout = plant(kind, world, world.holdout_rows, rng)
    staged = checks.compare(
        holdout["label"].to_numpy(),
        holdout["challenger"].to_numpy(),
        holdout["champion"].to_numpy(),
        p,
        test,
    )
    out: dict[str, Any] = {"kind": kind, "test": test, "seed": seed, "staging": staged.passed}
    # Production judges only what staging let through (its cost is the trials' bulk).
    live = run_production(kind, test, world, p, rng) if staged.passed else {}
    out.update({f"production_{k}": v for k, v in live.items()})
    out["promoted"] = bool(staged.passed and live["verdict"] == "promote")
    return out


def run_production(
    kind: str, test: str, world: World, p: PromoteParams, rng: np.random.Generator
) -> dict[str, Any]:
    """The production gate, day by day, on live evidence of the planted kind."""
    prod = p.production
    days = prod.max_bake_days
    live = plant(kind, world, world.live_rows_per_day * days, rng)
    live["request_id"] = [f"r{i:07d}" for i in range(len(live))]
    marks = sequential.thresholds(
        prod.sequential.horizon_positives, prod.sequential.looks, prod.min_positives
    )
    positives = live["label"].cumsum().to_numpy()
    errors = {
        name: {"predictions": world.live_rows_per_day, "failed": 0, "rate": 0.0}
        for name in ("champion", "challenger")
    }
    state = None
    for day in range(1, days + 1):
        rows = world.live_rows_per_day * day
        baked, expired = day >= prod.bake_days, day >= days
        now = (sequential.reached(int(positives[rows - 1]), marks), baked, expired)
        if now == state or not (baked or expired):
            continue  # the same look, bake and expiry as yesterday; or baking: it waits
        state = now
        verdict, _ = judge(live.iloc[:rows], errors, p, baked, expired, test=test)
        if verdict != "wait":
            return {"verdict": verdict, "day": day, "look": now[0]}
    return {"verdict": "wait", "day": days, "look": state[0] if state else 0}


def _rate(hits: int, n: int) -> dict[str, float]:
    """The share and its 95% Wilson interval."""
    if n == 0:
        return {"rate": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    z, phat = 1.959964, hits / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"rate": phat, "low": max(0.0, centre - half), "high": min(1.0, centre + half), "n": n}


def calibrate(
    p: PromoteParams,
    world: World,
    counts: dict[str, dict[str, int]],
    progress: Any = None,
) -> dict[str, Any]:
    """`counts[test][kind]` trials each; promotion rates with intervals, and the goals."""
    rows = []
    for test, kinds in counts.items():
        for kind, n in kinds.items():
            rows += [trial(kind, test, world, p, seed) for seed in range(n)]
            if progress:
                progress(f"{test} {kind}: {n} trials")
    frame = pd.DataFrame(rows)
    if "production_verdict" not in frame:
        frame["production_verdict"] = None
        frame["production_day"] = frame["production_look"] = np.nan
    results: dict[str, Any] = {}
    for (test, kind), g in frame.groupby(["test", "kind"], sort=False):
        staged = g[g["staging"]]
        decided = staged[staged["production_verdict"] == "promote"]
        results.setdefault(test, {})[kind] = {
            "promoted": _rate(int(g["promoted"].sum()), len(g)),
            "staging_passed": _rate(len(staged), len(g)),
            "production_promoted_of_staged": _rate(len(decided), len(staged)),
            "median_day_promoted": float(decided["production_day"].median())
            if len(decided)
            else None,
            "looks_promoted_at": {
                str(int(k)): int(v)
                for k, v in decided["production_look"].value_counts().sort_index().items()
            },
        }
    goals = []
    for test, kinds in GOALS.items():
        for kind, (bound, how) in kinds.items():
            if kind not in results.get(test, {}):
                continue
            rate = results[test][kind]["promoted"]["rate"]
            met = rate <= bound if how == "max" else rate >= bound
            goals.append(
                {
                    "test": test,
                    "kind": kind,
                    "goal": f"{how} {bound:.0%}",
                    "rate": rate,
                    "met": bool(met),
                }
            )
    seq = p.production.sequential
    looks = sequential.boundaries(seq.alpha, seq.looks, seq.spending)
    return {
        "world": asdict(world),
        "design": _design(world),
        "gates": {
            "staging_confidence": p.non_inferiority.confidence,
            "bootstrap_samples": p.non_inferiority.bootstrap_samples,
            "staging_margin": p.non_inferiority.roc_auc_margin,
            "production_margin": p.production.roc_auc_margin,
            "sequential": seq.model_dump(),
            "boundaries": [b.to_dict() for b in looks],
            "bake_days": p.production.bake_days,
            "max_bake_days": p.production.max_bake_days,
        },
        "counts": counts,
        "results": results,
        "goals": goals,
    }


def markdown(report: dict[str, Any], when: str) -> str:
    """The report as a Markdown table."""
    w, g = report["world"], report["gates"]
    seq = g["sequential"]
    lines = [
        f"# Gate calibration, {when}",
        "",
        f"Synthetic paired scores (`kaizen.promotion.calibration`): positive rate "
        f"{w['positive_rate']:.0%}, champion ROC AUC {w['champion_auc']}, staging holdout "
        f"{w['holdout_rows']} rows, {w['live_rows_per_day']} live labels a day, "
        f"{w['shared']:.0%} of a model's error shared by same-data models. Planted: nulls "
        f"(another seed), regressions of {w['regression']} and improvements of "
        f"{w['improvement']} ROC AUC.",
        "",
        f"Gates: staging at {g['staging_confidence']:.0%} two-sided ({g['bootstrap_samples']} "
        f"paired bootstrap resamples); production {seq['looks']} looks to "
        f"{seq['horizon_positives']} positives, {seq['spending']} spending of one-sided alpha "
        f"{seq['alpha']} (boundaries z = "
        + ", ".join(f"{b['boundary_z']:.2f}" for b in g["boundaries"])
        + f"), bake {g['bake_days']} days, horizon {g['max_bake_days']} days.",
        "",
        "| test | challenger | trials | promoted (both gates) | 95% CI | staging passed | "
        "production promoted, of those | median live day promoted |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for test, kinds in report["results"].items():
        for kind, r in kinds.items():
            pr, st, pa = r["promoted"], r["staging_passed"], r["production_promoted_of_staged"]
            day = r["median_day_promoted"]
            lines.append(
                f"| {test} | {kind} | {pr['n']} | {pr['rate']:.1%} | "
                f"[{pr['low']:.1%}, {pr['high']:.1%}] | {st['rate']:.1%} | "
                f"{'-' if not pa['n'] else format(pa['rate'], '.1%')} | "
                f"{'-' if day is None else f'{day:.0f}'} |"
            )
    lines += ["", "| goal | test | challenger | rate | met |", "| --- | --- | --- | --- | --- |"]
    for goal in report["goals"]:
        lines.append(
            f"| promoted {goal['goal']} | {goal['test']} | {goal['kind']} | {goal['rate']:.1%} | "
            f"{'yes' if goal['met'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out_dir: Path, when: dt.date) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"gate-calibration-{when.isoformat()}"
    md, js = stem.with_suffix(".md"), stem.with_suffix(".json")
    md.write_text(markdown(report, when.isoformat()), encoding="utf-8")
    js.write_text(json.dumps({"date": when.isoformat(), **report}, indent=2, default=float) + "\n")
    return md, js


def main(argv: list[str] | None = None) -> int:
    """`make gate-calibration`: the full run, its dated report, non-zero on a missed goal."""
    import argparse

    from kaizen.params import load_params

    parser = argparse.ArgumentParser(prog="python -m kaizen.promotion.calibration")
    parser.add_argument("--params", type=Path, required=True, help="a project's params.yaml")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--trials", type=int, default=200, help="per kind, improvement test")
    parser.add_argument("--trials-non-inferiority", type=int, default=100, help="per kind")
    parser.add_argument("--date", type=dt.date.fromisoformat, default=dt.date.today())
    args = parser.parse_args(argv)
    p = load_params(args.params).promote
    counts = {
        "improvement": dict.fromkeys(KINDS, args.trials),
        "non_inferiority": dict.fromkeys(KINDS, args.trials_non_inferiority),
    }
    report = calibrate(p, World(), counts, progress=lambda m: print(m, flush=True))
    md, js = write(report, args.out, args.date)
    print(md.read_text(), end="")
    print(f"wrote {md} and {js}")
    return 0 if all(g["met"] for g in report["goals"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
