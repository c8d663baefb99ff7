"""churn through the platform's stages, end to end on a small generated world.

generate -> ingest -> validate -> featurize -> validate_features -> apply -> materialize ->
training_set -> train -> evaluate, with the platform's own stage functions (no Airflow, no
DVC), every store under a temporary folder. The last day's events are corrupted
(duplicate rows): that batch must end in quarantine and never reach the features.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from churn_helpers import PROJECT
from support import make_settings

from kaizen.runtime import Runtime

pytestmark = pytest.mark.slow

START = dt.date(2026, 1, 1)
DAYS = 16  # labels are final 7 days on: 8 labelled days, 3 held out, 5 trained on
FAULT_DS = (START + dt.timedelta(days=DAYS - 1)).isoformat()
LAST_CLEAN = (START + dt.timedelta(days=DAYS - 2)).isoformat()
KEYS = {"activity_id", "user_id", "event_timestamp"}


@dataclass(frozen=True)
class Run:
    rt: Runtime
    root: Path
    quarantined: list[tuple[str, str]]  # (source, ds) whose validation refused the batch
    training_set: dict[str, Any]
    train: dict[str, Any]
    metrics: dict[str, Any]


def small_params(root: Path) -> Path:
    """The project's params.yaml with the slow reports cut down and a 3-day holdout."""
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text(encoding="utf-8"))
    raw["train"]["holdout_days"] = 3
    raw["evaluate"]["permutation_repeats"] = 1
    raw["explain"].update(sample_rows=10, background_rows=5)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from kaizen.errors import BatchQuarantined
    from kaizen.featurestore.store import apply
    from kaizen.stages.evaluate import evaluate
    from kaizen.stages.featurize import featurize
    from kaizen.stages.ingest import ingest
    from kaizen.stages.materialize import materialize
    from kaizen.stages.train import train
    from kaizen.stages.training_set import training_set
    from kaizen.stages.validate import validate
    from kaizen.stages.validate_features import validate_features

    root = tmp_path_factory.mktemp("churn_pipeline")
    settings = make_settings(root, project="churn", params_file=small_params(root))
    rt = Runtime(settings)
    rt.project.hook("generator")(
        rt.project_params,
        settings.raw_root,
        start=START,
        days=DAYS,
        faults=[f"{FAULT_DS}:events:duplicate_rows"],
    )
    quarantined = []
    for i in range(DAYS):
        ds = (START + dt.timedelta(days=i)).isoformat()
        passed = True
        for source in rt.catalog.names:
            ingest(source, ds, rt)
            try:
                validate(source, ds, rt)
            except BatchQuarantined:
                quarantined.append((source, ds))
                passed = False
        if passed:
            featurize(ds, rt)
            validate_features(ds, rt)
    apply(settings)
    materialize(START.isoformat(), (START + dt.timedelta(days=DAYS)).isoformat(), rt)
    ts, model, out = root / "training" / "ts.parquet", root / "model", root / "eval"
    training_set(ts, rt)
    train(ts, model, rt)
    evaluate(ts, model, out, rt)
    return Run(
        rt=rt,
        root=root,
        quarantined=quarantined,
        training_set=json.loads(ts.with_suffix(".json").read_text()),
        train=json.loads((model / "train.json").read_text()),
        metrics=json.loads((out / "metrics.json").read_text()),
    )


def test_the_fault_day_ends_quarantined(run: Run) -> None:
    from kaizen.lake import PUBLISHED, Partition

    assert run.quarantined == [("events", FAULT_DS)]
    lake = run.rt.lake
    assert lake.exists(Partition("quarantine", "events", FAULT_DS))
    assert not lake.exists(Partition("silver", "events", FAULT_DS))
    for view in ("user_profile", "user_engagement"):
        days = lake.partitions(PUBLISHED, view)
        assert FAULT_DS not in days and days[-1] == LAST_CLEAN


def test_the_training_set(run: Run) -> None:
    info = run.training_set
    assert info["cutoff"] == LAST_CLEAN  # the newest published day, the fault day is not
    assert info["feature_service"] == "churn_v1" and info["request_fields"] == []
    assert set(info["keys"]) == KEYS
    assert 1000 <= info["rows"] <= 2500  # ~200 active users a day, 8 final days
    assert 0.02 <= info["positive_rate"] <= 0.15
    frame = pd.read_parquet(run.root / "training" / "ts.parquet")
    assert frame["user_id"].map(type).eq(str).all()
    assert frame["user_id"].str.fullmatch(r"u\d{6}").all()
    assert frame["activity_id"].is_unique


def test_the_model_never_takes_a_key(run: Run) -> None:
    inputs = run.train["inputs"]
    taken = {*inputs["numeric"], *inputs["categorical"]}
    assert not taken & KEYS
    assert {"plan", "device", "country"} <= set(inputs["categorical"])
    assert "events_7d" in inputs["numeric"] and "days_since_last_event" in inputs["numeric"]
    assert run.train["holdout_days"] == 3


def test_the_holdout_is_learnt(run: Run) -> None:
    holdout = run.metrics["holdout"]
    assert holdout["positives"] >= 10
    assert holdout["roc_auc"] > 0.6, holdout
    assert set(run.metrics["slices"]) == {"plan", "tenure_band"}


def test_the_served_key_is_a_string(run: Run) -> None:
    from pydantic import ValidationError

    from kaizen.featurestore.online import read_features
    from kaizen.featurestore.store import open_store
    from kaizen.sampler import sample
    from kaizen.serving.schemas import request_model

    service = run.rt.schema.service("churn_v1")
    models = request_model(run.rt.project, service, run.rt.schema.service_join_keys("churn_v1"))
    request = models.predict.model_validate({"user_id": "u000001"})
    assert models.entity_row(request) == {"user_id": "u000001"}
    with pytest.raises(ValidationError):
        models.predict.model_validate({"user_id": 1})

    requests = sample(run.rt, LAST_CLEAN, FAULT_DS)
    assert len(requests) >= 100 and requests["user_id"].map(type).eq(str).all()
    rows = [{"user_id": u} for u in requests["user_id"].head(5)] + [{"user_id": "u999999"}]
    now = dt.datetime.fromisoformat(FAULT_DS).replace(hour=12, tzinfo=dt.UTC)
    store = open_store(run.rt.settings)
    for online_read in ("kaizen", "feast"):
        read = read_features(store, "churn_v1", rows, now, online_read=online_read)
        *known, unknown = read.entities
        assert all(e.fresh and not e.missing_views for e in known), online_read
        assert all(e.values["events_7d"] >= 1 for e in known)  # active on the last clean day
        assert sorted(unknown.missing_views) == ["user_engagement", "user_profile"]
