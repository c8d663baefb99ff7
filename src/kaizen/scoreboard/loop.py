"""One simulated day after the other, through the real stages in the order the DAGs run them.

For the interval [D, D+1) the scheduler runs, in clock order:

* the API serves day D's requests with the features materialized up to D-1 (`traffic`);
* `dataops_daily` at D+1 00:00: per source `ingest` -> `validate` (a quarantined batch stops
  the day's features), then `featurize` -> `validate_features` -> `materialize`;
* `train` at 04:00 on Mondays (weekly), or when `materialize` emitted the features asset and
  enough new labels are final, or when the monitor asked for a retrain (below);
* `monitor` at 05:00: drift, positive rate, live quality; its guarded retrain request triggers
  `train` again through its asset;
* `promote` at 06:00: `staging` judges a `candidate`, `production` judges the `challenger`.

Each stage is the same function the DAG task calls, so this is the pipeline a scheduler runs
minus Airflow's bookkeeping (which `make demo` and the DAG tests exercise). A journal line per
day records what happened and how long each part took.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaizen.config import Settings
from kaizen.errors import BatchQuarantined, InputError, KaizenError
from kaizen.logs import get_logger
from kaizen.runtime import Runtime
from kaizen.scoreboard.scenario import Scenario

log = get_logger(__name__)


@dataclass
class Day:
    ds: str
    day: int
    quarantined: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    traffic: dict[str, Any] = field(default_factory=dict)
    monitor: dict[str, Any] = field(default_factory=dict)
    trained: list[dict[str, Any]] = field(default_factory=list)
    staging: dict[str, Any] = field(default_factory=dict)
    production: dict[str, Any] = field(default_factory=dict)
    champion: str | None = None
    challenger: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class _Clock:
    """Seconds per part of the day, for the journal (where does the half hour go?)."""

    def __init__(self, day: Day) -> None:
        self.day = day

    def __call__(self, part: str) -> _Timed:
        return _Timed(self.day.seconds, part)


class _Timed:
    def __init__(self, into: dict[str, float], part: str) -> None:
        self.into, self.part = into, part

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        spent = time.perf_counter() - self.started
        self.into[self.part] = round(self.into.get(self.part, 0.0) + spent, 2)


def _gate(rt: Runtime, ds: str, day: Day, timed: _Clock) -> None:
    """The DataOps DAG's per-source tasks: `ingest` -> `validate` (silver or quarantine)."""
    from kaizen.stages.ingest import ingest
    from kaizen.stages.validate import validate

    with timed("ingest+validate"):
        for source in rt.catalog.names:
            try:
                ingest(source, ds, rt)
                validate(source, ds, rt)
            except BatchQuarantined as exc:
                day.quarantined.append(source)
                log.warning("scoreboard %s: %s quarantined: %s", ds, source, exc)


def _features(rt: Runtime, ds: str, day: Day, timed: _Clock) -> bool:
    """The DataOps DAG's downstream tasks; True when the features asset was emitted."""
    from kaizen.stages.featurize import featurize
    from kaizen.stages.materialize import materialize
    from kaizen.stages.validate_features import validate_features

    if day.quarantined:
        return False  # the DAG stops the interval's downstream tasks
    with timed("featurize"):
        featurize(ds, rt)
        try:
            validate_features(ds, rt)
        except BatchQuarantined as exc:
            day.quarantined.append("features")
            log.warning("scoreboard %s: features quarantined: %s", ds, exc)
            return False
    with timed("materialize"):
        end = (dt.date.fromisoformat(ds) + dt.timedelta(days=1)).isoformat()
        materialize(ds, end, rt)
    return True


def _operator_fixes(rt: Runtime, s: Scenario, ds: str, day: Day, timed: _Clock) -> None:
    """The on-call's morning: for a batch quarantined `fix_after_days` ago, land the corrected
    file, trigger `replay_batch`, then clear the interval's feature tasks (its features are a
    pure function of silver up to that day). Its materialize is not re-run: the online store
    already holds newer values, and a backfill never moves them back in time."""
    from kaizen.stages.featurize import featurize
    from kaizen.stages.replay import replay
    from kaizen.stages.validate_features import validate_features

    today = s.day(ds)
    for fault in s.faults():
        if s.day(fault.ds) + s.board.fix_after_days != today:
            continue
        with timed("operator"):
            s.reland(rt, fault)
            replay(fault.source, fault.ds, rt)
            featurize(fault.ds, rt)
            validate_features(fault.ds, rt)
        day.fixed.append(f"{fault.source} {fault.ds}")
        log.info("scoreboard %s: the on-call replayed %s %s", ds, fault.source, fault.ds)


def _train_reason(rt: Runtime, ds: str, emitted: bool, requested: bool) -> str | None:
    """Why the train DAG runs for this day, or None (the train DAG's `new_labels` rule)."""
    from kaizen.stages.training_set import new_labels_since_last_model

    if requested:
        return "retrain request"
    run_day = dt.date.fromisoformat(ds) + dt.timedelta(days=1)
    if run_day.weekday() == 0:
        return "weekly"
    if not emitted:
        return None
    if new_labels_since_last_model(rt)[0] >= rt.params.train.retrain_min_new_labels:
        return "new labels"
    return None


