"""Compile declarations + business rules into GX suites, validation definitions, checkpoints.

`kaizen suites` writes them into the file context as committed JSON with deterministic ids,
so a review sees exactly what will run, and `kaizen suites --check` (run by the tests) fails
when a declaration or rule changed without the suites being rebuilt.

Values that depend on the batch (the partition's day, recent row counts) are suite
parameters (`{"$PARAMETER": ...}`) filled in at validation time.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from kaizen.config import Settings
from kaizen.errors import ConfigError
from kaizen.quality.context import ASSET, BATCH_DEFINITION, DATASOURCE, ENGINES, open_context
from kaizen.quality.rules import ColumnRule, FeatureRules, RawRules, load_feature_rules, load_rules
from kaizen.sources import Source, SourceCatalog

_NAMESPACE = uuid.UUID("6f1c7f2e-5a9b-4c1e-9d2a-6b0e4a1d3c70")
GENERATOR = "kaizen suites"


def P(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def raw_suite_name(source: str) -> str:
    return f"raw_{source}"


def feature_suite_name(view: str) -> str:
    return f"features_{view}"


def checkpoint_name(suite: str, engine: str) -> str:
    return f"{suite}__{engine}"


def _id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


class _Suite:
    """Collects expectations in order; `document()` gives the suite's JSON with stable ids."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: list[dict[str, Any]] = []

    def expect(self, kind: str, rule: str, why: str, **kwargs: Any) -> None:
        self.items.append({"type": kind, "kwargs": kwargs, "meta": {"rule": rule, "why": why}})

    def keys(self, columns: list[str]) -> None:
        if len(columns) == 1:
            self.expect(
                "expect_column_values_to_be_unique",
                "key",
                "the primary key identifies a row",
                column=columns[0],
            )
        else:
            self.expect(
                "expect_compound_columns_to_be_unique",
                "key",
                "the primary key identifies a row",
                column_list=list(columns),
            )

    def column_rules(self, rules: dict[str, ColumnRule]) -> None:
        for column, rule in rules.items():
            if rule.max_null_rate is not None and rule.max_null_rate < 1.0:
                self.expect(
                    "expect_column_values_to_not_be_null",
                    "null rate",
                    f"at most {rule.max_null_rate:.0%} missing",
                    column=column,
                    mostly=round(1 - rule.max_null_rate, 6),
                )
            if rule.min is not None or rule.max is not None:
                self.expect(
                    "expect_column_values_to_be_between",
                    "plausible range",
                    "values within the plausible range (catches unit changes)",
                    column=column,
                    min_value=rule.min,
                    max_value=rule.max,
                )
            if rule.median is not None:
                self.expect(
                    "expect_column_median_to_be_between",
                    "plausible range",
                    "typical values did not shift scale",
                    column=column,
                    min_value=rule.median[0],
                    max_value=rule.median[1],
                )
            if rule.in_set is not None:
                self.expect(
                    "expect_column_values_to_be_in_set",
                    "category",
                    "values come from the known set",
                    column=column,
                    value_set=list(rule.in_set),
                )

    def document(self, notes: str, meta: dict[str, Any]) -> dict[str, Any]:
        for index, item in enumerate(self.items):
            item["id"] = _id(
                self.name, str(index), item["type"], json.dumps(item["kwargs"], sort_keys=True)
            )
            item["severity"] = "critical"
        return {
            "name": self.name,
            "id": _id(self.name),
            "notes": notes or None,
            "meta": {"generated_by": GENERATOR, **meta},
            "expectations": self.items,
        }


def compile_raw_suite(spec: Source, rules: RawRules) -> dict[str, Any]:
    """The GX suite (as its JSON document) for one raw source."""
    suite = _Suite(raw_suite_name(spec.name))
    suite.expect(
        "expect_table_columns_to_match_set",
        "schema",
        "the drop has exactly the declared columns",
        column_set=list(spec.columns),
        exact_match=True,
    )
    suite.expect(
        "expect_table_row_count_to_be_between",
        "volume",
        "row count within bounds of recent validated days",
        min_value=P("row_count_min"),
        max_value=P("row_count_max"),
    )
    suite.keys(spec.primary_key)
    for column in spec.required_columns:
        suite.expect(
            "expect_column_values_to_not_be_null",
            "required",
            "declared not nullable",
            column=column,
        )
    suite.expect(
        "expect_column_values_to_be_between",
        "event time",
        "event times fall inside the partition's day",
        column=spec.event_time,
        min_value=P("day_start"),
        max_value=P("day_end"),
        strict_max=True,
    )
    suite.column_rules(rules.columns)
    if rules.single_line_text:
        for column in spec.columns_of_type("string"):
            suite.expect(
                "expect_column_values_to_not_match_regex",
                "single line",
                "no carriage return or newline inside a text field",
                column=column,
                regex="[\\r\\n]",
            )
    for pair in rules.pairs:
        suite.expect(
            "expect_column_pair_values_a_to_be_greater_than_b",
            "order of events",
            pair.why or "",
            column_A=pair.a,
            column_B=pair.b,
            or_equal=pair.or_equal,
            ignore_row_if="either_value_is_missing",
        )
    return suite.document(
        rules.description, {"source": spec.name, "declared_schema_hash": spec.schema_hash()}
    )


