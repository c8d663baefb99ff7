"""The scoreboard's world: its own params, its own stores, its faults and its truth.

Everything lives under one work directory (`data/kaizen-eval/` by default) so the run never
touches the project's lake, Feast stores or MLflow; its `params.yaml` is the project's with
the `simulate` section set from `scoreboard`, written into the work directory so the run
records exactly what it ran with.
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
from kaizen.simulate import Fault, World


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
        return self.params.simulate.start + dt.timedelta(days=self.board.history_days)

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
            out.append(Fault.parse(f"{self.ds(int(day))}:{source}:{kind}"))
        return out


def scenario(project_params: Path, work: Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """The project's params with the world the scoreboard asks for, saved under `work`.
    `overrides` replace `scoreboard` keys (a smaller world to try a change quickly)."""
    raw = yaml.safe_load(project_params.read_text())
    raw["scoreboard"].update({k: v for k, v in (overrides or {}).items() if v is not None})
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    base = load_params(work / "params.yaml")  # validates the overrides like any params
    b = base.scoreboard
    first = base.simulate.start  # day 1; the world starts `history_days` before it
    raw["explain"].update(
        sample_rows=b.explain_sample_rows, background_rows=b.explain_background_rows
    )
    raw["promote"]["budget"].update(
        latency_p99_ms=b.latency_p99_ms, latency_sample_rows=b.latency_sample_rows
    )
    raw["train"]["retrain_min_new_labels"] = b.retrain_min_new_labels
    raw["monitor"]["plots_every_days"] = b.monitor_plots_every_days
    raw["evaluate"]["permutation_repeats"] = b.permutation_repeats
    raw["register"]["onnx"]["enabled"] = b.onnx
    raw["simulate"].update(
        days=b.history_days + b.days,
        customers=b.customers,
        shock_date=(first + dt.timedelta(days=b.shock_day - 1)).isoformat(),
        start=(first - dt.timedelta(days=b.history_days)).isoformat(),
    )
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return Scenario(load_params(path), work)


def runtime(s: Scenario, home: Path) -> Runtime:
    """Stores under the work directory; the project's sources, suites, Feast repo and DAGs."""
    w = s.work
    return Runtime(
        Settings(
            _env_file=None,
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
    """invoice_id -> label as the world will have settled it `label_horizon_days` after the
    last day: the hindsight every score is judged on, never seen by the loop. Drawn from the
    simulator's clean frames (the landed files of bad days are corrupted on purpose), typed
    by the same declaration as the lake."""
    import pyarrow as pa

    from kaizen.simulate import to_csv_bytes
    from kaizen.stages.ingest import parse_raw
    from kaizen.stages.training_set import labelled_invoices
    from kaizen.transforms.views import as_of

    p = s.params.simulate.model_copy(
        update={"days": s.params.simulate.days + s.board.label_horizon_days}
    )
    spec = rt.catalog.get("payments")
    world = World(p)
    tables = [
        parse_raw(spec, to_csv_bytes(world.step()["payments"]), block_size_mb=16, url="truth")
        for _ in range(p.days)
    ]
    payments = pa.concat_tables(tables).to_pandas()
    end = as_of((p.start + dt.timedelta(days=p.days - 1)).isoformat())
    labelled = labelled_invoices(payments, end, s.params.featurize.late_after_days)
    return labelled.astype({"invoice_id": str}).drop_duplicates("invoice_id")
