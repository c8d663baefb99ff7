"""The scoreboard's world: its own params, its own stores, its faults and its truth.

Everything lives under one work directory (`<project>/data/kaizen-eval/` by default) so the
run never touches the project's lake, Feast stores or MLflow; its `params.yaml` is the
project's with the loop's overrides from `scoreboard`, written into the work directory so
the run records exactly what it ran with. The world comes from the project's generator
(kaizen.yaml `generator`), twice: with the bad days into the loop's landing zone, and clean
(running on `label_horizon_days` further) for the truth and the on-call's corrected files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from kaizen.config import Settings
from kaizen.params import Params, ScoreboardParams, load_params
from kaizen.runtime import Runtime

ROW_ID = "row_id"  # the project's row id, as text, in every frame the board judges


@dataclass(frozen=True)
class Fault:
    ds: str
    source: str
    kind: str

    def __str__(self) -> str:
        return f"{self.ds}:{self.source}:{self.kind}"


@dataclass(frozen=True)
class Scenario:
    params: Params
    work: Path

    @property
    def board(self) -> ScoreboardParams:
        return self.params.scoreboard

    @property
    def start(self) -> dt.date:
        """Day 1: the first scored day. The world starts `history_days` earlier."""
        return self.board.start

    @property
    def world_start(self) -> dt.date:
        return self.start - dt.timedelta(days=self.board.history_days)

    def ds(self, day: int) -> str:
        """Day 1 is the first scored day; days <= 0 are the store's history."""
        return (self.start + dt.timedelta(days=day - 1)).isoformat()

    @property
    def history(self) -> list[str]:
        return [self.ds(d) for d in range(1 - self.board.history_days, 1)]

    def day(self, ds: str) -> int:
        return (dt.date.fromisoformat(ds) - self.start).days + 1

    @property
    def dates(self) -> list[str]:
        return [self.ds(d) for d in range(1, self.board.days + 1)]

    @property
    def shock_ds(self) -> str:
        return self.ds(self.board.shock_day)

    def faults(self) -> list[Fault]:
        out = []
        for text in self.board.bad_days:
            day, source, kind = text.split(":")
            out.append(Fault(self.ds(int(day)), source, kind))
        return out

    @property
    def clean_root(self) -> Path:
        """The world without faults, run on past the last day: truth and corrected files."""
        return self.work / "clean"

    def generate(self, rt: Runtime) -> None:
        """Land the scored world (with its bad days) and the clean one."""
        generate = rt.project.hook("generator")
        b = self.board
        shift = self.ds(b.shock_day)
        common = {"start": self.world_start, "shift_date": dt.date.fromisoformat(shift), **b.world}
        days = b.history_days + b.days
        generate(
            rt.project_params,
            rt.settings.raw_root,
            days=days,
            faults=[str(f) for f in self.faults()],
            **common,
        )
        generate(
            rt.project_params, str(self.clean_root), days=days + b.label_horizon_days, **common
        )

    def reland(self, rt: Runtime, fault: Fault) -> None:
        """The on-call lands the corrected file of a bad day (the clean world's, byte for
        byte): raw files are immutable, except by this deliberate overwrite."""
        spec = rt.catalog.get(fault.source)
        name = spec.raw_name(fault.ds)
        blob = (self.clean_root / fault.source / name).read_bytes()
        target = Path(rt.settings.raw_root) / fault.source / name
        tmp = target.with_name(f".{name}.fix")
        tmp.write_bytes(blob)
        tmp.replace(target)


def scenario(project_params: Path, work: Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """The project's params with the world the scoreboard asks for, saved under `work`.
    `overrides` replace `scoreboard` keys (a smaller world to try a change quickly)."""
    raw = yaml.safe_load(project_params.read_text())
    raw["scoreboard"].update({k: v for k, v in (overrides or {}).items() if v is not None})
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    b = load_params(work / "params.yaml").scoreboard  # validates the overrides like any params
    raw["explain"].update(
        sample_rows=b.explain_sample_rows, background_rows=b.explain_background_rows
    )
    raw["promote"]["budget"].update(cpu_p99_ms=b.cpu_p99_ms, sample_rows=b.budget_sample_rows)
    raw["train"]["retrain_min_new_labels"] = b.retrain_min_new_labels
    raw["monitor"]["plots_every_days"] = b.monitor_plots_every_days
    raw["evaluate"]["permutation_repeats"] = b.permutation_repeats
    raw["register"]["onnx"]["enabled"] = b.onnx
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return Scenario(load_params(path), work)


def runtime(s: Scenario, home: Path, project: Path) -> Runtime:
    """Stores under the work directory; the project's sources, suites, Feast repo and DAGs."""
    w = s.work
    return Runtime(
        Settings(
            _env_file=None,
            project=str(project),
            # Explicit: a user's KAIZEN_* stack settings must not point the run at real stores.
            profile="local",
            mlflow_tracking_uri="",
            mlflow_backend_store_uri="",
            mlflow_artifacts_destination="",
            engine="pandas",
            home=home,
            params_file=w / "params.yaml",
            raw_root=str(w / "raw"),
            lake_root=str(w / "lake"),
            gx_uncommitted_dir=w / "gx",
            gx_data_docs="failures",
            feast_data_dir=w / "feast",
            runtime_dir=w / "runtime",
            airflow_home=w / "airflow",
        )
    )


def truth(s: Scenario, rt: Runtime) -> pd.DataFrame:
    """Every labelled row as the world will have settled it `label_horizon_days` after the
    last day: the hindsight every score is judged on, never seen by the loop. From the clean
    world's files (the landed files of bad days are corrupted on purpose), typed by the same
    declaration as the lake, through the project's own label hook."""
    import pyarrow as pa

    from kaizen.labels import check_rows
    from kaizen.stages.ingest import parse_raw
    from kaizen.transforms.contract import as_of

    b = s.board
    days = b.history_days + b.days + b.label_horizon_days
    dates = [(s.world_start + dt.timedelta(days=i)).isoformat() for i in range(days)]
    frames = {}
    for source in rt.project.declaration.label.sources:
        spec = rt.catalog.get(source)
        tables = [
            parse_raw(
                spec,
                (s.clean_root / source / spec.raw_name(d)).read_bytes(),
                block_size_mb=16,
                url="truth",
            )
            for d in dates
        ]
        frames[source] = pa.concat_tables(tables).to_pandas()
    hook = rt.project.hook("label.hook")
    rows = check_rows(rt, hook(frames, as_of(dates[-1]), rt.project_params))
    row_id = rt.project.row_id
    rows = rows.rename(columns={row_id: ROW_ID}).astype({ROW_ID: str})
    return rows.drop_duplicates(ROW_ID).reset_index(drop=True)
