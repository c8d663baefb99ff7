"""The validation gate: suites from declarations + rules, quarantine with reasons, replay."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from credit_risk.simulate import Fault, simulate
from support import CREDIT_RISK, REPO, small_world

from kaizen.config import Settings
from kaizen.errors import BatchQuarantined, ConfigError, InputError, KaizenError
from kaizen.lake import Partition
from kaizen.quality.quarantine import waiting
from kaizen.quality.rules import load_rules
from kaizen.quality.suites import build, check_or_fail, compile_raw_suite, suite_version
from kaizen.runtime import Runtime
from kaizen.stages.ingest import ingest
from kaizen.stages.replay import replay
from kaizen.stages.validate import validate

SOURCES = ("customers", "orders", "payments")


def run_day(rt: Runtime, ds: str) -> dict[str, str]:
    """ingest -> validate for every source, as the DAG does; the outcome per source."""
    outcome = {}
    for source in SOURCES:
        try:
            ingest(source, ds, rt)
            validate(source, ds, rt)
            outcome[source] = "silver"
        except BatchQuarantined as exc:
            outcome[source] = f"quarantined: {exc}"
    return outcome


def days(start: dt.date, n: int) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(n)]


def test_committed_suites_match_declarations_and_rules() -> None:
    rt = Runtime(Settings(_env_file=None, home=REPO))
    check_or_fail(rt.settings, rt.catalog)  # fails when someone forgot `kaizen suites`


def test_suite_follows_the_declaration(rt: Runtime) -> None:
    spec = rt.catalog.get("payments")
    suite = compile_raw_suite(spec, load_rules(CREDIT_RISK / "expectations" / "rules", spec))
    kinds = {(e["type"], e["kwargs"].get("column")) for e in suite["expectations"]}
    assert ("expect_table_columns_to_match_set", None) in kinds
    assert ("expect_column_values_to_be_unique", "invoice_id") in kinds
    assert ("expect_column_values_to_not_be_null", "customer_id") in kinds
    assert ("expect_column_values_to_not_be_null", "paid_ts") not in kinds  # nullable, no limit
    assert ("expect_column_values_to_be_between", "updated_at") in kinds  # event time in its day
    assert ("expect_table_row_count_to_be_between", None) in kinds
    # Deterministic: the same inputs give the same document and version.
    again = compile_raw_suite(spec, load_rules(CREDIT_RISK / "expectations" / "rules", spec))
    assert again == suite and suite_version(again) == suite_version(suite)


def test_stale_suites_are_detected(tmp_path: Path) -> None:
    shutil.copytree(
        CREDIT_RISK / "expectations",
        tmp_path / "expectations",
        ignore=shutil.ignore_patterns("uncommitted"),
    )
    settings = Settings(
        _env_file=None,
        home=REPO,
        expectations_dir=tmp_path / "expectations",
        gx_uncommitted_dir=tmp_path / "gx",
    )
    rules = tmp_path / "expectations" / "rules" / "orders.json"
    data = json.loads(rules.read_text())
    data["columns"]["amount"]["max"] = 99999
    rules.write_text(json.dumps(data))
    rt = Runtime(settings)
    with pytest.raises(ConfigError, match=r"out of date.*raw_orders"):
        check_or_fail(settings, rt.catalog)
    assert build(settings, rt.catalog) == ["expectations/raw_orders.json"]
    check_or_fail(settings, rt.catalog)


def test_bad_rule_names_the_key(tmp_path: Path) -> None:
    shutil.copytree(CREDIT_RISK / "expectations" / "rules", tmp_path / "rules")
    data = json.loads((tmp_path / "rules" / "orders.json").read_text())
    data["columns"]["amount_usd"] = {"min": 0}
    (tmp_path / "rules" / "orders.json").write_text(json.dumps(data))
    rt = Runtime(Settings(_env_file=None, home=REPO))
    with pytest.raises(ConfigError, match=r"columns\.amount_usd: not a declared column of orders"):
        load_rules(tmp_path / "rules", rt.catalog.get("orders"))


def test_pass_publishes_clean_sorted_silver(rt: Runtime) -> None:
    simulate(small_world(days=2), rt.settings.raw_root)
    assert run_day(rt, "2026-01-02") == dict.fromkeys(SOURCES, "silver")
    for source in SOURCES:
        bronze = rt.lake.manifest(Partition("bronze", source, "2026-01-02"))
        silver = rt.lake.manifest(Partition("silver", source, "2026-01-02"))
        assert silver["rows"] == bronze["rows"] == silver["rows_landed"]
        assert (
            silver["validation"]["success"] and silver["source_sha256"] == bronze["source_sha256"]
        )
        assert silver["columns"] == list(rt.catalog.get(source).columns)
    orders = rt.lake.read_table(Partition("silver", "orders", "2026-01-02")).to_pandas()
    assert orders.order_ts.is_monotonic_increasing


FAULTS = {
    # kind: (day, source, the expectation that must be named)
    "nulls": ("2026-01-05", "orders", "expect_column_values_to_not_be_null(customer_id)"),
    "unit": ("2026-01-06", "payments", "expect_column_values_to_be_between(amount)"),
    "renamed_column": ("2026-01-07", "orders", "expect_table_columns_to_match_set"),
    "missing_column": ("2026-01-08", "customers", "expect_table_columns_to_match_set"),
    "duplicates": ("2026-01-09", "orders", "expect_column_values_to_be_unique(order_id)"),
    "carriage_returns": (
        "2026-01-10",
        "customers",
        "expect_column_values_to_not_match_regex(region)",
    ),
    "empty": ("2026-01-11", "payments", "expect_file_to_be_non_empty"),
    "malformed": ("2026-01-12", "orders", "expect_rows_to_have_the_header_field_count"),
}


@pytest.mark.faults
@pytest.mark.slow
def test_fault_matrix_every_kind_is_caught_quarantined_and_named(rt: Runtime) -> None:
    faults = [Fault.parse(f"{d}:{s}:{k}") for k, (d, s, _) in FAULTS.items()]
    simulate(small_world(days=13), rt.settings.raw_root, faults=faults)
    outcomes = {ds: run_day(rt, ds) for ds in days(dt.date(2026, 1, 1), 13)}
    expected_bad = {(d, s) for d, s, _ in FAULTS.values()}
    for ds, per_source in outcomes.items():
        for source, outcome in per_source.items():
            assert (outcome != "silver") == ((ds, source) in expected_bad), (ds, source, outcome)
    assert sorted(waiting(rt.lake, list(SOURCES))) == sorted((s, d) for d, s in expected_bad)
    for kind, (ds, source, expectation) in FAULTS.items():
        held = Partition("quarantine", source, ds)
        summary = rt.lake.read_attachment(held, "summary.txt").decode()
        assert expectation in summary, (kind, summary)
        assert expectation in outcomes[ds][source], (kind, outcomes[ds][source])
        assert json.loads(rt.lake.read_attachment(held, "validation.json"))["success"] is False
        # Moved, not copied: nothing downstream can read it.
        assert not rt.lake.exists(Partition("bronze", source, ds))
        assert not rt.lake.exists(Partition("silver", source, ds))
    # No row lost: silver + quarantine == rows landed, for every batch.
    for ds in outcomes:
        for source in SOURCES:
            manifests = [
                rt.lake.manifest(Partition(layer, source, ds)) for layer in ("silver", "quarantine")
            ]
            landed = [m["rows_landed"] for m in manifests if m]
            kept = sum(m["rows"] for m in manifests if m and m["layer"] == "silver")
            held = sum(m["rows_landed"] for m in manifests if m and m["layer"] == "quarantine")
            assert len(landed) == 1 and kept + held == landed[0]
    # Raw files are never touched by the gate.
    assert (Path(rt.settings.raw_root) / "payments" / "2026-01-11.csv").read_bytes() == b""


@pytest.mark.slow
def test_sixty_clean_days_with_the_shock_pass(rt: Runtime) -> None:
    shock = dt.date(2026, 2, 10)
    simulate(small_world(days=60, customers=400, shock_date=shock), rt.settings.raw_root)
    failures = {
        ds: o
        for ds in days(dt.date(2026, 1, 1), 60)
        for o in [run_day(rt, ds)]
        if set(o.values()) != {"silver"}
    }
    assert failures == {}
    assert waiting(rt.lake, list(SOURCES)) == []


def test_replay_after_a_corrected_drop_is_landed(rt: Runtime) -> None:
    p = small_world(days=3)
    simulate(p, rt.settings.raw_root, faults=[Fault.parse("2026-01-03:orders:unit")])
    with pytest.raises(BatchQuarantined, match="expect_column_values_to_be_between"):
        ingest("orders", "2026-01-03", rt)
        validate("orders", "2026-01-03", rt)
    with pytest.raises(BatchQuarantined):  # replaying the same bad drop changes nothing
        replay("orders", "2026-01-03", rt)
    assert rt.lake.exists(Partition("quarantine", "orders", "2026-01-03"))
    simulate(p, rt.settings.raw_root, overwrite=True)  # upstream re-lands the corrected file
    result = replay("orders", "2026-01-03", rt)
    assert result.rows_out > 0
    assert rt.lake.exists(Partition("silver", "orders", "2026-01-03"))
    assert not rt.lake.exists(Partition("quarantine", "orders", "2026-01-03"))
    assert replay("orders", "2026-01-03", rt).status == "skipped"  # idempotent


def test_replay_after_the_suite_changed_in_review(tmp_path: Path) -> None:
    shutil.copytree(
        CREDIT_RISK / "expectations",
        tmp_path / "expectations",
        ignore=shutil.ignore_patterns("uncommitted"),
    )
    settings = Settings(
        _env_file=None,
        home=REPO,
        raw_root=str(tmp_path / "raw"),
        lake_root=str(tmp_path / "lake"),
        expectations_dir=tmp_path / "expectations",
        gx_uncommitted_dir=tmp_path / "gx",
        gx_data_docs="failures",
    )
    rules = tmp_path / "expectations" / "rules" / "orders.json"
    original = rules.read_text()
    strict = json.loads(original)
    strict["columns"]["category"]["in_set"] = ["sofa"]  # a reviewer was far too strict
    rules.write_text(json.dumps(strict))
    rt = Runtime(settings)
    build(settings, rt.catalog)
    simulate(small_world(days=2), settings.raw_root)
    ingest("orders", "2026-01-02", rt)
    with pytest.raises(BatchQuarantined, match="expect_column_values_to_be_in_set"):
        validate("orders", "2026-01-02", rt)
    rules.write_text(original)  # the rule is fixed in review
    from kaizen.quality.context import _open

    _open.cache_clear()
    build(settings, rt.catalog)
    _open.cache_clear()
    replay("orders", "2026-01-02", rt)
    assert rt.lake.exists(Partition("silver", "orders", "2026-01-02"))
    assert waiting(rt.lake, ["orders"]) == []


def test_unparseable_drop_needs_a_new_file_to_replay(rt: Runtime) -> None:
    simulate(
        small_world(days=2),
        rt.settings.raw_root,
        faults=[Fault.parse("2026-01-02:orders:malformed")],
    )
    with pytest.raises(BatchQuarantined, match="expect_rows_to_have_the_header_field_count"):
        ingest("orders", "2026-01-02", rt)
    with pytest.raises(InputError, match="land a corrected file first"):
        replay("orders", "2026-01-02", rt)


def test_validate_needs_bronze_and_nothing_to_replay_is_an_error(rt: Runtime) -> None:
    with pytest.raises(InputError, match="run `kaizen ingest"):
        validate("orders", "2026-01-02", rt)
    with pytest.raises(InputError, match="nothing to replay"):
        replay("orders", "2026-01-02", rt)
    with pytest.raises(KaizenError, match="unknown source"):
        validate("refunds", "2026-01-02", rt)


def test_every_validation_gets_data_docs(settings: Settings) -> None:
    rt = Runtime(settings.model_copy(update={"gx_data_docs": "every"}))
    simulate(small_world(days=2), rt.settings.raw_root)
    ingest("orders", "2026-01-02", rt)
    result = validate("orders", "2026-01-02", rt)
    page = result.details["docs"]
    assert page and page.startswith("file://") and Path(page[len("file://") :]).exists()
    assert (rt.settings.gx_uncommitted_dir / "data_docs" / "local_site" / "index.html").exists()


PARITY_FAULTS = ["nulls", "unit", "renamed_column", "duplicates", None]


@pytest.mark.spark
@pytest.mark.slow
def test_pandas_and_spark_engines_reach_the_same_verdict(rt: Runtime, spark: object) -> None:
    faults = [Fault.parse(f"2026-01-0{i + 2}:orders:{k}") for i, k in enumerate(PARITY_FAULTS) if k]
    simulate(small_world(days=6), rt.settings.raw_root, faults=faults)
    for i, kind in enumerate(PARITY_FAULTS):
        ds = f"2026-01-0{i + 2}"
        ingest("orders", ds, rt)
        bronze = rt.lake.read_table(Partition("bronze", "orders", ds))
        verdicts = {}
        for engine in ("pandas", "spark"):
            from kaizen.quality import gate
            from kaizen.stages.validate import as_batch, expectation_parameters

            batch = as_batch(rt, Partition("bronze", "orders", ds), bronze, engine)
            params = expectation_parameters(rt, rt.catalog.get("orders"), ds)
            verdicts[engine] = gate.run(
                rt.settings, "raw_orders", engine, batch, params, run_name=f"parity-{ds}"
            )
        pandas, sparky = verdicts["pandas"], verdicts["spark"]
        assert pandas.success == sparky.success == (kind is None), kind
        assert {f.label for f in pandas.failures} == {f.label for f in sparky.failures}, kind
        assert pandas.evaluated == sparky.evaluated
    # And the stage itself runs on Spark end to end.
    result = validate("orders", "2026-01-06", rt, engine="spark")
    assert result.status == "ok" and rt.lake.exists(Partition("silver", "orders", "2026-01-06"))


def test_cli_validate_exits_non_zero_with_one_line(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from kaizen.cli import app
    from kaizen.config import get_settings

    simulate(
        small_world(days=2),
        rt.settings.raw_root,
        faults=[Fault.parse("2026-01-02:orders:duplicates")],
    )
    for key, value in {
        "RAW_ROOT": rt.settings.raw_root,
        "LAKE_ROOT": rt.settings.lake_root,
        "GX_UNCOMMITTED_DIR": str(rt.settings.gx_uncommitted_dir),
        "GX_DATA_DOCS": "failures",
    }.items():
        monkeypatch.setenv(f"KAIZEN_{key}", value)
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "--ds", "2026-01-02"]).exit_code == 0
    ok = runner.invoke(app, ["validate", "--ds", "2026-01-02", "--source", "payments"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["validate", "--ds", "2026-01-02", "--source", "orders"])
    assert bad.exit_code == 4
    last = bad.output.strip().splitlines()[-1]
    assert (
        last.startswith("error: orders 2026-01-02 quarantined:")
        and "expect_column_values_to_be_unique(order_id)" in last
    )
    engine = runner.invoke(app, ["validate", "--ds", "2026-01-02", "--engine", "dask"])
    assert engine.exit_code == 2 and "unknown engine 'dask'" in engine.output
    get_settings.cache_clear()
