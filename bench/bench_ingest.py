"""Row 1: ingest against raw `pyarrow.csv.read_csv` + `pyarrow.parquet.write_table` of the same file."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from credit_risk.simulate import simulate

from bench.common import PROJECT_NAME, Row, median_time, project_params
from kaizen.config import Settings
from kaizen.runtime import Runtime
from kaizen.stages.ingest import ingest

REPO = Path(__file__).resolve().parents[1]


def run(rows: int = 1_000_000) -> list[Row]:
    work = Path(tempfile.mkdtemp(prefix="kaizen-bench-ingest-"))
    base = project_params().simulate
    # One day whose orders file has about `rows` rows.
    world = base.model_copy(
        update={
            "start": dt.date(2026, 1, 1),
            "days": 1,
            "customers": max(rows // 2, 10),
            "orders_per_customer_day": 2.0,
        }
    )
    simulate(world, str(work / "raw"))
    raw = work / "raw" / "orders" / "2026-01-01.csv"
    rt = Runtime(
        Settings(
            _env_file=None,
            home=REPO,
            project=PROJECT_NAME,
            raw_root=str(work / "raw"),
            lake_root=str(work / "lake"),
        )
    )

    def baseline() -> None:
        pq.write_table(pacsv.read_csv(raw), work / "baseline.parquet")

    def stage() -> None:
        ingest("orders", "2026-01-01", rt)

    baseline_s = median_time(baseline)
    measured_s = median_time(stage)
    n = pq.ParquetFile(work / "baseline.parquet").metadata.num_rows
    size_mb = raw.stat().st_size / 2**20
    return [
        Row(
            row="1",
            hot_path=f"ingest orders, {n:,} rows ({size_mb:.0f} MB CSV)",
            baseline="pyarrow read_csv + write_table",
            measured_s=measured_s,
            baseline_s=baseline_s,
            goal="<= 1.5x",
            notes=f"{n / measured_s:,.0f} rows/s vs {n / baseline_s:,.0f} rows/s raw",
        )
    ]
