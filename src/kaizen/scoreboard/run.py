"""`kaizen scoreboard` (`make kaizen-eval`): simulate, loop, judge, print, save."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kaizen.logs import get_logger
from kaizen.scoreboard import board, loop, oracle
from kaizen.scoreboard.scenario import runtime, scenario, truth

log = get_logger(__name__)


def run_scoreboard(
    home: Path,
    project: Path,
    work: Path,
    overrides: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> bool:
    """Run the whole scoreboard from a clean work directory; True when every target is met."""
    import warnings

    started = time.perf_counter()
    if work.exists():
        shutil.rmtree(work)  # a rerun starts from nothing: the same world, the same result
    s = scenario(project / "params.yaml", work, overrides or {})
    rt = runtime(s, home, project)
    warnings.simplefilter("ignore")
    b = s.board
    echo(
        f"scoreboard {rt.project.name}: {b.days} days, world {b.world}, shock on day {b.shock_day} "
        f"({s.shock_ds}), bad days {', '.join(b.bad_days)}; work dir {work}"
    )
    # The scored days with their bad days; the clean world runs on past them for the truth.
    s.generate(rt)
    days = loop.run(rt, s, work / "journal.jsonl", progress=echo)
    loop_seconds = time.perf_counter() - started

    echo("judging: truth labels, features at issue, the oracle ...")
    labels = truth(s, rt)
    frame = oracle.features_at_issue(rt, labels, s.dates[-1])
    post = s.dates[b.shock_day - 1 :]
    scores = oracle.oracle_scores(
        rt, frame, post, b.oracle_every_days, b.oracle_jobs, progress=log.info
    )
    rows, details = board.score(rt, s, days, frame, board.served_scores(rt), scores)
    total = time.perf_counter() - started
    header = (
        f"KaizenML scoreboard, {rt.project.name}: {b.days} days ({b.world}), shock on day "
        f"{b.shock_day}; loop {loop_seconds / 60:.1f} min, total {total / 60:.1f} min"
    )
    text = board.render(rows, header)
    echo(text)
    (work / "scoreboard.md").write_text(text + "\n")
    (work / "scoreboard.json").write_text(
        json.dumps(
            {"rows": [r.to_dict() for r in rows], "details": details, "minutes": total / 60},
            indent=2,
            default=str,
        )
        + "\n"
    )
    return all(r.passed is not False for r in rows)
