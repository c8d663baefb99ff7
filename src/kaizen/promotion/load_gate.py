"""The production gate's load test: the challenger, alone in a temporary prediction API, under a
short locust run; its /predict p99 must stay within `promote.load_test.p99_ms`, with no errors.

`run()` measures (the figures go into the decision record); `check()` judges the figures
alone, so a recorded decision replays without load-testing again.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from kaizen.errors import KaizenError
from kaizen.logs import get_logger
from kaizen.params import LoadTestParams
from kaizen.promotion.checks import Check
from kaizen.runtime import Runtime

log = get_logger(__name__)
NAME = "load_test"


def run(rt: Runtime, version: str) -> dict[str, Any]:
    """Load-test `version`; its figures, `{"skipped": why}` or `{"error": why}`."""
    from kaizen.loadtest.runner import run_locust, split_cores
    from kaizen.loadtest.target import pinned_api
    from kaizen.loadtest.traffic import write_traffic

    p = rt.params.promote.load_test
    if p is None or not p.enabled:
        log.info("load gate skipped for v%s: promote.load_test.enabled is false", version)
        return {"skipped": "promote.load_test.enabled is false in params.yaml"}
    cores = split_cores()
    try:
        with tempfile.TemporaryDirectory(prefix="kaizen-load-gate-") as tmp:
            traffic = Path(tmp) / "traffic.json"
            sample_requests = write_traffic(rt, traffic)
            with pinned_api(rt.settings, version, cores.server, p.startup_timeout_seconds) as (
                url,
                token,
            ):
                result = run_locust(url, token, traffic, p, cores.locust, cores.describe())
    except KaizenError as exc:
        log.warning("load gate for v%s could not run: %s", version, exc)
        return {"error": str(exc)}
    figures = {**result.to_dict(), "sample_requests": sample_requests, "p99_budget_ms": p.p99_ms}
    log.info("load gate v%s: %s", version, result.summary())
    return figures


def check(figures: dict[str, Any], p: LoadTestParams | None) -> Check:
    """Pass when the figures are within the budget (or the test was switched off)."""
    from kaizen.loadtest.runner import LoadResult, breaches

    if "skipped" in figures:
        return Check(NAME, True, f"skipped: {figures['skipped']}", figures)
    if "error" in figures or p is None:
        return Check(NAME, False, f"could not run: {figures.get('error')}", figures)
    fields = {f.name for f in dataclasses.fields(LoadResult)}
    result = LoadResult(**{k: v for k, v in figures.items() if k in fields})
    problems = breaches(result, p.p99_ms)
    if problems:
        return Check(NAME, False, "; ".join(problems) + f" ({result.summary()})", figures)
    return Check(
        NAME,
        True,
        f"/predict p99 {result.p99_ms:.0f} ms <= budget {p.p99_ms:g} ms, no errors "
        f"({result.summary()})",
        figures,
    )
