"""The bench harness keeps working: a tiny run writes a well-formed report, a crash is a row.

Never asserts on timings: the numbers belong to `make bench`, not to the test suite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from support import REPO

REPORT_KEYS = {"row", "hot_path", "baseline", "measured_s", "baseline_s", "ratio", "goal", "pass"}


def _report(results: Path) -> tuple[dict, str]:
    (json_path,) = results.glob("*.json")
    return json.loads(json_path.read_text()), json_path.with_suffix(".md").read_text()


@pytest.fixture
def bench_main(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(REPO))  # `bench` is a top-level package of the repo
    from bench import __main__ as bench_main

    return bench_main


def test_a_crashing_benchmark_is_an_error_row_and_the_run_goes_on(
    bench_main: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bench.common import Row

    def crash(scale: object) -> list[Row]:
        raise RuntimeError("store unreachable\nsecond line")

    def fine(scale: object) -> list[Row]:
        return [Row("9", "log + register", "joblib.dump", 2.0, 1.0, "report")]

    monkeypatch.setattr(bench_main, "SUITES", {"ingest": crash, "mlflow": fine})
    monkeypatch.setattr(
        sys, "argv", ["bench", "--quick", "--rows", "1,9", "--results-dir", str(tmp_path)]
    )
    bench_main.main()  # returns normally: benchmarks never fail the build
    report, md = _report(tmp_path)
    rows = {r["row"]: r for r in report["rows"]}
    assert set(rows) == {"1", "9"}
    assert rows["1"]["pass"] is False and rows["1"]["ratio"] is None
    assert rows["1"]["error"] == "RuntimeError: store unreachable"
    assert rows["9"]["ratio"] == 2.0 and rows["9"]["pass"] is None
    assert (
        "| 1 | ingest | - | - | - | - | <= 1.5x | ERROR | RuntimeError: store unreachable |" in md
    )


def test_unknown_rows_are_refused(bench_main: object) -> None:
    with pytest.raises(SystemExit, match="unknown bench rows"):
        bench_main.selected("7,42", None)
    assert bench_main.selected("8, 7", None) == ["dags", "dataops"]


@pytest.mark.slow
@pytest.mark.airflow
def test_one_sample_dag_parse_bench_writes_a_well_formed_report(
    bench_main: object, tmp_path: Path
) -> None:
    from bench import bench_dags
    from bench.common import write_report

    write_report(bench_dags.run({"samples": 1}), {"dags": {"samples": 1}}, tmp_path)
    report, md = _report(tmp_path)
    dag_files = sorted((REPO / "projects" / "credit_risk" / "dags").glob("*.py"))
    rows = report["rows"]
    assert len(rows) == len(dag_files)
    for row, path in zip(rows, dag_files, strict=True):
        assert set(row) >= REPORT_KEYS and not row["error"], row
        assert row["row"].startswith("7") and path.name in row["hot_path"]
        assert row["measured_s"] > 0 and row["baseline_s"] > 0 and row["goal"] == "<= 1.2x"
        assert isinstance(row["pass"], bool)
    assert md.count("\n| 7") == len(dag_files)


def test_a_partial_rerun_keeps_the_other_rows_and_their_direction(
    bench_main: object, tmp_path: Path
) -> None:
    from bench.common import Row, write_report

    throughput = Row("4", "rows/s", "raw rows/s", 4.0, 1.0, ">= 0.5x", higher_is_better=True)
    write_report([throughput, Row("7a", "parse", "empty", 1.0, 1.0, "<= 1.2x")], {}, tmp_path)
    write_report([Row("7a", "parse", "empty", 3.0, 1.0, "<= 1.2x")], {}, tmp_path, partial=True)
    rows = {r["row"]: r for r in _report(tmp_path)[0]["rows"]}
    assert rows["4"]["ratio"] == 0.25 and rows["4"]["pass"] is False
    assert rows["7a"]["ratio"] == 3.0
    write_report([Row("1", "ingest", "pyarrow", 1.0, 1.0, "<= 1.5x")], {}, tmp_path)
    assert [r["row"] for r in _report(tmp_path)[0]["rows"]] == ["1"]  # a full run replaces


def test_the_report_shows_each_recorded_improvement_before_and_after(tmp_path: Path) -> None:
    from bench.common import Row, improvements

    recorded = tmp_path / "improvements.json"
    recorded.write_text(
        json.dumps(
            [
                {"row": "4-redis", "change": "c1", "before": 0.26, "before_measured": "then"},
                {"row": "3-redis", "change": "c2", "before": 5.0, "before_measured": "then"},
            ]
        )
    )
    rows = [
        Row(
            row="4-redis",
            hot_path="h",
            baseline="b",
            measured_s=1.0,
            baseline_s=2.0,
            goal=">= 0.5x",
            higher_is_better=True,
        )
    ]
    lines = improvements(rows, recorded)
    assert "| 4-redis | c1 | 0.26x (then) | 2.00x |" in lines  # rows/s: baseline / measured
    assert "| 3-redis | c2 | 5.00x (then) | not in this run |" in lines
    assert all(json.loads((REPO / "bench" / "improvements.json").read_text()))


def test_the_report_says_where_spark_overtakes_pandas_in_row_8() -> None:
    from bench.common import Row, markdown, scaling

    def run(size: int, engine: str, dag_s: float, stages_s: float) -> Row:
        extra = {
            "rows_per_day": size,
            "engine": engine,
            "stages_s": {"validate": stages_s * 0.75, "materialize": stages_s * 0.25},
        }
        return Row(
            f"8-{size}-{engine}", "dataops", "stages", dag_s, stages_s, "report", extra=extra
        )

    rows = [
        run(10_000, "pandas", 30.0, 20.0),
        run(10_000, "spark", 60.0, 40.0),
        run(1_000_000, "pandas", 200.0, 150.0),
        run(1_000_000, "spark", 150.0, 100.0),
        run(100_000, "pandas", 40.0, 30.0),  # Spark crashed at this size: not compared
        Row("8-100000-spark", "dataops", "-", 0.0, 0.0, "report", error="RuntimeError: x"),
    ]
    lines = scaling(rows)
    assert "| 10,000 | 30.0s | 60.0s | 2.00x | 20.0s | 40.0s | validate 30.0s, 2.00x |" in lines
    assert not any(line.startswith("| 100,000") for line in lines)
    assert lines[-1] == (
        "Spark overtakes pandas at 1,000,000 orders a day; Spark / pandas goes from 2.00x "
        "at 10,000 to 0.75x at 1,000,000 orders a day."
    )
    slower = [*rows[:3], run(1_000_000, "spark", 250.0, 200.0)]
    assert scaling(slower)[-1].startswith("Spark does not overtake pandas up to 1,000,000")
    assert scaling(rows[:1]) == []  # one engine only: nothing to compare
    assert "## Row 8 scaling" in markdown(rows, {"date": "d", "cpus": 2, "python": "3.11"})


def test_bench_children_get_the_launch_environment_not_what_suites_wrote_into_it(
    bench_main: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Opening a Feast store writes KAIZEN_PARAMS_FILE and the registry into os.environ; the
    serving suite's params file is gone by row 8, whose `dags test` then failed every task."""
    from bench import LAUNCH_ENV, bench_dataops

    monkeypatch.setenv("KAIZEN_PARAMS_FILE", str(tmp_path / "gone" / "params.yaml"))
    monkeypatch.setenv("FEAST_KAIZEN_REGISTRY", '{"path": "/gone/registry.db"}')
    env = bench_dataops._env(tmp_path, "dag", "spark", {"AIRFLOW_HOME": str(tmp_path)})
    assert env.get("KAIZEN_PARAMS_FILE") == LAUNCH_ENV.get("KAIZEN_PARAMS_FILE")
    assert env.get("FEAST_KAIZEN_REGISTRY") == LAUNCH_ENV.get("FEAST_KAIZEN_REGISTRY")
    assert env["KAIZEN_ENGINE"] == "spark" and env["AIRFLOW_HOME"] == str(tmp_path)
    assert env["KAIZEN_LAKE_ROOT"] == str(tmp_path / "dag" / "lake")
