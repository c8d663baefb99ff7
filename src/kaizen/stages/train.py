"""`train`: fit the project's model Pipeline on the past of the training set.

The latest `train.holdout_days` of event dates are held out (never trained on; `evaluate`
scores them, reading the split from the model's train.json); the rest, in time order, fits the preprocessing, the trees and the time-ordered calibration. The
fitted model is saved with skops (audited trusted types), and an MLflow run is opened with
the params and the training set's identity; `evaluate` and `register` add to that run.
With `train.labels: censored` the rows not known yet are fitted too, each with a soft label
(kaizen.model.hazard); the model is the same Pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from kaizen.errors import InputError
from kaizen.labels import CENSORED, STATE
from kaizen.logs import get_logger
from kaizen.model import serialization
from kaizen.model.data import LABEL, check_trainable, model_inputs, split_by_time
from kaizen.model.hazard import fit_censored
from kaizen.model.manifest import file_md5
from kaizen.model.pipeline import build, calibration_split
from kaizen.runtime import Runtime
from kaizen.stages.result import StageResult, timed

log = get_logger(__name__)


def _window(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return []
    return [
        frame["event_timestamp"].min().date().isoformat(),
        frame["event_timestamp"].max().date().isoformat(),
    ]


def train(training_set: str | Path, out: str | Path, rt: Runtime | None = None) -> StageResult:
    import mlflow

    from kaizen.model import tracking

    rt = rt or Runtime()
    training_set, out = Path(training_set), Path(out)
    p = rt.params
    result = StageResult("train", str(training_set))
    with timed(result, log, rt):
        frame = pd.read_parquet(training_set)
        description = json.loads(training_set.with_suffix(".json").read_text())
        check_trainable(frame, p.train, "the training set")
        built_with = description.get("labels", "final")
        if built_with != p.train.labels:  # a final fit must never see a censored row
            raise InputError(
                f"the training set was built with train.labels: {built_with}, not "
                f"{p.train.labels}: rebuild it (kaizen training-set)"
            )
        days = p.train.holdout_days
        row_id = rt.project.row_id
        past, holdout = split_by_time(frame, days, row_id)
        check_trainable(past, p.train, f"the training window (before the {days}-day holdout)")
        keys = description.get("keys", rt.project.key_columns)
        inputs = model_inputs(frame, keys)
        resolved = past[past[STATE] != CENSORED] if STATE in past else past
        censoring: dict = {}
        with threadpool_limits(limits=p.train.threads):
            if p.train.labels == "censored":  # resolved and censored rows, by their states
                fitted = fit_censored(past, inputs, p.train, p.train.monotone_increasing)
                model = fitted.model
                censoring = {
                    "censored": fitted.censored,
                    "pending_positive": fitted.pending_positive,
                    "delay_edges_days": fitted.edges,
                }
            else:
                cv = calibration_split(past, inputs, p.train.calibration_folds)
                model = build(inputs, p.train, p.train.monotone_increasing, cv).fit(
                    past[inputs.all], past[LABEL]
                )
        trusted = serialization.save(model, out)
        info = {
            "inputs": {"numeric": inputs.numeric, "categorical": inputs.categorical},
            "keys": keys,
            "row_id": row_id,
            "holdout_days": days,
            "train_window": _window(past),
            "holdout_window": _window(holdout),
            "rows": len(past),
            "positives": int(resolved[LABEL].sum()),  # a censored row's label is provisional
            "labels": p.train.labels,
            **censoring,
            "trusted_types": len(trusted),
            "training_set": {
                "path": str(training_set),
                "md5": file_md5(training_set),
                **description,
            },
        }
        experiment = tracking.configure(rt.settings, rt.experiment)
        with mlflow.start_run(
            experiment_id=experiment.experiment_id,
            run_name=f"{rt.project.name} {description['cutoff']}",
        ) as run:
            mlflow.log_params(
                {f"train.{k}": v for k, v in p.train.model_dump().items() if k != "holdout_days"}
            )
            mlflow.log_params(
                {
                    "train.holdout_days": days,
                    "training_set.cutoff": description["cutoff"],
                }
            )
            mlflow.set_tags(
                {
                    "kaizen.training_set_md5": info["training_set"]["md5"],
                    "kaizen.feature_service": description["feature_service"],
                    "kaizen.stage": "trained",
                }
            )
            mlflow.log_dict(info, "train.json")
        (out / "train.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        (out / "run.json").write_text(
            json.dumps({"run_id": run.info.run_id, "experiment_id": experiment.experiment_id})
            + "\n"
        )
        result.rows_in, result.rows_out = len(frame), len(past)
        result.output = str(out)
        result.details = {"run_id": run.info.run_id, "train_window": info["train_window"]}
        log.info(
            "trained on %d rows (%d positive), %s .. %s; holdout %s; MLflow run %s",
            len(past),
            info["positives"],
            *info["train_window"],
            info["holdout_window"],
            run.info.run_id,
        )
    return result
