"""`kaizen init` to a trained model: a scaffolded project is whole and learns.

init -> check -> generate -> ingest -> validate -> featurize -> validate_features -> apply ->
materialize -> training_set -> train, with the platform's own stage functions, every store
under a temporary folder. The wall time from init to the trained model is printed.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import yaml
from support import make_settings

from kaizen.runtime import Runtime

pytestmark = pytest.mark.slow

NAME = "acme_trial"
START = dt.date(2026, 1, 1)
DAYS = 24  # labels are final 7 days on: 17 labelled days, 3 held out


def test_init_to_a_trained_model(tmp_path) -> None:
    from kaizen.featurestore.store import apply
    from kaizen.project.check import check
    from kaizen.project.scaffold import scaffold
    from kaizen.stages.featurize import featurize
    from kaizen.stages.ingest import ingest
    from kaizen.stages.materialize import materialize
    from kaizen.stages.train import train
    from kaizen.stages.training_set import training_set
    from kaizen.stages.validate import validate
    from kaizen.stages.validate_features import validate_features

    began = time.perf_counter()
    folder = scaffold(NAME, tmp_path / "projects")
    scaffolded = time.perf_counter() - began

    raw = yaml.safe_load((folder / "params.yaml").read_text(encoding="utf-8"))
    raw["train"]["holdout_days"] = 3
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    settings = make_settings(tmp_path / "stores", project=str(folder), params_file=params)
    rt = Runtime(settings)
    assert rt.project.name == NAME
    assert check(rt) == []
    checked = time.perf_counter() - began

    rt.project.hook("generator")(rt.project_params, settings.raw_root, start=START, days=DAYS)
    for i in range(DAYS):
        ds = (START + dt.timedelta(days=i)).isoformat()
        for source in rt.catalog.names:
            ingest(source, ds, rt)
            validate(source, ds, rt)
        featurize(ds, rt)
        validate_features(ds, rt)
    apply(settings)
    materialize(START.isoformat(), (START + dt.timedelta(days=DAYS)).isoformat(), rt)
    ts, model = tmp_path / "training" / "ts.parquet", tmp_path / "model"
    training_set(ts, rt)
    train(ts, model, rt)
    total = time.perf_counter() - began

    info = json.loads(ts.with_suffix(".json").read_text())
    trained = json.loads((model / "train.json").read_text())
    assert info["feature_service"] == f"{NAME}_v1"
    assert set(info["keys"]) == {"visit_id", "account_id", "event_timestamp"}
    assert info["rows"] >= 300 and 0.02 <= info["positive_rate"] <= 0.4, info
    assert "days_since_last_event" in trained["inputs"]["numeric"]
    assert {"plan", "device", "country"} <= set(trained["inputs"]["categorical"])
    print(
        f"\ninit {scaffolded:.1f}s, check at {checked:.1f}s, trained model at {total:.1f}s: "
        f"{info['rows']} rows, positive rate {info['positive_rate']:.3f}"
    )
