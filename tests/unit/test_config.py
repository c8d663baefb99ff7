"""Settings, params.yaml and source declarations: typed, with one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kaizen.config import Settings, get_settings
from kaizen.errors import ConfigError, InputError
from kaizen.params import load_params
from kaizen.sources import load_sources

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_kaizen_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("KAIZEN_"):
            monkeypatch.delenv(key)


@pytest.mark.usefixtures("no_kaizen_env")
def test_local_profile_defaults_are_files_and_pandas(tmp_path: Path) -> None:
    s = Settings(_env_file=None, home=tmp_path)
    assert s.profile == "local"
    assert s.raw_root == str(tmp_path / "data" / "raw")
    assert s.lake_root == str(tmp_path / "data" / "lake")
    assert s.engine == "pandas"
    assert s.storage_options(s.lake_root) == {}


@pytest.mark.usefixtures("no_kaizen_env")
def test_stack_profile_defaults_are_s3_and_spark(tmp_path: Path) -> None:
    s = Settings(
        _env_file=None,
        home=tmp_path,
        profile="stack",
        s3_endpoint_url="http://127.0.0.1:9000",
        s3_access_key_id="k",
        s3_secret_access_key="s",
    )
    assert s.raw_root.startswith("s3://") and s.lake_root.startswith("s3://")
    assert s.engine == "spark"
    opts = s.storage_options(s.lake_root)
    assert opts["key"] == "k" and opts["secret"] == "s"
    assert opts["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:9000"


@pytest.mark.usefixtures("no_kaizen_env")
def test_env_and_dotenv_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("KAIZEN_PROFILE=stack\nKAIZEN_ENGINE=pandas\n")
    monkeypatch.setenv("KAIZEN_HOME", str(tmp_path))
    monkeypatch.setenv("KAIZEN_LOG_FORMAT", "json")
    get_settings.cache_clear()
    try:
        s = get_settings()
        assert (s.profile, s.engine, s.log_format) == ("stack", "pandas", "json")
    finally:
        get_settings.cache_clear()


def test_secrets_are_not_printed(tmp_path: Path) -> None:
    s = Settings(_env_file=None, home=tmp_path, s3_secret_access_key="hunter2-very-secret")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())


def test_bad_setting_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_PROFILE", "production")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as err:
            get_settings()
    finally:
        get_settings.cache_clear()
    message = str(err.value)
    assert "profile" in message and "\n" not in message


def test_repository_params_and_sources_load() -> None:
    params = load_params(REPO / "params.yaml")
    catalog = load_sources(REPO / "sources.yaml")
    assert params.simulate.late_rate_before == pytest.approx(0.05)
    assert catalog.names == ["customers", "orders", "payments"]
    assert catalog.get("payments").columns["paid_ts"].nullable


def _write_params(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    mutate(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["simulate"].update(days="many"), "simulate.days"),
        (lambda d: d["simulate"].pop("seed"), "simulate.seed: is required but missing"),
        (lambda d: d["simulate"].update(late_rate_after=1.5), "simulate.late_rate_after"),
        (lambda d: d["ingest"].update(csv_blok_size=1), "ingest.csv_blok_size: is not a known key"),
        (lambda d: d.pop("ingest"), "ingest: is required but missing"),
    ],
)
def test_wrong_or_missing_param_names_the_key(tmp_path: Path, mutate, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_params(_write_params(tmp_path, mutate))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_unparseable_params_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("simulate: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"primary_key": ["nope"]}, "'nope' is used as a key but is not a declared column"),
        ({"event_time": "amount"}, "must be a timestamp column"),
        ({"file": "orders.csv"}, "{ds} placeholder"),
        ({"format": "xml"}, "sources.orders.format"),
    ],
)
def test_bad_declaration_is_one_clear_error(tmp_path: Path, change: dict, expected: str) -> None:
    data = yaml.safe_load((REPO / "sources.yaml").read_text())
    data["sources"]["orders"].update(change)
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_sources(path)
    assert expected in str(err.value)


def test_unknown_source_lists_the_declared_ones() -> None:
    catalog = load_sources(REPO / "sources.yaml")
    with pytest.raises(InputError, match="declared sources are customers, orders, payments"):
        catalog.get("refunds")


def test_a_new_source_is_only_a_declaration(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "sources.yaml").read_text())
    data["sources"]["returns"] = {
        "format": "csv",
        "file": "{ds}.csv",
        "primary_key": ["return_id"],
        "event_time": "returned_at",
        "columns": {"return_id": "int64", "order_id": "int64", "returned_at": "timestamp"},
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(data))
    assert sorted(load_sources(path).get("returns").required_columns) == [
        "order_id",
        "return_id",
        "returned_at",
    ]
