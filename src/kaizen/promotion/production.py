"""The production gate: the `challenger` becomes `champion` only if it is as good live.

While it is the challenger, the prediction API runs it in shadow (it scores every request
beside the champion) or as a canary (it serves a stable share of entities); every score is
in the prediction log with the request's features. After `bake_days` the gate judges it on:

* live quality: the logged requests whose label is final now but was not yet final at the
  challenger's training-set cutoff, so it is never judged on a row it learned from (labels
  arrive after the project's label delay: this evidence always lags the traffic, by
  design). Both models are scored on the same requests, paired: a model's logged score
  where it scored the request, else the model re-scored on the features the request was
  served with. It is judged at a few declared looks, not daily (`sequential`): look k once
  the evidence holds k / looks of `horizon_positives` positives, on the z-score of the
  paired bootstrap against the look's alpha-spending boundary; the test is the one the
  challenger's trigger calls for (improvement, or non-inferiority within the margin);
* its error rate: the share of its own live predictions in the bake window that failed;
* a short load test (`load_gate`), run only when every other check has passed: the challenger
  alone in a temporary API must keep its /predict p99 within the budget with no errors.

Verdicts: `promote` (challenger -> champion; the old champion is in the ledger for
rollback), `demote` (challenger alias removed, reason recorded), `wait` (the bake period is
not over, the next look is not reached; nothing moves). A challenger that has not crossed
by the last look, is shown worse at any look, or is still without enough evidence after
`max_bake_days`, is demoted. The first challenger (no champion yet, so no comparison and no
live traffic) must pass the floors on its holdout, the load test, and the error rate of the
load test's predictions. Every verdict is an immutable record holding its
evidence, and `replay()` reaches the same verdict from that record alone.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import numpy as np
import pandas as pd

from kaizen.logs import get_logger
from kaizen.model import metrics
from kaizen.model.versions import Version, by_alias, load, manifest
from kaizen.monitoring.predictions import logged_features
from kaizen.params import PromoteParams
from kaizen.promotion import checks, ledger, load_gate, sequential
from kaizen.promotion.staging import KIND, Decision, trigger_of
from kaizen.records import RecordStore
from kaizen.runtime import Runtime

log = get_logger(__name__)
LABEL = "label"


def since_alias(rt: Runtime, version: str, alias: str) -> dt.datetime | None:
    """When `version` last took `alias`, from the ledger."""
    for event in reversed(ledger.events(rt)):
        if event["to_alias"] == alias and event["version"] == version:
            return dt.datetime.fromisoformat(event["time"])
    return None


def live_labels(rt: Runtime, now: dt.datetime, known_at: pd.Timestamp) -> pd.DataFrame:
    """<row id> -> label (and when it became final) for the rows whose label is final at `now` but was not at
    `known_at` (the label hook's definition of final, as the training set's). `now` is capped
    at the close of the newest day of the label's sources in the lake: an outcome after that
    is not known yet, and must not be taken for one."""
    from kaizen.labels import FINAL_TS, label_rows
    from kaizen.transforms.contract import as_of

    row_id = rt.project.row_id
    empty = pd.DataFrame(
        {
            row_id: pd.Series(dtype=str),
            LABEL: pd.Series(dtype="int64"),
            "final_ts": pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )
    newest = [
        max(days)
        for source in rt.project.declaration.label.sources
        if (
            days := [d for d in rt.lake.partitions("silver", source) if d <= now.date().isoformat()]
        )
    ]
    if not newest:
        return empty
    last = min(newest)
    cap = min(pd.Timestamp(now), as_of(last))
    rows = label_rows(rt, last)
    fresh = rows[(rows[FINAL_TS] <= cap) & (rows[FINAL_TS] > known_at)]
    # When each label became final: the looks take the earliest ones (see `look_sample`).
    out = fresh[[row_id, LABEL, FINAL_TS]].rename(columns={FINAL_TS: "final_ts"})
    return out.astype({row_id: str}).reset_index(drop=True)


def _scores(
    predictions: pd.DataFrame, version: Version, requests: pd.DataFrame
) -> tuple[pd.Series, int]:
    """The version's score per request: logged where it scored it, else re-scored on the
    logged features. Returns the scores (NaN where neither is possible) and how many were
    re-scored."""
    own = predictions[
        (predictions["model_version"] == version.number) & predictions["probability"].notna()
    ].drop_duplicates("request_id")
    scores = requests["request_id"].map(own.set_index("request_id")["probability"])
    missing = scores.isna()
    if not missing.any():
        return scores.astype(float), 0
    rows = requests.loc[missing]
    frame = logged_features(rows)
    if frame.empty or not set(version.inputs) <= set(frame.columns):
        return scores.astype(float), 0  # served with other features: cannot be re-scored
    frame = frame[version.inputs]
    scores.loc[missing] = version.score(frame)
    return scores.astype(float), int(missing.sum())


def paired_evidence(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    champion: Version,
    challenger: Version,
    row_id: str,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per labelled live request both models can be scored on: request_id, label,
    champion and challenger scores. Requests and labels meet on the project's row id."""
    ok = predictions[predictions["error"].isna() & predictions[row_id].notna()]
    served = ok[ok["role"] == "served"].drop_duplicates("request_id")
    served = served.assign(**{row_id: served[row_id].astype(str)})
    requests = served.merge(labels, on=row_id, how="inner").reset_index(drop=True)
    old, old_rescored = _scores(ok, champion, requests)
    new, new_rescored = _scores(ok, challenger, requests)
    both = old.notna() & new.notna()
    evidence = pd.DataFrame(
        {
            "request_id": requests["request_id"][both].to_numpy(),
            LABEL: requests[LABEL][both].astype("int64").to_numpy(),
            "champion": old[both].to_numpy(),
            "challenger": new[both].to_numpy(),
        }
    )
    if "final_ts" in requests.columns:
        evidence["final_ts"] = requests["final_ts"][both].to_numpy()
    counts = {
        "labelled_requests": len(requests),
        "paired": len(evidence),
        "champion_rescored": old_rescored,
        "challenger_rescored": new_rescored,
    }
    return evidence, counts


