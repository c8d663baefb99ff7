"""JSON logs carry the run and its context; logging never breaks the program."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from kaizen.logs import SafeStreamHandler, bound_context, configure_logging, run_identity
from kaizen.stages.result import StageResult, timed

AIRFLOW = {
    "AIRFLOW_CTX_DAG_ID": "dataops_daily",
    "AIRFLOW_CTX_DAG_RUN_ID": "scheduled__2026-01-02T00:00:00+00:00",
    "AIRFLOW_CTX_TASK_ID": "ingest",
    "AIRFLOW_CTX_TRY_NUMBER": "2",
}


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """configure_logging's handler, pointed at a buffer; the root logger restored after."""
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    buffer = io.StringIO()
    configure_logging("INFO", "json")
    [handler] = [h for h in root.handlers if getattr(h, "_kaizen", False)]
    handler.setStream(buffer)
    yield buffer
    root.handlers[:] = before[0]
    root.setLevel(before[1])


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_carry_the_airflow_ids_and_bound_context(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in AIRFLOW.items():
        monkeypatch.setenv(key, value)
    with bound_context(model_version="7", entity=1042):
        logging.getLogger("somelib.store").warning(
            "library line %s", "x"
        )  # a library not quieted elsewhere
        structlog.get_logger("kaizen.serving").info("scored", probability=0.12)
        with timed(StageResult("ingest", "orders 2026-01-02"), logging.getLogger("kaizen.t")):
            pass
    library, ours, summary = lines(stream)
    for line in (library, ours, summary):
        assert line["dag_id"] == "dataops_daily" and line["task_id"] == "ingest"
        assert line["run_id"] == AIRFLOW["AIRFLOW_CTX_DAG_RUN_ID"] and line["try_number"] == "2"
        assert line["model_version"] == "7" and line["entity"] == 1042
        assert line["ts"].endswith("Z")
    assert (library["logger"], library["level"], library["msg"]) == (
        "somelib.store",
        "warning",
        "library line x",
    )
    assert ours["probability"] == 0.12 and ours["msg"] == "scored"
    assert summary["stage"] == "ingest" and summary["status"] == "ok"
    assert summary["msg"].startswith("ingest orders 2026-01-02: ok, rows in=0")


def test_a_cli_process_has_one_generated_run_id(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in AIRFLOW:
        monkeypatch.delenv(key, raising=False)
    logging.getLogger("kaizen.a").info("one")
    logging.getLogger("kaizen.b").info("two")
    first, second = lines(stream)
    assert first["run_id"] == second["run_id"] == run_identity()["run_id"]
    assert first["run_id"].startswith("cli-") and "dag_id" not in first
    with bound_context(run_id="backfill-42"):
        assert run_identity()["run_id"] == "backfill-42"


def test_unserialisable_values_and_bad_arguments_still_log(stream: io.StringIO) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    log = logging.getLogger("kaizen.robust")
    log.info("object %s", "ok", extra={"blob": object(), "hostile": Hostile(), "when": {1, 2}})
    log.info("needs a number %d", "not a number")
    kept, degraded = lines(stream)
    assert kept["msg"] == "object ok" and kept["hostile"] == "<unprintable Hostile>"
    assert kept["blob"].startswith("<object object")
    assert degraded["msg"] == "needs a number %d" and "TypeError" in degraded["log_error"]
    assert degraded["run_id"]


def test_a_closed_stream_falls_back_to_stderr_and_never_raises_into_the_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed, fallback = io.StringIO(), io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "__stderr__", fallback)
    handler = SafeStreamHandler(closed)
    log = logging.getLogger("kaizen.closed")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        result = StageResult("featurize", "2026-01-02")
        with timed(result, log):
            result.rows_out = 5
        assert result.status == "ok"
        assert "featurize 2026-01-02: ok, rows in=0 out=5" in fallback.getvalue()
    finally:
        log.removeHandler(handler)
        log.propagate = True


def test_a_bad_format_or_level_falls_back_and_says_so(capsys: pytest.CaptureFixture) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    try:
        configure_logging("LOUD", "xml")
        logging.getLogger("kaizen.fallback").info("still here")
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])
    err = capsys.readouterr().err
    assert "unknown log format 'xml', using text" in err
    assert "unknown log level 'LOUD', using INFO" in err
    assert "kaizen.fallback: still here" in err


def test_a_registering_stage_names_its_model_version(stream: io.StringIO) -> None:
    result = StageResult("register", "model")
    with timed(result, logging.getLogger("kaizen.register")):
        result.details = {"version": 4, "alias": "candidate"}
    [summary] = lines(stream)
    assert summary["model_version"] == "4" and summary["stage"] == "register"


def test_a_stage_failing_with_an_unprintable_error_still_reraises_it(
    stream: io.StringIO,
) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("cannot print")

    result = StageResult("evaluate", "model")
    with pytest.raises(Unprintable), timed(result, logging.getLogger("kaizen.evaluate")):
        raise Unprintable
    [summary] = lines(stream)
    assert result.status == summary["status"] == "failed"
