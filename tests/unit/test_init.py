"""`kaizen init NAME`: the template copied with the name substituted, suites compiled."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaizen.errors import ConfigError, InputError
from kaizen.project.scaffold import PLACEHOLDER, add_lake_remote, scaffold, template_dir


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scaffold("acme_visits", tmp_path_factory.mktemp("home") / "projects")


def test_the_template_ships_with_the_package() -> None:
    root = template_dir()
    assert (root / "kaizen.yaml").is_file() and (root / "src" / PLACEHOLDER).is_dir()
    assert (root / "feature_repo" / ".feastignore").is_file()


def test_the_files_exist_with_the_name(made: Path) -> None:
    for rel in (
        "kaizen.yaml",
        "params.yaml",
        "dvc.yaml",
        "feature_repo/feature_store.yaml",
        "feature_repo/.feastignore",
        "expectations/rules/accounts.json",
        "expectations/expectations/raw_accounts.json",  # compiled by init
        "expectations/checkpoints/features_account_activity__pandas.json",
        "dags/dataops_daily.py",
        "src/acme_visits/generate.py",
        "src/acme_visits/features/pandas_engine.py",
        "tests/acme_visits_helpers.py",
        "tests/test_acme_visits_project.py",
    ):
        assert (made / rel).is_file(), rel
    assert "name: acme_visits" in (made / "kaizen.yaml").read_text()
    assert "project: acme_visits" in (made / "feature_repo" / "feature_store.yaml").read_text()
    assert "remote://acme_visits_lake/features" in (made / "dvc.yaml").read_text()


def test_no_placeholder_is_left(made: Path) -> None:
    left = [
        str(p.relative_to(made))
        for p in made.rglob("*")
        if PLACEHOLDER in str(p.relative_to(made))
        or (p.is_file() and p.suffix != ".pyc" and PLACEHOLDER in p.read_text(errors="replace"))
    ]
    assert not left


@pytest.mark.parametrize("bad", ["Acme", "acme-visits", "1acme", "acme__x", "", "a b", "kaizen"])
def test_a_bad_name_is_one_line(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InputError) as err:
        scaffold(bad, tmp_path / "projects")
    assert "\n" not in str(err.value) and "project name" in str(err.value)
    assert not (tmp_path / "projects").exists()


def test_a_taken_name_is_one_line(made: Path) -> None:
    before = sorted(p.name for p in made.parent.iterdir())
    with pytest.raises(ConfigError, match="already exists") as err:
        scaffold("acme_visits", made.parent)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in made.parent.iterdir()) == before


def test_the_lake_remote_is_added_once(tmp_path: Path) -> None:
    config = tmp_path / ".dvc" / "config"
    config.parent.mkdir()
    config.write_text("[core]\n    remote = local\n")
    folder = tmp_path / "projects" / "acme_visits"
    assert add_lake_remote("acme_visits", folder, tmp_path)
    assert not add_lake_remote("acme_visits", folder, tmp_path)
    text = config.read_text()
    assert text.count("['remote \"acme_visits_lake\"']") == 1
    assert "url = ../projects/acme_visits/data/lake" in text


def test_the_cli_prints_the_next_steps(tmp_path: Path) -> None:
    from kaizen.cli import app

    result = CliRunner().invoke(app, ["init", "acme_two", "--dir", str(tmp_path / "projects")])
    assert result.exit_code == 0, result.output
    assert "kaizen -p acme_two check" in result.output
    assert "make demo PROJECT=acme_two" in result.output
    again = CliRunner().invoke(app, ["init", "acme_two", "--dir", str(tmp_path / "projects")])
    assert again.exit_code == 2 and "already exists" in again.output