def error_rates(predictions: pd.DataFrame, champion: str, challenger: str) -> dict[str, Any]:
    """Share of failed predictions per model in the bake window (served and shadow)."""
    out: dict[str, Any] = {}
    for name, number in (("champion", champion), ("challenger", challenger)):
        mine = predictions[predictions["model_version"] == number]
        failed = int(mine["error"].notna().sum())
        out[name] = {
            "predictions": len(mine),
            "failed": failed,
            "rate": failed / len(mine) if len(mine) else None,
        }
    return out


def look_sample(evidence: pd.DataFrame, p: PromoteParams) -> tuple[int, pd.DataFrame]:
    """The latest declared look the evidence reaches (0: none yet) and the rows it is judged
    on: the earliest final labels (the order they became final, `final_ts`, where recorded)
    up to the one that reached the look's positives, and at least `min_labelled` rows. The
    same look on a later day is the same rows, so waiting never makes another look."""
    prod = p.production
    seq = prod.sequential
    if "final_ts" in evidence.columns:
        evidence = evidence.sort_values(["final_ts", "request_id"], kind="stable")
    evidence = evidence.reset_index(drop=True)
    marks = sequential.thresholds(seq.horizon_positives, seq.looks, prod.min_positives)
    look = sequential.reached(int(evidence[LABEL].sum()), marks)
    if look == 0:
        return 0, evidence
    at = int(np.searchsorted(evidence[LABEL].cumsum().to_numpy(), marks[look - 1]))
    return look, evidence.iloc[: max(at + 1, prod.min_labelled)]


def live_test(sample: pd.DataFrame, look: int, p: PromoteParams, test: str) -> checks.Check:
    """The look's test: the z-score of the paired bootstrap (ROC AUC difference, plus the
    margin for non-inferiority, over its standard error) against the look's boundary."""
    prod = p.production
    seq = prod.sequential
    bound = sequential.boundaries(seq.alpha, seq.looks, seq.spending)[look - 1]
    y = sample[LABEL].to_numpy()
    # The live comparison uses the production margin, on the paired bootstrap.
    live = p.model_copy(
        update={
            "non_inferiority": p.non_inferiority.model_copy(
                update={"roc_auc_margin": prod.roc_auc_margin}
            )
        }
    )
    base = checks.compare(
        y, sample["challenger"].to_numpy(), sample["champion"].to_numpy(), live, test
    )
    ci = base.values
    shift = prod.roc_auc_margin if test == "non_inferiority" else 0.0
    z = _z(ci["delta"] + shift, ci["se"])
    brier_ok = ci["brier_delta"] <= p.non_inferiority.brier_margin
    crossed = z >= bound.boundary_z
    against = "> 0" if test == "improvement" else f">= -{prod.roc_auc_margin}"
    detail = (
        f"{test} ({against}) at look {look} of {seq.looks} ({len(y)} rows, {int(y.sum())} "
        f"positive): ROC AUC delta {ci['delta']:+.4f} (se {ci['se']:.4f}), z {z:.2f} "
        f"{'>=' if crossed else '<'} boundary {bound.boundary_z:.2f} (nominal alpha "
        f"{bound.nominal_alpha:.4f}, {bound.alpha_spent:.4f} of {seq.alpha} spent)"
    )
    if not brier_ok:
        detail += f"; Brier worse by {ci['brier_delta']:.4f} > {p.non_inferiority.brier_margin}"
    values = {**ci, "z": z, **bound.to_dict(), "rows": len(y), "positives": int(y.sum())}
    return checks.Check("live_quality", bool(crossed and brier_ok), detail, values)


