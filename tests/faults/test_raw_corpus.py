"""A corpus of bad raw files: each kind ends in silver or in quarantine with its reason, and no
row is lost or duplicated (rows in silver + rows held == the file's parsable data rows; for a
file nothing can be read from, its raw bytes are kept beside the quarantine's reason).

Every case mutates the clean simulated drop of one source for one day and runs the stage
functions (ingest, validate) on a fresh tiny lake; the project and GX context are shared."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from raw_cases import clean_drop, fresh, land_and_gate, project_runtime

from kaizen.runtime import Runtime

pytestmark = pytest.mark.faults


@dataclass(frozen=True)
class Drop:
    """A clean drop split into its header and data lines (no quoted fields in the clean ones)."""

    header: str
    lines: list[str]

    @property
    def n(self) -> int:
        return len(self.lines)

    def csv(
        self, lines: list[str] | None = None, header: str | None = None, end: str = "\n"
    ) -> bytes:
        rows = self.lines if lines is None else lines
        return "".join(f"{r}{end}" for r in [header or self.header, *rows]).encode()

    def column(self, name: str) -> int:
        return self.header.split(",").index(name)

    def set(self, row: int, name: str, value: str) -> list[str]:
        """The lines with one field replaced."""
        out = list(self.lines)
        fields = out[row].split(",")
        fields[self.column(name)] = value
        out[row] = ",".join(fields)
        return out

    def map_column(self, name: str, fn: Callable[[str], str]) -> list[str]:
        i = self.column(name)
        out = []
        for line in self.lines:
            fields = line.split(",")
            fields[i] = fn(fields[i])
            out.append(",".join(fields))
        return out


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    make: Callable[[Drop], tuple[bytes, int | None]]  # the file and its parsable data rows
    where: str  # silver or quarantine
    gist: str = ""  # a regex the one-line reason must match
    project: str = "credit_risk"
    declare: dict[str, Any] = field(default_factory=dict)


def same(d: Drop, data: bytes) -> tuple[bytes, int]:
    return data, d.n


def shifted(ts: str, hours: int) -> str:
    """The same instant written with a +HH:00 offset."""
    import datetime as dt

    t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00")) + dt.timedelta(hours=hours)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f"+{hours:02d}:00"


def parquet_bytes(d: Drop) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2]}), sink)
    return sink.getvalue()


def quoted(line: str) -> str:
    return ",".join(f'"{v}"' for v in line.split(","))


Q = "quarantine"
INTAKE = "file checks failed"
COLUMNS = "expect_table_columns_to_match_set"

CASES = [
    # -- encodings
    Case(
        "latin1_byte",
        "customers",
        lambda d: (d.csv(d.set(0, "region", "nörth")).replace("ö".encode(), b"\xf6"), d.n),
        Q,
        r"not valid utf-8 at byte \d+",
    ),
    Case(
        "utf16_undeclared",
        "orders",
        lambda d: (d.csv().decode().encode("utf-16"), None),
        Q,
        r"not valid utf-8 at byte 0 \(it starts with a UTF-16 byte-order mark",
    ),
    Case(
        "utf16_declared",
        "orders",
        lambda d: same(d, d.csv().decode().encode("utf-16")),
        "silver",
        declare={"encoding": "utf-16"},
    ),
    Case(
        "latin1_declared",
        "payments",
        lambda d: same(d, d.csv().decode().encode("latin-1")),
        "silver",
        declare={"encoding": "iso8859-1"},
    ),
    Case("utf8_bom", "orders", lambda d: same(d, b"\xef\xbb\xbf" + d.csv()), "silver"),
    Case(
        "binary_junk",
        "payments",
        lambda d: (random.Random(7).randbytes(3000), None),
        Q,
        r"not valid utf-8",
    ),
    Case(
        "gzip_named_csv",
        "orders",
        lambda d: (gzip.compress(d.csv(), mtime=0), None),
        Q,
        r"gzip-compressed bytes, not a CSV text file",
    ),
    Case("parquet_named_csv", "orders", lambda d: (parquet_bytes(d), None), Q, r"a Parquet file"),
    Case(
        "nul_in_field",
        "customers",
        lambda d: same(d, d.csv(d.set(1, "region", "no\x00rth"))),
        Q,
        r"1 NUL characters",
    ),
    # -- line endings
    Case("crlf", "orders", lambda d: same(d, d.csv(end="\r\n")), "silver"),
    Case("cr_only", "payments", lambda d: same(d, d.csv(end="\r")), "silver"),
    Case(
        "mixed_endings",
        "customers",
        lambda d: same(
            d,
            b"".join(
                (line + ("\r\n", "\n", "\r")[i % 3]).encode()
                for i, line in enumerate([d.header, *d.lines])
            ),
        ),
        "silver",
    ),
    Case("blank_lines", "orders", lambda d: same(d, d.csv().replace(b"\n", b"\n\n", 3)), "silver"),
    Case(
        "no_final_newline",
        "orders",
        lambda d: same(d, d.csv()[:-1]),
        Q,
        r"no line break at the end",
    ),
    Case(
        "no_final_newline_declared",
        "orders",
        lambda d: same(d, d.csv()[:-1]),
        "silver",
        declare={"final_newline": False},
    ),
    Case(
        "cut_mid_row_no_final_newline_declared",
        "orders",
        lambda d: (d.csv()[: -len(d.lines[-1]) // 2 - 1], d.n - 1),
        Q,
        r"do not have the header's",
        declare={"final_newline": False},
    ),
    # -- delimiters
    Case(
        "semicolons",
        "orders",
        lambda d: same(
            d, d.csv([r.replace(",", ";") for r in d.lines], d.header.replace(",", ";"))
        ),
        Q,
        COLUMNS,
    ),
    Case(
        "tabs",
        "payments",
        lambda d: same(
            d, d.csv([r.replace(",", "\t") for r in d.lines], d.header.replace(",", "\t"))
        ),
        Q,
        COLUMNS,
    ),
    # -- quoting
    Case(
        "all_fields_quoted",
        "orders",
        lambda d: same(d, d.csv([quoted(r) for r in d.lines], quoted(d.header))),
        "silver",
    ),
    Case(
        "unbalanced_quote_last_field",
        "orders",
        lambda d: (d.csv(d.set(2, "channel", '"store')), 3),
        Q,
        r"odd number of double quotes",
    ),
    Case(
        "unbalanced_quote_mid_row",
        "customers",
        lambda d: (d.csv(d.set(1, "region", '"north')), 1),
        Q,
        r"odd number of double quotes",
    ),
    Case(
        "quoted_newline",
        "customers",
        lambda d: same(d, d.csv(d.set(0, "region", '"no\nrth"'))),
        Q,
        r"expect_column_values_to_not_match_regex\(region\)",
    ),
    Case(
        "quoted_cr",
        "orders",
        lambda d: same(d, d.csv(d.set(0, "category", '"so\rfa"'))),
        Q,
        r"expect_column_values_to_not_match_regex\(category\)",
    ),
    Case(
        "quote_inside_unquoted_field",
        "orders",
        lambda d: same(d, d.csv(d.set(0, "category", 'so"fa'))),
        Q,
        r"odd number of double quotes",
    ),
    # -- time zones
    Case(
        "offsets_same_instant",
        "orders",
        lambda d: same(d, d.csv(d.map_column("order_ts", lambda t: shifted(t, 2)))),
        "silver",
    ),
    Case(
        "naive_timestamps",
        "orders",
        lambda d: same(d, d.csv(d.map_column("order_ts", lambda t: t.rstrip("Z")))),
        Q,
        r"column order_ts: \d+ values are not timestamp",
    ),
    Case(
        "garbage_timestamp",
        "payments",
        lambda d: same(d, d.csv(d.set(0, "issued_ts", "yesterday"))),
        Q,
        r"column issued_ts: 1 values are not timestamp",
    ),
    Case(
        "offset_outside_the_day",
        "orders",
        lambda d: same(d, d.csv(d.set(0, "order_ts", "2026-01-01T23:30:00-05:00"))),
        Q,
        r"expect_column_values_to_be_between\(order_ts\)",
    ),
    Case(
        "nanosecond_timestamps",
        "payments",
        lambda d: same(
            d, d.csv(d.map_column("updated_at", lambda t: t.replace("Z", ".123456789Z")))
        ),
        Q,
        r"column updated_at: \d+ values are not timestamp",
    ),
    # -- out of range and wrong types
    Case(
        "negative_amount",
        "orders",
        lambda d: same(d, d.csv(d.set(0, "amount", "-5.00"))),
        Q,
        r"expect_column_values_to_be_between\(amount\)",
    ),
    Case(
        "amount_in_cents",
        "payments",
        lambda d: same(d, d.csv(d.map_column("amount", lambda a: str(round(float(a) * 100))))),
        Q,
        r"amount",
    ),
    Case(
        "int_overflow_key",
        "orders",
        lambda d: same(d, d.csv(d.set(0, "order_id", "9" * 20))),
        Q,
        r"column order_id: 1 values are not int64",
    ),
    Case(
        "text_in_number",
        "customers",
        lambda d: same(d, d.csv(d.set(3, "annual_income", "n/a"))),
        Q,
        r"column annual_income: 1 values are not float64",
    ),
    Case(
        "impossible_date",
        "customers",
        lambda d: same(d, d.csv(d.set(0, "signup_date", "2026-02-30"))),
        Q,
        r"column signup_date: 1 values are not date",
    ),
    Case(
        "unknown_category",
        "orders",
        lambda d: same(d, d.csv(d.set(0, "channel", "fax"))),
        Q,
        r"expect_column_values_to_be_in_set\(channel\)",
    ),
    # -- keys
    Case(
        "exact_duplicate_row",
        "orders",
        lambda d: (d.csv([*d.lines, d.lines[0]]), d.n + 1),
        Q,
        r"expect_column_values_to_be_unique\(order_id\)",
    ),
    Case(
        "duplicate_key",
        "payments",
        lambda d: (d.csv([*d.lines, d.set(0, "amount", "1.00")[0]]), d.n + 1),
        Q,
        r"expect_column_values_to_be_unique\(invoice_id\)",
    ),
    Case(
        "null_key",
        "orders",
        lambda d: same(d, d.csv(d.set(1, "order_id", ""))),
        Q,
        r"expect_column_values_to_not_be_null\(order_id\)",
    ),
    Case(
        "null_event_time",
        "customers",
        lambda d: same(d, d.csv(d.set(1, "updated_at", ""))),
        Q,
        r"expect_column_values_to_not_be_null\(updated_at\)",
    ),
    # -- schema drift
    Case(
        "renamed_column",
        "orders",
        lambda d: same(d, d.csv(header=d.header.replace("amount", "amount_usd"))),
        Q,
        COLUMNS,
    ),
    Case(
        "missing_column",
        "payments",
        lambda d: same(
            d, d.csv([r.rsplit(",", 1)[0] for r in d.lines], d.header.rsplit(",", 1)[0])
        ),
        Q,
        COLUMNS,
    ),
    Case(
        "extra_column",
        "orders",
        lambda d: same(d, d.csv([r + ",x" for r in d.lines], d.header + ",note")),
        Q,
        COLUMNS,
    ),
    Case(
        "reordered_columns",
        "customers",
        lambda d: same(
            d,
            d.csv(
                [",".join(reversed(r.split(","))) for r in d.lines],
                ",".join(reversed(d.header.split(","))),
            ),
        ),
        "silver",
    ),
    Case(
        "header_case_changed",
        "orders",
        lambda d: same(d, d.csv(header=d.header.upper())),
        Q,
        COLUMNS,
    ),
    Case(
        "duplicate_header_name",
        "orders",
        lambda d: same(d, d.csv(header=d.header.replace("channel", "category"))),
        Q,
        r"duplicate or empty column names \['category'\]",
    ),
    Case(
        "empty_header_name",
        "orders",
        lambda d: same(d, d.csv(header=d.header.replace("channel", ""))),
        Q,
        r"duplicate or empty column names",
    ),
    # -- sizes and truncation
    Case("zero_bytes", "payments", lambda d: (b"", 0), Q, r"raw file is empty"),
    Case("whitespace_only", "orders", lambda d: (b" \n\r\n\t\n", 0), Q, r"raw file is empty"),
    Case("header_only", "orders", lambda d: (d.csv([]), 0), Q, r"no rows \(header only\)"),
    Case("header_only_allowed", "customers", lambda d: (d.csv([]), 0), "silver"),
    Case(
        "header_only_now_refused",
        "customers",
        lambda d: (d.csv([]), 0),
        Q,
        r"does not allow an empty drop",
        declare={"allow_empty": False},
    ),
    Case("one_row", "orders", lambda d: (d.csv(d.lines[:1]), 1), "silver"),
    Case(
        "past_the_size_cap",
        "orders",
        lambda d: (d.csv(), None),
        Q,
        r"more than the declared cap of 0.0001 MB",
        declare={"max_mb": 0.0001},
    ),
    Case(
        "truncated_mid_row",
        "orders",
        lambda d: (d.csv()[: d.csv().index(d.lines[3].encode()) + 3], 3),
        Q,
        r"no line break at the end.*header's 6 fields",
    ),
    Case(
        "truncated_in_last_field",
        "payments",
        lambda d: (d.csv()[:-4], d.n),
        Q,
        r"no line break at the end",
    ),
    Case(
        "short_and_long_rows",
        "orders",
        lambda d: (d.csv([*d.lines[:2], "1,2,3", *d.lines[2:], d.lines[0] + ",extra"]), d.n),
        Q,
        r"2 records do not have the header's 6 fields",
    ),
    # -- the second example: string keys, other sources
    Case(
        "churn_latin1",
        "events",
        lambda d: (d.csv(d.set(0, "kind", "opén")).replace("é".encode(), b"\xe9"), d.n),
        Q,
        r"not valid utf-8",
        project="churn",
    ),
    Case(
        "churn_events_header_only",
        "events",
        lambda d: (d.csv([]), 0),
        Q,
        r"no rows \(header only\)",
        project="churn",
    ),
    Case("churn_users_header_only", "users", lambda d: (d.csv([]), 0), "silver", project="churn"),
    Case(
        "churn_null_key",
        "events",
        lambda d: same(d, d.csv(d.set(0, "user_id", ""))),
        Q,
        r"expect_column_values_to_not_be_null\(user_id\)",
        project="churn",
    ),
    Case(
        "churn_naive_timestamps",
        "users",
        lambda d: same(d, d.csv(d.map_column("updated_at", lambda t: t.replace("Z", "")))),
        Q,
        r"column updated_at: \d+ values are not timestamp",
        project="churn",
    ),
    Case("churn_crlf", "events", lambda d: same(d, d.csv(end="\r\n")), "silver", project="churn"),
]


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Runtime]:
    root = tmp_path_factory.mktemp("raw-corpus")
    return {p: project_runtime(root / p, p) for p in ("credit_risk", "churn")}


def drop(base: Runtime, source: str) -> Drop:
    clean = clean_drop(base, source)
    text = clean.decode()
    assert '"' not in text and clean.endswith(b"\n")
    header, *lines = text.splitlines()
    return Drop(header, lines)


def test_the_corpus_is_wide() -> None:
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    sources = {(c.project, c.source) for c in CASES}
    assert {("credit_risk", s) for s in ("customers", "orders", "payments")} <= sources
    assert {("churn", s) for s in ("users", "events")} <= sources


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_bad_raw_file_ends_in_silver_or_quarantine_and_loses_no_row(
    case: Case, bases: dict[str, Runtime]
) -> None:
    base = bases[case.project]
    d = drop(base, case.source)
    assert d.n >= 5  # enough rows for every mutation
    data, parsable = case.make(d)
    rt = fresh(base, case.declare, case.source)
    out = land_and_gate(rt, case.source, data)
    assert out.where == case.where, out.message
    if case.gist:
        assert re.search(case.gist, out.message), out.message
    if out.where == Q:
        assert out.manifest["reason"] and "\n" not in out.manifest["reason"]
        assert "FAILED" in _summary(rt, case.source).splitlines()[0]
    if INTAKE in out.message:
        capped = len(data) > rt.catalog.get(case.source).max_bytes
        assert out.raw_kept == (None if capped else data)  # the bytes, beside what was read
        assert out.manifest["source_sha256"] == hashlib.sha256(data).hexdigest()
    if parsable is None:  # no row of the file is readable as it is: its bytes are kept
        assert out.where == Q and out.raw_kept in (data, None)
        assert ("raw bytes are kept" if out.raw_kept else "over the cap") in _summary(
            rt, case.source
        )
    else:
        assert out.rows == parsable, (out.rows, parsable, out.message)


def _summary(rt: Runtime, source: str) -> str:
    from kaizen.lake import Partition

    return rt.lake.read_attachment(
        Partition("quarantine", source, "2026-01-01"), "summary.txt"
    ).decode()


def test_the_clean_drops_pass(bases: dict[str, Runtime]) -> None:
    for project, sources in (
        ("credit_risk", ("customers", "orders", "payments")),
        ("churn", ("users", "events")),
    ):
        base = bases[project]
        for source in sources:
            out = land_and_gate(fresh(base), source, clean_drop(base, source))
            assert out.where == "silver", out.message


def test_status_lists_every_quarantined_batch_and_replay_works_on_each(
    bases: dict[str, Runtime],
) -> None:
    from kaizen import pipeline_status
    from kaizen.errors import InputError
    from kaizen.lake import Partition
    from kaizen.stages.replay import replay

    base = bases["credit_risk"]
    strict = fresh(base, {"allow_empty": False}, "customers")
    orders, payments = drop(base, "orders"), drop(base, "payments")
    bad = {
        "orders": orders.csv(orders.set(0, "category", "sofé")).replace("é".encode(), b"\xe9"),
        "payments": payments.csv(payments.set(0, "amount", "-1.00")),
        "customers": drop(base, "customers").csv([]),
    }
    for source, data in bad.items():
        assert land_and_gate(strict, source, data).where == Q
    rows = {r["source"]: r for r in pipeline_status.quarantined(strict)["rows"]}
    assert set(rows) == set(bad)
    assert rows["orders"]["stage"] == "ingest" and "not valid utf-8" in rows["orders"]["reason"]
    assert rows["payments"]["stage"] == "validate" and "amount" in rows["payments"]["reason"]
    assert "does not allow an empty drop" in rows["customers"]["reason"]
    report = {part: {"rows": []} for part in pipeline_status.PARTS}
    report["last_good"]["from"], report["freshness"]["as_of"] = "-", "-"
    lines = pipeline_status.render({**report, "quarantine": pipeline_status.quarantined(strict)})
    assert sum("refused at" in line for line in lines) == 3

    with pytest.raises(InputError, match="land a corrected file first"):
        replay("orders", "2026-01-01", strict)  # nothing changed: nothing to do but say so
    raw = Path(strict.settings.raw_root)
    for source in ("orders", "payments"):  # upstream re-lands corrected drops
        (raw / source / "2026-01-01.csv").write_bytes(clean_drop(base, source))
        assert replay(source, "2026-01-01", strict).status == "ok"
    # The declaration was the fix: an empty day is valid for customers after all.
    relaxed = fresh(base, lake_of=strict)
    assert replay("customers", "2026-01-01", relaxed).status == "ok"
    assert pipeline_status.quarantined(strict)["rows"] == []
    for source in bad:
        assert strict.lake.exists(Partition("silver", source, "2026-01-01"))


def test_in_a_dag_task_a_bad_drop_fails_at_once_instead_of_retrying(
    bases: dict[str, Runtime],
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from kaizen.dags.tasks import run_stage
    from kaizen.stages.ingest import ingest

    base = bases["credit_risk"]
    rt = fresh(base)
    raw = Path(rt.settings.raw_root) / "orders" / "2026-01-01.csv"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"\xff\xfe" + clean_drop(base, "orders"))  # retrying cannot change it
    with pytest.raises(AirflowFailException, match="not valid utf-8 at byte 0"):
        run_stage(ingest, "orders", "2026-01-01", rt)


def test_summaries_give_counts_and_examples_at_the_gate_and_at_intake(
    bases: dict[str, Runtime],
) -> None:
    import json

    from kaizen.lake import Partition

    base = bases["credit_risk"]
    rt = fresh(base)
    orders, customers = drop(base, "orders"), drop(base, "customers")
    land_and_gate(rt, "orders", orders.csv(orders.set(0, "amount", "-5.00")))
    land_and_gate(rt, "customers", customers.csv(customers.set(2, "annual_income", "n/a")))
    for source, expectation, count, example in (
        ("orders", "expect_column_values_to_be_between", 1, -5.0),
        ("customers", "expect_values_to_convert_to_declared_types", 1, "n/a"),
    ):
        part = Partition("quarantine", source, "2026-01-01")
        result = json.loads(rt.lake.read_attachment(part, "validation.json"))
        [failed] = [
            r["result"]
            for r in result["results"]
            if not r["success"] and r["expectation_config"]["type"] == expectation
        ]
        assert failed["unexpected_count"] == count
        assert failed["partial_unexpected_list"] == [example]
        summary = rt.lake.read_attachment(part, "summary.txt").decode()
        assert f"{count} " in summary and f"e.g. {example!r}" in summary