_TRIGGERS = {"retrain request": "retrain_request", "weekly": "schedule", "new labels": "new_labels"}


@contextlib.contextmanager
def _trigger_env(trigger: str) -> Iterator[None]:
    from kaizen.model.manifest import TRIGGER_ENV

    before = os.environ.get(TRIGGER_ENV)
    os.environ[TRIGGER_ENV] = trigger
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TRIGGER_ENV, None)
        else:
            os.environ[TRIGGER_ENV] = before


def _train(rt: Runtime, work: Path, reason: str) -> dict[str, Any]:
    """`dvc repro`'s stages in order: training_set -> train -> evaluate -> register."""
    from kaizen.errors import KaizenError
    from kaizen.stages.evaluate import evaluate
    from kaizen.stages.register import register
    from kaizen.stages.train import train
    from kaizen.stages.training_set import training_set

    out = work / "training"
    tset, model, evals = out / "training_set.parquet", out / "model", out / "eval"
    trigger = _TRIGGERS[reason]  # recorded on the version, as the train DAG records it
    try:
        info = training_set(tset, rt).details
        train(tset, model, rt)
        evaluate(tset, model, evals, rt)
        with _trigger_env(trigger):
            registered = register(tset, model, evals, out / "registered.json", rt).details
    except KaizenError as exc:  # too few labels yet, say: the DAG run fails, the loop goes on
        log.warning("scoreboard: training (%s) did not register: %s", reason, exc)
        return {"reason": reason, "error": str(exc)}
    return {
        "reason": reason,
        "version": str(registered.get("version", "")),
        "cutoff": info["cutoff"],
        "rows": info["rows"],
    }


def _promote_time(ds: str) -> dt.datetime:
    """The promote DAG runs at 06:00 the morning after the interval."""
    return dt.datetime.combine(dt.date.fromisoformat(ds) + dt.timedelta(days=1), dt.time(6), dt.UTC)


def run_day(rt: Runtime, s: Scenario, ds: str) -> Day:
    from kaizen.model.versions import by_alias
    from kaizen.promotion.production import production
    from kaizen.promotion.staging import staging
    from kaizen.serving.traffic import replay_day
    from kaizen.stages.monitor import monitor

    day = Day(ds, s.day(ds))
    timed = _Clock(day)
    a = rt.params.promote
    _operator_fixes(rt, s, ds, day, timed)
    _gate(rt, ds, day, timed)
    if by_alias(rt, a.champion_alias) is not None:
        # The day's requests, served before its batch is materialized (the online store holds
        # the features up to the day before), from the project's traffic sampler.
        with timed("traffic"):
            try:
                day.traffic = replay_day(rt, ds).to_dict()
            except InputError as exc:  # a source quarantined: no list of the day's requests
                day.traffic = {"error": str(exc)}
    emitted = _features(rt, ds, day, timed)
    requested = False
    if by_alias(rt, a.champion_alias) is not None:
        with timed("monitor"):
            details = monitor(ds, rt).details
        retrain = details["retrain"]
        requested = bool(retrain["requested"])
        day.monitor = {
            "breaches": details["breaches"],
            "drift_share": details["data_drift_share"],
            "positive_rate": details["positive_rate"],
            "retrain": {k: retrain.get(k) for k in ("requested", "why", "breaches")},
        }
    # The weekly/features-asset run (04:00) and the monitor's request (after 05:00) are
    # separate runs of the train DAG; one day needs at most one model from each cause.
    reason = _train_reason(rt, ds, emitted, requested=False)
    if reason:
        with timed("train"):
            day.trained.append(_train(rt, s.work, reason))
    if requested:
        with timed("train"):
            day.trained.append(_train(rt, s.work, "retrain request"))
    now = dt.datetime.combine(dt.date.fromisoformat(ds) + dt.timedelta(days=1), dt.time(6), dt.UTC)
    with timed("promote"):
        if by_alias(rt, rt.params.register_.candidate_alias) is not None:
            decision = staging(rt, now=now)
            day.staging = {"version": decision.record.get("candidate"), **decision.to_dict()}
        decision = production(rt, now=now)
        day.production = {"version": decision.record.get("challenger"), **decision.to_dict()}
    day.champion = by_alias(rt, a.champion_alias)
    day.challenger = by_alias(rt, a.challenger_alias)
    return day


_WORKER: dict[str, Runtime] = {}  # the backfill worker's Runtime, by lake