def _z(effect: float, se: float) -> float:
    if not np.isfinite(se) or se <= 0:  # identical rankings on every resample
        return float(np.sign(effect) * np.inf) if effect else 0.0
    return float(effect / se)


def judge(
    evidence: pd.DataFrame,
    errors: dict[str, Any],
    p: PromoteParams,
    baked: bool,
    expired: bool,
    load: dict[str, Any] | None = None,
    test: str = "non_inferiority",
) -> tuple[str, list[checks.Check]]:
    """The verdict from the evidence alone (what `replay` re-runs). `load` is the load
    test's figures when it ran (None: not run, because another check had already failed);
    `test` the comparison the challenger's trigger calls for (`PromoteParams.comparison`).

    Live quality is judged only at the declared looks (`look_sample`), each against its
    alpha-spending boundary: a look that does not cross waits for the next, the last one
    demotes, and so does a challenger shown worse (its ROC AUC interval below zero, or a
    worse Brier score) at any look, which can only lower the false-promotion rate."""
    prod = p.production
    seq = prod.sequential
    look, sample = look_sample(evidence, p)
    y = sample[LABEL].to_numpy()
    positives = int(y.sum())
    marks = sequential.thresholds(seq.horizon_positives, seq.looks, prod.min_positives)
    enough = look >= 1 and len(y) >= prod.min_labelled and len(y) > positives
    total = int(evidence[LABEL].sum())
    found = [
        checks.Check(
            "bake",
            baked,
            "bake period over" if baked else f"in production for less than {prod.bake_days} days",
        ),
        checks.Check(
            "live_evidence",
            enough,
            f"{len(evidence)} labelled live requests ({total} positive); look {look} of "
            f"{seq.looks} (looks at {', '.join(map(str, marks))} positives), "
            f"at least {prod.min_labelled} rows and some negative",
            {"rows": len(evidence), "positives": total, "look": look},
        ),
    ]
    rate = errors["challenger"]["rate"]
    served = errors["challenger"]["predictions"]
    found.append(
        checks.Check(
            "error_rate",
            served > 0 and rate is not None and rate <= prod.max_error_rate,
            f"challenger failed {errors['challenger']['failed']} of {served} live predictions "
            f"(limit {prod.max_error_rate:.2%}; champion {errors['champion']['failed']} of "
            f"{errors['champion']['predictions']})",
            errors,
        )
    )
    if enough:
        found.append(live_test(sample, look, p, test))
    if load is not None:
        found.append(load_gate.check(load, p.load_test))
    if not baked or not enough:
        if expired:
            return "demote", found
        return "wait", found
    if all(c.passed for c in found):
        return "promote", found
    if look < seq.looks and not expired and _inconclusive(found, p.non_inferiority.brier_margin):
        # Not shown better (or non-inferior), not shown worse either: the next look has
        # more labels and the alpha this one did not spend.
        found.append(
            checks.Check(
                "conclusive",
                False,
                f"look {look} of {seq.looks} did not cross its boundary: waiting for look "
                f"{look + 1} at {marks[look]} positives (demoted after the last look, or "
                f"{prod.max_bake_days} days)",
            )
        )
        return "wait", found
    return "demote", found


def _inconclusive(found: list[checks.Check], brier_margin: float) -> bool:
    """Only the live-quality check failed, and on width alone: its interval still reaches
    zero and the Brier score is not worse (the challenger is not shown to be worse)."""
    failed = [c for c in found if not c.passed]
    if [c.name for c in failed] != ["live_quality"]:
        return False
    values = failed[0].values or {}
    brier_worse = not values.get("brier_delta", np.inf) <= brier_margin
    return not brier_worse and values.get("high", -1.0) >= 0.0


def sequential_record(found: list[checks.Check]) -> dict[str, Any] | None:
    """The look and the alpha it spent, for the decision record (None: no look taken)."""
    quality = next((c for c in found if c.name == "live_quality"), None)
    if quality is None:
        return None
    keys = ("look", "looks", "information", "alpha_spent", "nominal_alpha", "boundary_z", "z")
    return {k: quality.values[k] for k in keys} | {"rows": quality.values["rows"]}


