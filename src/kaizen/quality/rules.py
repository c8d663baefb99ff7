"""Business rules for raw sources: the reviewed JSON under `expectations/rules/`.

The declarations say what a column *is* (type, nullability, key); the rules say what its
values may plausibly be (ranges, category sets, null rates, volume). The two together
compile into the GX suite (`kaizen.quality.suites`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kaizen.errors import ConfigError
from kaizen.sources import Source


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnRule(_Rule):
    min: float | None = None
    max: float | None = None
    median: tuple[float, float] | None = None
    in_set: list[str] | None = None
    max_null_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = None


class RowCountRule(_Rule):
    """Today's row count must lie within ratios of the median of recent validated days."""

    history_days: Annotated[int, Field(ge=1, le=90)]
    min_history_days: Annotated[int, Field(ge=1)]
    min_ratio: Annotated[float, Field(ge=0.0, le=1.0)]
    max_ratio: Annotated[float, Field(ge=1.0)]
    slack_rows: Annotated[int, Field(ge=0)]  # low-volume days vary by a few rows
    min_rows: Annotated[int, Field(ge=0)]


class PairRule(_Rule):
    a: str
    b: str
    or_equal: bool = True
    why: str = ""


class RawRules(_Rule):
    source: str
    description: str = ""
    row_count: RowCountRule
    columns: dict[str, ColumnRule] = {}
    pairs: list[PairRule] = []
    single_line_text: bool = True

    @model_validator(mode="after")
    def _ranges(self) -> RawRules:
        for name, rule in self.columns.items():
            if rule.min is not None and rule.max is not None and rule.min > rule.max:
                raise ValueError(f"columns.{name}: min is above max")
            if rule.median is not None and rule.median[0] > rule.median[1]:
                raise ValueError(f"columns.{name}: median bounds are reversed")
        return self

    def check_against(self, spec: Source, where: str) -> None:
        """Every column a rule names must be declared, and nullable where a null rate is set."""
        for name, rule in self.columns.items():
            if name not in spec.columns:
                raise ConfigError(f"{where}: columns.{name}: not a declared column of {spec.name}")
            if rule.max_null_rate is not None and not spec.columns[name].nullable:
                raise ConfigError(
                    f"{where}: columns.{name}: max_null_rate set on a required column"
                )
        for pair in self.pairs:
            for column in (pair.a, pair.b):
                if column not in spec.columns:
                    raise ConfigError(
                        f"{where}: pairs: {column!r} is not a declared column of {spec.name}"
                    )


def load_rules(rules_dir: Path, spec: Source) -> RawRules:
    path = rules_dir / f"{spec.name}.json"
    where = f"expectations/rules/{path.name}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no business rules for source {spec.name!r}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON at line {exc.lineno}: {exc.msg}") from None
    try:
        rules = RawRules.model_validate(raw)
    except ValidationError as exc:
        from kaizen.errors import describe_validation_error

        raise ConfigError(describe_validation_error(exc, where)) from None
    if rules.source != spec.name:
        raise ConfigError(f"{where}: source is {rules.source!r}, expected {spec.name!r}")
    rules.check_against(spec, where)
    return rules


class FeatureRules(_Rule):
    """Plausible values of one feature table; columns not listed must simply be non-null."""

    view: str
    description: str = ""
    row_count: RowCountRule
    columns: dict[str, ColumnRule] = {}


def load_feature_rules(rules_dir: Path, view: str, columns: list[str]) -> FeatureRules:
    path = rules_dir / "features" / f"{view}.json"
    where = f"expectations/rules/features/{path.name}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no rules for feature view {view!r}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON at line {exc.lineno}: {exc.msg}") from None
    try:
        rules = FeatureRules.model_validate(raw)
    except ValidationError as exc:
        from kaizen.errors import describe_validation_error

        raise ConfigError(describe_validation_error(exc, where)) from None
    if rules.view != view:
        raise ConfigError(f"{where}: view is {rules.view!r}, expected {view!r}")
    for name in rules.columns:
        if name not in columns:
            raise ConfigError(
                f"{where}: columns.{name}: not a column of {view} (windows changed in params.yaml?)"
            )
    return rules
