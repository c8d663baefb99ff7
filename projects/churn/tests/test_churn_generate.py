"""The generator: same arguments same bytes, a shock that only acts after its date, and
faults that corrupt one file the way their name says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from churn.clock import as_of
from churn.generate import DROPPED_COLUMN, SOURCES, generate
from churn.labels import no_event_within
from churn.params import ChurnParams, SimulateParams
from churn_helpers import START, dates, parse

PARAMS = ChurnParams()


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.csv"))}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate(PARAMS, str(tmp_path / "a"), start=START, days=6)
    generate(PARAMS, str(tmp_path / "b"), start=START, days=6)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    assert len(a.files) == 12 and set(a.rows) == set(SOURCES)
    assert a.files[0].endswith(f"/users/{START}.csv")


def test_other_seed_other_world(tmp_path: Path) -> None:
    generate(PARAMS, str(tmp_path / "a"), start=START, days=2)
    other = ChurnParams(simulate=SimulateParams(seed=8))
    generate(other, str(tmp_path / "b"), start=START, days=2)
    assert snapshot(tmp_path / "a") != snapshot(tmp_path / "b")


def test_a_longer_run_extends_a_shorter_one(tmp_path: Path) -> None:
    generate(PARAMS, str(tmp_path / "a"), start=START, days=3)
    generate(PARAMS, str(tmp_path / "b"), start=START, days=6)
    short, long = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert {k: long[k] for k in short} == short


def test_scale_and_shape(history) -> None:
    _, days, users, events = history
    per_day = events.groupby(events["event_ts"].dt.floor("D")).size()
    assert 1000 <= per_day.median() <= 2000
    assert users["user_id"].str.fullmatch(r"u\d{6}").all()
    assert set(users["plan"]) == {"free", "basic", "pro"}
    assert set(users["device"]) == {"ios", "android", "web"}
    assert users["country"].nunique() == 6
    assert (users["updated_at"] >= users["signup_ts"]).all()
    assert events["event_id"].is_unique and events["user_id"].isin(users["user_id"]).all()
    assert set(events["kind"]) == {"open", "view", "share", "purchase"}
    assert (events["duration_s"] > 0).all()
    assert len(users[users["updated_at"].dt.strftime("%Y-%m-%d") == days[0]]) >= 400


def test_the_shock_acts_only_after_its_date(tmp_path: Path) -> None:
    generate(PARAMS, str(tmp_path / "a"), start=START, days=20)
    generate(PARAMS, str(tmp_path / "b"), start=START, days=20, shift_date="2026-01-08")
    clean, shocked = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    before = [f"{s}/{ds}.csv" for s in SOURCES for ds in dates(START, 8)]
    assert all(clean[k] == shocked[k] for k in before)
    assert any(clean[k] != shocked[k] for k in clean if k not in before)


FAULT_DAY = "2026-01-03"


@pytest.mark.parametrize("source", SOURCES)
def test_faults_corrupt_one_file_only(tmp_path: Path, source: str) -> None:
    generate(PARAMS, str(tmp_path / "clean"), start=START, days=5)
    clean = snapshot(tmp_path / "clean")
    for kind in ("null_key", "missing_column", "duplicate_rows", "empty_file"):
        root = tmp_path / kind
        generate(PARAMS, str(root), start=START, days=5, faults=[(FAULT_DAY, source, kind)])
        dirty = snapshot(root)
        name = f"{source}/{FAULT_DAY}.csv"
        assert {k: v for k, v in dirty.items() if k != name} == {
            k: v for k, v in clean.items() if k != name
        }
        good, bad = parse(clean[name], source), dirty[name]
        if kind == "empty_file":
            assert bad == b""
            continue
        bad = parse(bad, source)
        if kind == "null_key":
            missing = bad["user_id"].isna()
            assert 0 < missing.sum() <= max(1, len(good) // 10) and len(bad) == len(good)
        elif kind == "missing_column":
            assert list(bad.columns) == [c for c in good.columns if c != DROPPED_COLUMN[source]]
        elif kind == "duplicate_rows":
            key = "user_id" if source == "users" else "event_id"
            assert len(bad) > len(good) and bad[key].duplicated().any()
            assert bad.drop_duplicates().reset_index(drop=True).equals(good)


def test_fault_strings_and_errors(tmp_path: Path) -> None:
    report = generate(
        PARAMS, str(tmp_path), start=START, days=2, faults=[f"{START}:events:empty_file"]
    )
    assert report.rows["events"] < sum(report.rows.values())
    assert (tmp_path / "events" / f"{START}.csv").read_bytes() == b""
    for fault in [
        (START, "events", "gibberish"),
        (START, "payments", "null_key"),
        ("2027-01-01", "events", "null_key"),
        (START, "events"),
    ]:
        with pytest.raises(ValueError):
            generate(PARAMS, str(tmp_path / "x"), start=START, days=2, faults=[fault])


def test_writes_through_fsspec(tmp_path: Path) -> None:
    """Any fsspec URL works: the in-memory store stands in for S3 here."""
    import fsspec

    report = generate(PARAMS, "memory://churn-raw", start=START, days=1)
    fs = fsspec.filesystem("memory")
    try:
        local = tmp_path / "local"
        generate(PARAMS, str(local), start=START, days=1)
        for source in SOURCES:
            blob = fs.cat_file(f"/churn-raw/{source}/{START}.csv")
            assert blob == (local / source / f"{START}.csv").read_bytes()
        assert report.files == [f"memory://churn-raw/{s}/{START}.csv" for s in SOURCES]
    finally:
        fs.rm("/churn-raw", recursive=True)


def test_churn_depends_on_plan(history) -> None:
    """Free users go quiet more often than pro users: the plan is worth learning from."""
    _, days, users, events = history
    labels = no_event_within({"events": events}, as_of(days[-1]), PARAMS)
    labels = labels[labels["final_ts"] <= as_of(days[-1])]
    plan = users.drop_duplicates("user_id", keep="last").set_index("user_id")["plan"]
    rate = labels.groupby(labels["user_id"].map(plan))["label"].mean()
    assert rate["free"] > rate["pro"]
    assert 0.02 < labels["label"].mean() < 0.15
    assert np.isfinite(rate).all()


def test_overrides_and_defaults(tmp_path: Path) -> None:
    """The hook as the platform calls it: simulate keys as overrides, start/days defaulted."""
    small = generate(PARAMS, str(tmp_path / "small"), days=2, users=50, seed=3)
    assert small.files[0].endswith(f"/users/{START}.csv")  # project.simulate.start
    assert 50 <= small.rows["users"] < 80  # the first drop holds every user, then signups
    with pytest.raises(ValueError):
        generate(PARAMS, str(tmp_path / "bad"), days=1, usres=50)  # a typo is refused


def test_raw_files_are_immutable(tmp_path: Path) -> None:
    from kaizen.errors import InputError

    generate(PARAMS, str(tmp_path), start=START, days=1)
    generate(PARAMS, str(tmp_path), start=START, days=1)  # the same bytes: fine
    with pytest.raises(InputError, match="immutable"):
        generate(PARAMS, str(tmp_path), start=START, days=1, users=10)
    generate(PARAMS, str(tmp_path), start=START, days=1, users=10, overwrite=True)