def _record_and_move(
    rt: Runtime,
    decision_id: str,
    record: dict[str, Any],
    evidence: pd.DataFrame | None,
) -> None:
    import mlflow

    p = rt.params.promote
    buf = io.BytesIO()
    (evidence if evidence is not None else pd.DataFrame()).to_parquet(buf, index=False)
    RecordStore.from_settings(rt.settings).put(
        KIND, decision_id, record, {"evidence.parquet": buf.getvalue()}
    )
    challenger = record["challenger"]
    summary = "; ".join(record["reasons"])
    when = dt.datetime.fromisoformat(record["time"])
    if record["verdict"] in ("promote", "demote"):
        with mlflow.start_run(run_id=record["challenger_run"]):
            mlflow.log_dict(record, f"decisions/{decision_id}.json")
            mlflow.set_tag("kaizen.production", record["verdict"])
    if record["verdict"] == "promote":
        ledger.move(
            rt,
            challenger,
            to_alias=p.champion_alias,
            from_alias=p.challenger_alias,
            decision=decision_id,
            reason=f"production gate passed: {summary}",
            when=when,
        )
    elif record["verdict"] == "demote":
        ledger.move(
            rt,
            challenger,
            to_alias=None,
            from_alias=p.challenger_alias,
            decision=decision_id,
            reason=f"production gate demoted it: {summary}",
            when=when,
        )


def load_errors(load: dict[str, Any] | None) -> dict[str, Any]:
    """The first challenger's error rate: it serves no live traffic before there is a
    champion, so its only predictions are the load test's (none when that was skipped)."""
    requests = int((load or {}).get("requests") or 0)
    failed = int((load or {}).get("failures") or 0)
    mine = {
        "predictions": requests,
        "failed": failed,
        "rate": failed / requests if requests else None,
    }
    return {"challenger": mine, "champion": {"predictions": 0, "failed": 0, "rate": None}}


def judge_first(
    holdout_metrics: dict[str, Any],
    p: PromoteParams,
    load: dict[str, Any] | None,
    errors: dict[str, Any],
) -> tuple[str, list[checks.Check]]:
    """The first challenger (no champion to compare with): the floors on its holdout, the
    load test and the error rate of the load test's predictions. `load` None: not run yet
    (the floors failed), which demotes as a failed check does."""
    found = [checks.floors(holdout_metrics, p)]
    if load is not None:
        found.append(load_gate.check(load, p.load_test))
        mine = errors["challenger"]
        found.append(
            checks.Check(
                "error_rate",
                mine["predictions"] > 0
                and mine["rate"] is not None
                and mine["rate"] <= p.production.max_error_rate,
                f"failed {mine['failed']} of {mine['predictions']} load-test predictions "
                f"(limit {p.production.max_error_rate:.2%}; with no champion there is no "
                "live traffic, so the load test's predictions are its only ones)",
                errors,
            )
        )
    passed = load is not None and all(c.passed for c in found)
    return ("promote" if passed else "demote"), found


def _first_champion(
    rt: Runtime, challenger: Version, base: dict[str, Any], now: dt.datetime
) -> Decision:
    """No champion yet: the challenger becomes the first one only on the floors, the load
    test and the error rate (there is nothing to compare it with, and no live traffic)."""
    from kaizen.model.versions import holdout_of

    p = rt.params.promote
    holdout = holdout_of(rt, challenger)
    scored = metrics.score(holdout[LABEL].to_numpy(), challenger.score(holdout))
    verdict, found = judge_first(scored, p, None, load_errors(None))
    load_figures = None
    if found[0].passed:  # seconds of both cores: only when the floors already hold
        load_figures = load_gate.run(rt, challenger.number)
        errors = load_errors(load_figures)
        verdict, found = judge_first(scored, p, load_figures, errors)
    else:
        errors = load_errors(None)
    record = {
        **base,
        "first": True,
        "holdout_metrics": scored,
        "errors": errors,
        "load_test": load_figures,
        "checks": [c.to_dict() for c in found],
        "verdict": verdict,
        "reasons": [f"{c.name}: {c.detail}" for c in found if not c.passed]
        or ["no champion yet: the first challenger passed the floors, load test and error rate"],
    }
    _record_and_move(rt, base["id"], record, None)
    log.info("production gate %s: first challenger v%s %s", base["id"], challenger.number, verdict)
    return Decision(base["id"], verdict, record)


