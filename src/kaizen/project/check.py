"""Is a project whole? What `kaizen check` runs, and what a writing stage runs first.

`preflight` is cheap (the declaration, the project's params, every hook imports and is
callable) and runs before a stage writes anything, so a broken declaration stops the first
ingest of a day, not its featurize. `check` adds what needs the Feast repo and the hooks'
outputs: the label hook's columns, the request schema against the feature service, the
slices, the freshness SLOs and whether the committed GX suites are up to date. Each problem
is one line naming the file and the key.
"""

from __future__ import annotations

from kaizen.errors import ConfigError, KaizenError
from kaizen.runtime import Runtime

HOOKS = (
    "features.transforms.pandas",
    "features.transforms.spark",
    "label.hook",
    "traffic.sampler",
    "generator",
    "params.model",
)
_PANDAS = {"int64": "int64", "float64": "float64", "string": "object", "bool": "bool"}


_PASSED: set[tuple[str, str]] = set()  # (project, params file) that passed in this process


def preflight(rt: Runtime) -> None:
    """The declaration, the project's params and every declared hook; the first problem
    raises. Once per project and params file per process: a daily run pays for it once."""
    key = (str(rt.settings.require_project()), str(rt.settings.params_file))
    if key in _PASSED:
        return
    problems = _cheap(rt)
    if problems:
        raise ConfigError(problems[0])
    _PASSED.add(key)


def _cheap(rt: Runtime) -> list[str]:
    problems = []
    declared = rt.project.declaration
    for key in HOOKS:
        ref = declared
        for part in key.split("."):
            ref = getattr(ref, part)
        if ref is None:
            continue
        try:
            rt.project.hook(key)
        except KaizenError as exc:
            problems.append(str(exc))
    if not problems:
        try:
            rt.project_params  # noqa: B018 - validated on access
        except KaizenError as exc:
            problems.append(str(exc))
    return problems


def check(rt: Runtime) -> list[str]:
    """Every problem found, one line each (empty: the project is whole)."""
    try:
        problems = _cheap(rt)
    except KaizenError as exc:
        return [str(exc)]
    if problems:
        return problems
    for step in (_schema, _label, _request, _slices, _freshness, _suites):
        try:
            problems += step(rt)
        except KaizenError as exc:
            problems.append(str(exc))
    return problems


def _schema(rt: Runtime) -> list[str]:
    """The repo's project name, and its views keyed by the declared entity."""
    schema = rt.schema
    problems = []
    repo = rt.settings.feast_repo / "feature_store.yaml"
    if schema.project != rt.project.name:
        problems.append(
            f"{repo}: project: {schema.project!r} must be the project's name {rt.project.name!r}"
        )
    keys = rt.project.declaration.entity.join_keys
    for name, view in schema.views.items():
        for key, dtype in view.join_keys.items():
            if key not in keys:
                problems.append(
                    f"{rt.settings.feast_repo}: view {name}: join key {key!r} is not the "
                    f"declared entity's ({sorted(keys)}; {rt.project.where('entity.join_keys')})"
                )
            elif _PANDAS[keys[key]] != dtype:
                problems.append(
                    f"{rt.project.where('entity.join_keys')}: {key} is {keys[key]} but the Feast "
                    f"repo's entity says {dtype}"
                )
    service = rt.params.training_set.feature_service
    schema.service(service)  # raises naming the services there are
    return problems


def _label(rt: Runtime) -> list[str]:
    """The label hook on empty inputs of its declared sources must give its columns."""
    from kaizen.labels import check_rows, empty_frame
    from kaizen.transforms.contract import as_of

    declared = rt.project.declaration.label
    frames = {source: empty_frame(rt, source) for source in declared.sources}
    try:
        rows = rt.project.hook("label.hook")(frames, as_of("2000-01-01"), rt.project_params)
    except Exception as exc:  # the project's code failing is the project's problem
        return [f"{rt.project.where('label.hook')}: fails on empty inputs: {exc!r}"]
    check_rows(rt, rows)
    return []


def _request(rt: Runtime) -> list[str]:
    """Every declared request field is one the feature service reads, and the other way."""
    service = rt.schema.service(rt.params.training_set.feature_service)
    declared = rt.project.declaration.request.fields
    where = rt.project.where("request.fields")
    problems = []
    for name in declared:
        if name not in service.request_fields:
            problems.append(
                f"{where}: {name}: the feature service {service.name} has no request source "
                f"with it (it reads {sorted(service.request_fields) or 'none'})"
            )
    for name in service.request_fields:
        if name not in declared:
            problems.append(
                f"{where}: {name} is read by the feature service {service.name}'s request "
                "source but not declared"
            )
    joins = rt.schema.service_join_keys(service.name)
    for key in joins:
        if key not in rt.project.join_keys:
            problems.append(
                f"{rt.project.where('entity.join_keys')}: the feature service joins on {key!r}"
            )
    return problems


def _slices(rt: Runtime) -> list[str]:
    """A slice is a column the training set has: a feature of the service or a request field."""
    service = rt.schema.service(rt.params.training_set.feature_service)
    columns = {f for names in service.views.values() for f in names}
    columns |= {f for names in service.on_demand.values() for f in names}
    columns |= set(rt.project.request_fields)
    return [
        f"{rt.project.where(f'slices.{name}')}: column {spec.column!r} is not in the training set"
        for name, spec in rt.project.declaration.slices.items()
        if spec.column not in columns
    ]


def _freshness(rt: Runtime) -> list[str]:
    views = set(rt.schema.views)
    slo = set(rt.params.monitor.freshness_slo_days)
    ttl = set(rt.params.feature_store.ttl_days)
    problems = []
    for key, have in (("monitor.freshness_slo_days", slo), ("feature_store.ttl_days", ttl)):
        if have != views:
            problems.append(
                f"{rt.settings.params_file}: {key} must name exactly the feature views "
                f"{sorted(views)} (missing {sorted(views - have)}, unknown {sorted(have - views)})"
            )
    return problems


def _suites(rt: Runtime) -> list[str]:
    from kaizen.quality.suites import check_or_fail

    check_or_fail(rt.settings, rt.catalog)
    return []
