"""Property-based fuzz of raw-file intake: arbitrary bytes, and arbitrary mutations of a
valid drop, never raise out of ingest + validate, always end in silver xor quarantine, and
never lose or duplicate a row. The row oracle is the standard library's csv reader on the
file's text (a UTF-8 BOM dropped, bad bytes replaced): records with the header's field
count are the parsable data rows."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raw_cases import clean_drop, fresh, land_and_gate, project_runtime

from kaizen.runtime import Runtime

pytestmark = pytest.mark.faults

SOURCE = "orders"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
NOT_TEXT = (b"\x1f\x8b", b"PK\x03\x04", b"PAR1", b"\x28\xb5\x2f\xfd", b"BZh")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return project_runtime(tmp_path_factory.mktemp("fuzz"), "credit_risk")


def parsable_rows(data: bytes) -> int | None:
    """Data records with the header's field count; None when the bytes are not text at all."""
    if data.startswith(NOT_TEXT):
        return None
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    if not records:
        return 0
    width = len(records[0])
    return sum(1 for r in records[1:] if len(r) == width)


def check(base: Runtime, data: bytes) -> None:
    rt = fresh(base)
    out = land_and_gate(rt, SOURCE, data)  # silver xor quarantine, one line, raw untouched
    expected = parsable_rows(data)
    if expected is None:
        assert out.where == "quarantine" and out.rows == 0 and out.raw_kept == data
        return
    assert out.rows == expected, (out.where, out.rows, expected, out.message)
    if out.where == "quarantine" and "file checks failed" in out.message:
        assert out.raw_kept == data


@FUZZ
@given(data=st.binary(max_size=3000))
def test_arbitrary_bytes(base: Runtime, data: bytes) -> None:
    check(base, data)


SPECIAL = st.sampled_from(
    [b",", b'"', b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"\xef\xbb\xbf", b";", b"\t", b"Z", b""]
)
EDIT = st.tuples(
    st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate_line", "swap_lines"]),
    st.floats(0, 1),
    st.floats(0, 1),
    st.one_of(SPECIAL, st.binary(min_size=1, max_size=8)),
)


def mutate(data: bytes, edits: list[tuple[str, float, float, bytes]]) -> bytes:
    for kind, a, b, payload in edits:
        at, to = sorted((int(a * len(data)), int(b * len(data))))
        lines = data.split(b"\n")
        i, j = int(a * (len(lines) - 1)), int(b * (len(lines) - 1))
        if kind == "insert":
            data = data[:at] + payload + data[at:]
        elif kind == "delete":
            data = data[:at] + data[to:]
        elif kind == "replace":
            data = data[:at] + payload + data[at + len(payload) :]
        elif kind == "truncate":
            data = data[:at]
        elif kind == "duplicate_line":
            data = b"\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
        else:
            lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
    return data


@FUZZ
@given(edits=st.lists(EDIT, min_size=1, max_size=4))
def test_mutations_of_a_valid_drop(base: Runtime, edits: list) -> None:
    check(base, mutate(clean_drop(base, SOURCE), edits))