def compile_feature_suite(
    view: str, columns: dict[str, str], keys: list[str], rules: FeatureRules
) -> dict[str, Any]:
    """The GX suite for one feature table, from the Feast repo's schema and its rules."""
    from kaizen.featurestore.schema import EVENT_TIMESTAMP

    suite = _Suite(feature_suite_name(view))
    suite.expect(
        "expect_table_columns_to_match_set",
        "schema",
        "exactly the feature schema's columns",
        column_set=list(columns),
        exact_match=True,
    )
    suite.expect(
        "expect_table_row_count_to_be_between",
        "volume",
        "row count within bounds of recent days",
        min_value=P("row_count_min"),
        max_value=P("row_count_max"),
    )
    suite.keys(keys)
    nullable = {c for c, r in rules.columns.items() if r.max_null_rate is not None}
    for column in columns:
        if column not in nullable:
            suite.expect(
                "expect_column_values_to_not_be_null",
                "required",
                "every entity has a value",
                column=column,
            )
    suite.expect(
        "expect_column_values_to_be_between",
        "event time",
        "every row is stamped with the day's close",
        column=EVENT_TIMESTAMP,
        min_value=P("as_of"),
        max_value=P("as_of"),
    )
    suite.column_rules(rules.columns)
    return suite.document(rules.description, {"feature_view": view})


def suite_version(document: dict[str, Any]) -> str:
    """A short content hash of a suite: what the release manifest records."""
    content = {k: document[k] for k in ("name", "expectations")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]


def _validation_definition(
    suite: dict[str, Any], engine: str, datasource: dict[str, str]
) -> dict[str, Any]:
    name = checkpoint_name(suite["name"], engine)
    return {
        "name": name,
        "id": _id("validation_definition", name),
        "data": {
            "datasource": {"name": datasource["name"], "id": datasource["id"]},
            "asset": {"name": ASSET, "id": datasource["asset_id"]},
            "batch_definition": {"name": BATCH_DEFINITION, "id": datasource["batch_definition_id"]},
        },
        "suite": {"name": suite["name"], "id": suite["id"]},
    }


def _checkpoint(definition: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": definition["name"],
        "id": _id("checkpoint", definition["name"]),
        "validation_definitions": [{"name": definition["name"], "id": definition["id"]}],
        # Data Docs are built by Kaizen's gate (every validation, or only failures: a setting).
        "actions": [],
        # Pass/fail only: half the cost of SUMMARY on large batches. A failed batch is run
        # again with SUMMARY by Kaizen's gate (quality/gate.py) for counts and examples.
        "result_format": {"result_format": "BOOLEAN_ONLY"},
    }


def _datasources(context: Any) -> dict[str, dict[str, str]]:
    """Make sure both engines' datasources exist; return their ids."""
    found = {}
    for engine in ENGINES:
        name = DATASOURCE[engine]
        try:
            source = context.data_sources.get(name)
        except (KeyError, ValueError, LookupError):
            source = None
        if source is None:
            add = (
                context.data_sources.add_pandas
                if engine == "pandas"
                else context.data_sources.add_spark
            )
            source = add(name)
        asset = next(
            (a for a in source.assets if a.name == ASSET), None
        ) or source.add_dataframe_asset(ASSET)
        batch = next((b for b in asset.batch_definitions if b.name == BATCH_DEFINITION), None)
        if batch is None:
            batch = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
        found[engine] = {
            "name": name,
            "id": str(source.id),
            "asset_id": str(asset.id),
            "batch_definition_id": str(batch.id),
        }
    return found


def _rules_dir(settings: Settings) -> Path:
    return settings.expectations_dir / "rules"


def compile_all(settings: Settings, catalog: SourceCatalog) -> dict[str, dict[str, Any]]:
    """Every generated document, keyed by its path relative to the context root."""
    context = open_context(settings)
    datasources = _datasources(context)
    documents: dict[str, dict[str, Any]] = {}
    suites = [
        compile_raw_suite(spec, load_rules(_rules_dir(settings), spec))
        for spec in catalog.sources.values()
    ]
    suites += [
        compile_feature_suite(
            name,
            view.dtypes,
            list(view.join_keys),
            load_feature_rules(_rules_dir(settings), name, list(view.dtypes)),
        )
        for name, view in _feature_views(settings).items()
    ]
    for suite in suites:
        documents[f"expectations/{suite['name']}.json"] = suite
        for engine in ENGINES:
            definition = _validation_definition(suite, engine, datasources[engine])
            documents[f"validation_definitions/{definition['name']}.json"] = definition
            documents[f"checkpoints/{definition['name']}.json"] = _checkpoint(definition)
    return documents


def _feature_views(settings: Settings) -> dict[str, Any]:
    """Each feature view's schema, from the project's Feast repo."""
    from kaizen.featurestore.schema import repo_schema

    views = repo_schema(settings).views
    return {name: views[name] for name in sorted(views)}


def _render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _generated(path: Path) -> bool:
    """Was this file written by us (so it may be replaced or removed)?"""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    name = document.get("name", "")
    meta = document.get("meta") or {}
    return meta.get("generated_by") == GENERATOR or name.startswith(("raw_", "features_"))


def build(settings: Settings, catalog: SourceCatalog, *, check: bool = False) -> list[str]:
    """Write (or with `check`, compare) the generated files; return the paths that differ."""
    root = settings.expectations_dir
    documents = compile_all(settings, catalog)
    differ = []
    for rel, document in documents.items():
        path = root / rel
        text = _render(document)
        if not path.exists() or path.read_text() != text:
            differ.append(rel)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    for folder in ("expectations", "validation_definitions", "checkpoints"):
        for path in sorted((root / folder).glob("*.json")):
            rel = f"{folder}/{path.name}"
            if rel not in documents and _generated(path):
                differ.append(rel)
                if not check:
                    path.unlink()
    return differ


def check_or_fail(settings: Settings, catalog: SourceCatalog) -> None:
    stale = build(settings, catalog, check=True)
    if stale:
        raise ConfigError(
            f"GX suites are out of date with the declarations or rules ({', '.join(stale)}): run `kaizen suites` and commit"
        )
