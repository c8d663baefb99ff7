"""Settings, params.yaml and source declarations: typed, with one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kaizen.config import Settings, get_settings
from kaizen.errors import ConfigError, InputError
from kaizen.params import load_params
from kaizen.project.declaration import load_declaration

REPO = Path(__file__).resolve().parents[2]
CREDIT_RISK = REPO / "projects" / "credit_risk"


@pytest.fixture
def no_kaizen_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("KAIZEN_"):
            monkeypatch.delenv(key)


@pytest.mark.usefixtures("no_kaizen_env")
def test_local_profile_defaults_are_files_and_pandas(tmp_path: Path) -> None:
    s = Settings(_env_file=None, home=tmp_path)  # no project there: the install's data/
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


@pytest.mark.usefixtures("no_kaizen_env")
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


def test_repository_params_and_declaration_load() -> None:
    params = load_params(CREDIT_RISK / "params.yaml")
    declaration = load_declaration(CREDIT_RISK)
    assert params.project["simulate"]["late_rate_before"] == pytest.approx(0.05)
    assert declaration.catalog.names == ["customers", "orders", "payments"]
    assert declaration.catalog.get("payments").columns["paid_ts"].nullable
    assert declaration.entity.join_keys == {"customer_id": "int64"}


def _write_params(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((CREDIT_RISK / "params.yaml").read_text())
    mutate(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["train"].update(max_iter="many"), "train.max_iter"),
        (lambda d: d["train"].pop("random_state"), "train.random_state: is required but missing"),
        (lambda d: d["serve"].update(decision_threshold=1.5), "serve.decision_threshold"),
        (lambda d: d["ingest"].update(csv_blok_size=1), "ingest.csv_blok_size: is not a known key"),
        (lambda d: d.pop("ingest"), "ingest: is required but missing"),
    ],
)
def test_wrong_or_missing_param_names_the_key(tmp_path: Path, mutate, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_params(_write_params(tmp_path, mutate))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_the_projects_own_section_is_validated_by_its_model(tmp_path: Path) -> None:
    from kaizen.project.project import load_project

    project = load_project(CREDIT_RISK)
    section = yaml.safe_load((CREDIT_RISK / "params.yaml").read_text())["project"]
    section["simulate"]["late_rate_after"] = 1.5
    with pytest.raises(ConfigError) as err:
        project.params(section, "params.yaml")
    assert "params.yaml: project: simulate.late_rate_after" in str(err.value)
    section["simulate"]["late_rate_after"] = 0.1
    section["featurize"]["extra_window"] = 3
    with pytest.raises(ConfigError, match=r"featurize\.extra_window: is not a known key"):
        project.params(section, "params.yaml")


def test_unparseable_params_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("simulate: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "absent.yaml")


def _write_declaration(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((CREDIT_RISK / "kaizen.yaml").read_text())
    mutate(data)
    folder = tmp_path / "credit_risk"
    folder.mkdir(exist_ok=True)
    (folder / "kaizen.yaml").write_text(yaml.safe_dump(data))
    return folder


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["sources"]["orders"].update(primary_key=["nope"]), "is used as a key but"),
        (lambda d: d["sources"]["orders"].update(event_time="amount"), "must be a timestamp"),
        (lambda d: d["sources"]["orders"].update(file="orders.csv"), "{ds} placeholder"),
        (lambda d: d["sources"]["orders"].update(format="xml"), "sources.orders.format"),
        (lambda d: d.update(entitty={}), "entitty: is not a known key"),
        (lambda d: d.pop("entity"), "entity: is required but missing"),
        (lambda d: d["entity"].update(join_keys={}), "entity.join_keys"),
        (lambda d: d["entity"].update(join_keys={"customer_id": "uuid"}), "entity.join_keys"),
        (lambda d: d["label"].update(hook="not a hook"), "label.hook"),
        (lambda d: d["label"].update(sources=["refunds"]), "undeclared sources ['refunds']"),
        (lambda d: d["features"]["inputs"].pop("orders"), "features.inputs must say"),
        (lambda d: d["request"]["fields"].update(customer_id="int64"), "are join keys"),
        (lambda d: d.update(name="other"), "must be the folder's name"),
    ],
)
def test_bad_declaration_is_one_line_naming_the_file_and_key(
    tmp_path: Path, mutate, expected: str
) -> None:
    folder = _write_declaration(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_declaration(folder)
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert str(folder / "kaizen.yaml") in message


def test_unknown_source_lists_the_declared_ones() -> None:
    catalog = load_declaration(CREDIT_RISK).catalog
    with pytest.raises(InputError, match="declared sources are customers, orders, payments"):
        catalog.get("refunds")


def test_a_new_source_is_only_a_declaration(tmp_path: Path) -> None:
    def add(d: dict) -> None:
        d["sources"]["returns"] = {
            "format": "csv",
            "file": "{ds}.csv",
            "primary_key": ["return_id"],
            "event_time": "returned_at",
            "columns": {"return_id": "int64", "order_id": "int64", "returned_at": "timestamp"},
        }
        d["features"]["inputs"]["returns"] = 30

    catalog = load_declaration(_write_declaration(tmp_path, add)).catalog
    assert sorted(catalog.get("returns").required_columns) == [
        "order_id",
        "return_id",
        "returned_at",
    ]


@pytest.mark.usefixtures("no_kaizen_env")
def test_the_project_is_selected_by_name_path_working_directory_or_being_the_only_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects = tmp_path / "projects"
    for name in ("alpha", "beta"):
        (projects / name).mkdir(parents=True)
        (projects / name / "kaizen.yaml").write_text(f"name: {name}\n")
    monkeypatch.chdir(tmp_path)
    several = Settings(_env_file=None, home=tmp_path)
    assert several.project is None
    with pytest.raises(ConfigError, match=r"2 projects \(alpha, beta\): choose one"):
        several.require_project()
    by_name = Settings(_env_file=None, home=tmp_path, project="beta")
    assert by_name.project_dir == (projects / "beta").resolve()
    assert by_name.lake_root == str((projects / "beta").resolve() / "data" / "lake")
    assert by_name.params_file == (projects / "beta").resolve() / "params.yaml"
    assert (
        Settings(_env_file=None, home=tmp_path, project=str(projects / "alpha")).project == "alpha"
    )
    monkeypatch.chdir(projects / "alpha")
    assert Settings(_env_file=None, home=tmp_path).project == "alpha"
    with pytest.raises(ConfigError, match=r"project 'gamma': no kaizen\.yaml"):
        Settings(_env_file=None, home=tmp_path, project="gamma")
    stack = Settings(_env_file=None, home=tmp_path, project="beta", profile="stack")
    assert stack.lake_root == "s3://kaizen/beta/lake"
    shared = Settings(_env_file=None, home=tmp_path, project="beta", lake_root="/lakes/{project}")
    assert shared.lake_root == "/lakes/beta"
    assert shared.for_project("alpha").lake_root == "/lakes/alpha"
    assert shared.for_project("alpha").params_file.parent.name == "alpha"
    assert shared.as_environ()["KAIZEN_LAKE_ROOT"] == "/lakes/{project}"
