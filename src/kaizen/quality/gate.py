"""Run a committed checkpoint on one batch and turn GX's result into a verdict people can read.

A verdict names every failed expectation with its column, how many rows broke it and a few
example values, so the quarantine summary says what is wrong without opening GX.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from kaizen.config import Settings
from kaizen.logs import get_logger
from kaizen.quality.context import open_context
from kaizen.quality.suites import checkpoint_name

log = get_logger(__name__)


@dataclass
class Failure:
    expectation: str
    column: str | None
    rule: str
    unexpected_count: int | None = None
    element_count: int | None = None
    examples: list[Any] = field(default_factory=list)
    observed: Any = None
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.expectation}({self.column})" if self.column else self.expectation

    def describe(self) -> str:
        if self.error:
            return f"{self.label} [{self.rule}]: could not run: {self.error}"
        parts = [f"{self.label} [{self.rule}]"]
        if self.unexpected_count is not None and self.element_count:
            share = self.unexpected_count / self.element_count
            parts.append(
                f"{self.unexpected_count} of {self.element_count} rows ({share:.1%}) unexpected"
            )
        if self.examples:
            parts.append("e.g. " + ", ".join(_show(v) for v in self.examples[:5]))
        if self.observed is not None and not self.examples:
            parts.append(f"observed {_show(self.observed)}")
        return ": ".join(parts[:1]) + (": " + "; ".join(parts[1:]) if len(parts) > 1 else "")


@dataclass
class Verdict:
    suite: str
    engine: str
    success: bool
    evaluated: int
    failures: list[Failure]
    result: dict[str, Any]
    docs_url: str | None
    seconds: float

    def headline(self) -> str:
        if self.success:
            return f"{self.suite} passed {self.evaluated} expectations"
        return f"{len(self.failures)} of {self.evaluated} expectations failed: " + "; ".join(
            f.label for f in self.failures
        )

    def summary(self, title: str) -> str:
        lines = [
            f"{title}: {'PASSED' if self.success else 'FAILED'} {self.suite} on {self.engine} "
            f"({self.evaluated} expectations, {len(self.failures)} failed)"
        ]
        lines += [f"- {f.describe()}" for f in self.failures]
        if self.docs_url:
            lines.append(f"Data Docs: {self.docs_url}")
        return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "null"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _failure(item: Any) -> Failure:
    config = item.expectation_config
    kwargs = config.kwargs or {}
    column = (
        kwargs.get("column")
        or (",".join(kwargs["column_list"]) if kwargs.get("column_list") else None)
        or (f"{kwargs['column_A']}>{kwargs['column_B']}" if kwargs.get("column_A") else None)
    )
    result = item.result or {}
    observed = result.get("observed_value")
    mismatched = (result.get("details") or {}).get("mismatched")
    if mismatched:  # the column-set check says what is missing and what is new
        observed = f"missing {mismatched.get('missing') or []}, unexpected {mismatched.get('unexpected') or []}"
    return Failure(
        expectation=config.type,
        column=column,
        rule=(config.meta or {}).get("rule", ""),
        unexpected_count=result.get("unexpected_count"),
        element_count=result.get("element_count"),
        examples=list(result.get("partial_unexpected_list") or [])[:10],
        observed=observed,
        error=_error(item.exception_info or {}),
    )


def _error(info: dict[str, Any]) -> str | None:
    """GX reports errors either flat or per metric; return the first message, one line."""
    entries = (
        [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    )
    for entry in entries:
        if entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "error").strip().splitlines()
            return (message[-1] if message else "error")[:200]
    return None


# Enough examples to recognise a fault, few enough to keep validation.json small.
DETAILS = {"result_format": "SUMMARY", "partial_unexpected_count": 10}


def _with_details(checkpoint: Any, batch: Any, parameters: dict[str, Any], run_id: Any) -> Any:
    """The checkpoint's validation again, with SUMMARY results; (result identifier, result)."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    [definition] = checkpoint.validation_definitions
    validation = definition.run(
        checkpoint_id=checkpoint.id,
        batch_parameters={"dataframe": batch},
        expectation_parameters=parameters,
        result_format=DETAILS,
        run_id=run_id,
    )
    identifier = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=definition.suite.name),
        run_id=run_id,
        batch_identifier=validation.batch_id,
    )
    return identifier, validation


def run(
    settings: Settings,
    suite: str,
    engine: str,
    batch: Any,
    parameters: dict[str, Any],
    run_name: str,
) -> Verdict:
    """Run the checkpoint `<suite>__<engine>` on `batch` (a pandas or Spark DataFrame)."""
    from great_expectations.core.run_identifier import RunIdentifier

    context = open_context(settings)
    checkpoint = context.checkpoints.get(checkpoint_name(suite, engine))
    started = time.perf_counter()
    outcome = checkpoint.run(
        batch_parameters={"dataframe": batch},
        expectation_parameters=parameters,
        run_id=RunIdentifier(run_name=run_name),
    )
    identifier, validation = next(iter(outcome.run_results.items()))
    if not validation.success:
        # The checkpoint runs pass/fail only (half the cost of SUMMARY on large batches); a
        # failed batch, rare, runs again for its unexpected counts and example values.
        identifier, validation = _with_details(
            checkpoint, batch, parameters, RunIdentifier(run_name=run_name)
        )
    seconds = time.perf_counter() - started
    # Data Docs policy is ours: rendering costs ~1.4 s a page (GX recompiles its templates).
    render = settings.gx_data_docs == "every" or not validation.success
    failures = [_failure(r) for r in validation.results if not r.success]
    # Errors first: a missing column makes its other expectations fail to run at all.
    failures.sort(key=lambda f: (f.error is not None, f.expectation))
    docs = None
    if render:
        try:
            context.build_data_docs(resource_identifiers=[identifier])
            urls = context.get_docs_sites_urls(resource_identifier=identifier)
            docs = urls[0]["site_url"] if urls else None
        except Exception:  # Data Docs are a convenience; never fail the gate on them
            log.warning("Data Docs not built for %s", identifier, exc_info=True)
    return Verdict(
        suite=suite,
        engine=engine,
        success=bool(validation.success),
        evaluated=len(validation.results),
        failures=failures,
        result=json.loads(json.dumps(validation.to_json_dict(), default=str)),
        docs_url=docs,
        seconds=round(seconds, 3),
    )