def _gate_in_worker(settings: Settings, ds: str) -> list[str]:
    """One history day's gate in the backfill's worker process, which keeps its Runtime (and
    so its GX context) from one day to the next; returns the quarantined sources."""
    import warnings

    warnings.simplefilter("ignore")  # as the parent: the worker's stderr is the run's too
    if settings.lake_root not in _WORKER:
        _WORKER[settings.lake_root] = Runtime(settings)
    day = Day(ds, 0)
    _gate(_WORKER[settings.lake_root], ds, day, _Clock(day))
    return day.quarantined


def _history_gates(rt: Runtime, history: list[str], jobs: int) -> Iterator[tuple[str, list[str]]]:
    """Each history day's gate, in date order, as (day, quarantined sources).

    With 2 jobs this is a pipelined backfill: a worker process gates day D+1 while the caller
    featurizes and materializes day D. Nothing either reads is being written by the other:
    a gate reads its source's earlier days (the row-count bounds), featurize reads silver
    up to its own day only, and a lake partition appears whole or not at all. So the store
    ends byte for byte as the one-process backfill leaves it, on both cores."""
    if jobs == 1 or len(history) < 2:
        for ds in history:
            day = Day(ds, 0)
            _gate(rt, ds, day, _Clock(day))
            yield ds, day.quarantined
        return
    spawn = multiprocessing.get_context("spawn")  # the parent holds threads: never fork it
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        pending = pool.submit(_gate_in_worker, rt.settings, history[0])
        for i, ds in enumerate(history):
            quarantined = pending.result()
            if i + 1 < len(history):
                pending = pool.submit(_gate_in_worker, rt.settings, history[i + 1])
            yield ds, quarantined


def backfill_dataops(rt: Runtime, s: Scenario, progress: Any = print) -> None:
    """The DataOps DAG backfilled over the history (every day must pass its gates)."""
    started = time.perf_counter()
    history = s.history
    gates = _history_gates(rt, history, s.board.history_jobs)
    for i, (ds, quarantined) in enumerate(gates, 1):
        day = Day(ds, s.day(ds), quarantined=quarantined)
        if not _features(rt, ds, day, _Clock(day)):
            raise KaizenError(f"history day {ds} did not pass the gates: {day.quarantined}")
        if i % 30 == 0 or i == len(history):
            elapsed = time.perf_counter() - started
            progress(f"[{elapsed / 60:5.1f} min] history backfilled to {ds} ({i}/{len(history)})")


def backfill_history(rt: Runtime, s: Scenario, progress: Any = print) -> Day:
    """Onboarding a store with a past: the DataOps DAG backfilled over the history, then the
    first model through `train` and `promote`, so day 1 starts with a champion whose feature
    windows and reference are as full as they will ever be."""
    backfill_dataops(rt, s, progress)
    history = s.history
    from kaizen.model.versions import by_alias
    from kaizen.promotion.production import production
    from kaizen.promotion.staging import staging

    day = Day(history[-1], 0)
    day.trained.append(_train(rt, s.work, "initial"))
    now = _promote_time(history[-1])
    day.staging = {"version": day.trained[0].get("version"), **staging(rt, now=now).to_dict()}
    day.production = production(rt, now=now).to_dict()
    day.champion = by_alias(rt, rt.params.promote.champion_alias)
    if day.champion is None:
        raise KaizenError(f"the first model did not become champion: {day.staging['reasons']}")
    progress(f"history: first champion v{day.champion} ({day.trained[0]})")
    return day


def run(rt: Runtime, s: Scenario, journal: Path, progress: Any = print) -> list[Day]:
    """The history, then every scored day in order; the journal (JSON lines) is rewritten
    whole after each day."""
    from kaizen.featurestore.store import apply

    apply(rt.settings)
    days = [backfill_history(rt, s, progress)] if s.history else []
    started = time.perf_counter()
    for ds in s.dates:
        day = run_day(rt, s, ds)
        days.append(day)
        tmp = journal.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(d.to_dict(), default=str) + "\n" for d in days))
        tmp.replace(journal)
        progress(_line(day, time.perf_counter() - started, s))
    return days[1:] if s.history else days


def _line(day: Day, elapsed: float, s: Scenario) -> str:
    bits = [f"day {day.day:3d} {day.ds}"]
    if day.day == s.board.shock_day:
        bits.append("SHOCK")
    if day.quarantined:
        bits.append(f"quarantined {','.join(day.quarantined)}")
    if day.fixed:
        bits.append(f"replayed {','.join(day.fixed)}")
    if day.monitor.get("breaches"):
        bits.append(f"breaches {','.join(day.monitor['breaches'])}")
    if day.monitor.get("retrain", {}).get("requested"):
        bits.append("retrain requested")
    for t in day.trained:
        bits.append(f"trained ({t['reason']}) -> v{t.get('version') or '-'}")
    if day.staging:
        bits.append(f"staging v{day.staging['version']}: {day.staging['verdict']}")
    if day.production.get("verdict") not in (None, "wait"):
        bits.append(f"production v{day.production['version']}: {day.production['verdict']}")
    bits.append(f"champion v{day.champion or '-'}")
    return f"[{elapsed / 60:5.1f} min] " + "; ".join(bits)