def production(rt: Runtime, now: dt.datetime | None = None) -> Decision:
    """Judge the challenger on its live record; promote, demote or wait, and record why."""
    p = rt.params.promote
    now = now or dt.datetime.now(dt.UTC)
    number = by_alias(rt, p.challenger_alias)
    if number is None:
        record = {"verdict": "wait", "reasons": [f"no model at @{p.challenger_alias}"]}
        log.info("production gate: nothing to judge (no @%s)", p.challenger_alias)
        return Decision(f"production-none-{now:%Y%m%dT%H%M%S}", "wait", record)
    challenger = load(rt, number)
    champion_number = by_alias(rt, p.champion_alias)
    decision_id = f"production-v{number}-{now:%Y%m%dT%H%M%S}"
    base = {
        "id": decision_id,
        "gate": "production",
        "time": now.isoformat(),
        "model": rt.model_name,
        "challenger": number,
        "challenger_run": challenger.run_id,
        "champion": champion_number,
        "params": p.model_dump(),
    }
    trigger = trigger_of(challenger)
    test = p.comparison(trigger)
    base["comparison"] = {"test": test, "trigger": trigger}
    if champion_number is None:
        return _first_champion(rt, challenger, base, now)

    from kaizen.serving.predictions import read_predictions

    champion = load(rt, champion_number)
    since = since_alias(rt, number, p.challenger_alias) or now
    age = now - since
    baked = age >= dt.timedelta(days=p.production.bake_days)
    expired = age >= dt.timedelta(days=p.production.max_bake_days)
    from kaizen.transforms.contract import as_of

    cutoff = str(manifest(challenger)["training_set_cutoff"])
    delay = rt.project.declaration.label.max_delay_days
    window = dt.timedelta(days=p.production.max_bake_days + delay)
    predictions = read_predictions(rt, start_ds=(since - window).date().isoformat())
    labels = live_labels(rt, now, as_of(cutoff))
    evidence, counts = paired_evidence(predictions, labels, champion, challenger, rt.project.row_id)
    in_bake = predictions[predictions["ts"] >= pd.Timestamp(since)]
    errors = error_rates(in_bake, champion_number, number)
    verdict, found = judge(evidence, errors, p, baked, expired, test=test)
    load_figures = None
    if verdict == "promote":  # seconds of both cores: only when the load test can still decide
        load_figures = load_gate.run(rt, number)
        verdict, found = judge(evidence, errors, p, baked, expired, load_figures, test)
    y = evidence[LABEL].to_numpy()
    record = {
        **base,
        "challenger_since": since.isoformat(),
        "challenger_labels_final_by": cutoff,
        "evidence": counts,
        "errors": errors,
        "metrics": {
            "champion": metrics.score(y, evidence["champion"].to_numpy()),
            "challenger": metrics.score(y, evidence["challenger"].to_numpy()),
        },
        "baked": baked,
        "expired": expired,
        "load_test": load_figures,
        # The look this decision took (its number, and the alpha spent through it).
        "sequential": sequential_record(found),
        "checks": [c.to_dict() for c in found],
        "verdict": verdict,
        "reasons": [f"{c.name}: {c.detail}" for c in found if not c.passed]
        or ["every check passed"],
    }
    _record_and_move(rt, decision_id, record, evidence)
    log.info(
        "production gate %s v%s vs champion v%s: %s (%s)",
        decision_id,
        number,
        champion_number,
        verdict,
        "; ".join(record["reasons"]),
    )
    return Decision(decision_id, verdict, record)


def replay(rt: Runtime, decision_id: str) -> dict[str, Any]:
    """Re-judge a recorded production decision from its stored evidence."""
    store = RecordStore.from_settings(rt.settings)
    record = store.get(KIND, decision_id)
    if not record.get("checks"):  # a first champion from before it was judged: nothing to
        return {
            "decision": decision_id,
            "recorded": record["verdict"],
            "replayed": record["verdict"],
            "same": True,
            "checks": {},
        }
    p = PromoteParams.from_record(record["params"])
    if record.get("first"):
        verdict, found = judge_first(
            record["holdout_metrics"], p, record.get("load_test"), record["errors"]
        )
    else:
        evidence = pd.read_parquet(
            io.BytesIO(store.attachment(KIND, decision_id, "evidence.parquet"))
        )
        test = (record.get("comparison") or {}).get("test", "non_inferiority")
        verdict, found = judge(
            evidence,
            record["errors"],
            p,
            record["baked"],
            record["expired"],
            record.get("load_test"),
            test,
        )
    recorded = {c["name"]: c["passed"] for c in record["checks"]}
    again = {c.name: c.passed for c in found}
    return {
        "decision": decision_id,
        "recorded": record["verdict"],
        "replayed": verdict,
        "same": verdict == record["verdict"] and recorded == again,
        "checks": again,
    }
