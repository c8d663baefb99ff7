"""The declaration, params.yaml and the code agree: hooks import, numbers match."""

from __future__ import annotations

import importlib
import inspect

import pydantic
import pytest
import yaml
from __name__.labels import HORIZON_DAYS, ROW_ID
from __name__.params import EVENTS_HISTORY_DAYS, ProjectParams
from __name___helpers import PROJECT, declaration


def resolve(ref: str):
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


def test_params_yaml_validates() -> None:
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text(encoding="utf-8"))
    params = ProjectParams.model_validate(raw["project"])
    assert params == ProjectParams()  # the file states the defaults, nothing hidden
    assert (params.featurize.windows.short_days, params.featurize.windows.long_days) == (7, 28)


@pytest.mark.parametrize(
    "bad",
    [
        {"simulate": {"sed": 1}},
        {"featurize": {"windows": {"short_days": 28, "long_days": 7}}},
        {"featurize": {"windows": {"long_days": 60}}},  # longer than the history read
        {"simulate": {"quit_rate": 1.5}},
    ],
)
def test_params_refuse_mistakes(bad: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        ProjectParams.model_validate(bad)


def test_declaration_matches_the_code() -> None:
    d = declaration()
    assert d["name"] == PROJECT.name == "__name__"
    assert d["entity"]["join_keys"] == {"account_id": "string"}
    assert d["label"]["max_delay_days"] == HORIZON_DAYS
    assert d["label"]["row_id"] == ROW_ID
    assert d["features"]["inputs"]["events"] == EVENTS_HISTORY_DAYS
    assert d["request"]["fields"] == {}
    hooks = {
        "pandas": d["features"]["transforms"]["pandas"],
        "spark": d["features"]["transforms"]["spark"],
        "label": d["label"]["hook"],
        "sampler": d["traffic"]["sampler"],
        "params": d["params"]["model"],
        "generator": d["generator"],
    }
    found = {k: resolve(v) for k, v in hooks.items()}
    assert found["params"] is ProjectParams
    assert list(inspect.signature(found["pandas"]).parameters) == ["frames", "ds", "params"]
    assert list(inspect.signature(found["spark"]).parameters) == ["frames", "ds", "params"]
    assert list(inspect.signature(found["label"]).parameters) == ["frames", "as_of", "params"]
    assert list(inspect.signature(found["sampler"]).parameters) == ["rt", "start", "end"]
    generator = inspect.signature(found["generator"]).parameters
    assert list(generator)[:2] == ["params", "raw_root"]
    assert {"start", "days", "shift_date", "faults", "storage_options"} <= set(generator)


def test_platform_accepts_the_declaration() -> None:
    try:
        from kaizen.project.declaration import load_declaration
    except ImportError as exc:
        pytest.skip(f"platform declaration model unavailable: {exc}")
    loaded = load_declaration(PROJECT)
    assert loaded.join_keys == ["account_id"]
    assert set(loaded.slices) == {"plan", "age_band"}
