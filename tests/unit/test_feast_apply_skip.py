"""`feast apply` runs only when the repo changed (`kaizen.featurestore.applied`).

Each test applies a private copy of the project's Feast repo into a fresh file registry and
SQLite online store, counting the calls to Feast's `apply_total`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support import FEAST_VARIABLES, make_settings

from kaizen.config import Settings
from kaizen.featurestore.applied import MARKER, read_marker
from kaizen.featurestore.store import apply, open_store

STORE_LOG = "kaizen.featurestore.store"


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings on a copy of the repo (its files can change), every store under tmp_path."""
    repo = tmp_path / "feature_repo"
    shutil.copytree(
        make_settings(tmp_path).feast_repo, repo, ignore=shutil.ignore_patterns("__pycache__")
    )
    saved = {key: os.environ.get(key) for key in FEAST_VARIABLES}
    try:
        yield make_settings(tmp_path, feast_repo=repo)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def feast_applies(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The repos Feast's `apply_total` was called on, in order."""
    import feast.repo_operations as ops

    calls: list[Path] = []
    real = ops.apply_total

    def counting(config: Any, repo_path: Path, *args: Any, **kwargs: Any) -> Any:
        calls.append(repo_path)
        return real(config, repo_path, *args, **kwargs)

    monkeypatch.setattr(ops, "apply_total", counting)
    return calls


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == STORE_LOG and r.levelno == level]


def test_a_second_apply_skips_and_feast_chatter_goes_to_the_debug_log(
    settings: Settings,
    feast_applies: list[Path],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG, logger=STORE_LOG)
    first = apply(settings)
    assert first.pop("skipped") is False and first["feature_views"] > 0
    [applied] = messages(caplog)
    assert "applied (fingerprint " in applied
    out = capsys.readouterr().out
    assert "Deploying infrastructure" not in out and "Applying changes" not in out
    assert any("Deploying infrastructure for" in m for m in messages(caplog, logging.DEBUG))
    marker = read_marker(settings.feast_data_dir)
    assert marker is not None and (settings.feast_data_dir / MARKER).is_file()
    assert marker["fingerprint"][:12] in applied and marker["counts"] == first

    caplog.clear()
    second = apply(settings)
    assert second.pop("skipped") is True and second == first
    assert len(feast_applies) == 1
    [skipped] = messages(caplog)
    assert skipped.startswith(
        f"feast apply: repo unchanged (fingerprint {marker['fingerprint'][:12]}), skipped"
    )


def test_a_changed_view_file_applies_again(settings: Settings, feast_applies: list[Path]) -> None:
    apply(settings)
    views = settings.feast_repo / "views.py"
    text, changed = re.subn(r'description="', 'description="changed: ', views.read_text(), count=1)
    assert changed == 1
    views.write_text(text)
    assert apply(settings)["skipped"] is False
    assert len(feast_applies) == 2
    store = open_store(settings)
    assert any(v.description.startswith("changed: ") for v in store.list_feature_views())
    assert apply(settings)["skipped"] is True and len(feast_applies) == 2


def test_force_applies_again(settings: Settings, feast_applies: list[Path]) -> None:
    apply(settings)
    assert apply(settings, force=True)["skipped"] is False
    assert len(feast_applies) == 2
    assert apply(settings)["skipped"] is True


def test_a_lost_or_changed_registry_applies_again(
    settings: Settings, feast_applies: list[Path]
) -> None:
    from feast import FeatureService

    apply(settings)
    (settings.feast_data_dir / "registry.db").unlink()
    assert apply(settings)["skipped"] is False and len(feast_applies) == 2

    store = open_store(settings)  # an object the repo does not define: apply removes it
    [view, *_] = store.list_feature_views()
    store.apply([FeatureService(name="stray", features=[view])])
    assert apply(settings)["skipped"] is False and len(feast_applies) == 3
    names = {s.name for s in open_store(settings).list_feature_services()}
    assert "stray" not in names

    (settings.feast_data_dir / "online.db").unlink()
    assert apply(settings)["skipped"] is False and len(feast_applies) == 4
    assert (settings.feast_data_dir / "online.db").is_file()


def test_kaizen_apply_force(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import kaizen.featurestore.store as store_module
    import kaizen.runtime
    from kaizen.cli import app

    calls: list[bool] = []

    def fake_apply(settings: Any, *, force: bool = False) -> dict[str, Any]:
        calls.append(force)
        return {"entities": 1, "feature_views": 3, "skipped": not force}

    monkeypatch.setattr(store_module, "apply", fake_apply)
    monkeypatch.setattr(kaizen.runtime, "Runtime", lambda: SimpleNamespace(settings=None))
    skipped = CliRunner().invoke(app, ["apply"])
    forced = CliRunner().invoke(app, ["apply", "--force"])
    assert skipped.exit_code == 0 and forced.exit_code == 0, skipped.output + forced.output
    assert calls == [False, True]
    assert "unchanged, apply skipped: 1 entities, 3 feature_views" in skipped.output
    assert "feast repo applied: 1 entities, 3 feature_views" in forced.output
