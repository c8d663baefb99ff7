"""The feature schema, read from the project's Feast repo: its one home.

The feature views' columns and types, their join keys and TTLs, and what each feature
service asks for (views, on-demand views, request-time fields) are what the repo's Python
declares. Featurize casts to this, the feature suites check it, materialize moves it, the
staging gate and freshness monitoring read it, and the request schema is derived from it.
The repo is parsed (imported), not applied, so this needs no registry.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaizen.config import Settings
from kaizen.errors import ConfigError

EVENT_TIMESTAMP = "event_timestamp"
TIMESTAMP = "datetime64[us, UTC]"  # microseconds, like the lake: Spark cannot read nanoseconds
STRING = "object"  # what pyarrow and Spark hand back for text columns
_PANDAS = {
    "INT64": "int64",
    "INT32": "int64",
    "FLOAT": "float64",
    "DOUBLE": "float64",
    "STRING": STRING,
    "BOOL": "bool",
    "UNIX_TIMESTAMP": TIMESTAMP,
}


def pandas_dtype(value_type: Any, where: str) -> str:
    name = getattr(value_type, "name", str(value_type))
    try:
        return _PANDAS[name]
    except KeyError:
        raise ConfigError(f"{where}: Feast type {name} is not supported by Kaizen") from None


@dataclass(frozen=True)
class ViewSchema:
    name: str
    join_keys: dict[str, str]  # column -> pandas dtype
    features: dict[str, str]
    ttl: dt.timedelta

    @property
    def dtypes(self) -> dict[str, str]:
        """Every column of the view's published frame, in order."""
        return {**self.join_keys, EVENT_TIMESTAMP: TIMESTAMP, **self.features}


@dataclass(frozen=True)
class ServiceSchema:
    name: str
    views: dict[str, list[str]]  # stored view -> the features the service takes from it
    on_demand: dict[str, list[str]]  # on-demand view -> its outputs
    request_fields: dict[str, str]  # request-time input -> pandas dtype
    tags: dict[str, str]


@dataclass(frozen=True)
class RepoSchema:
    project: str
    views: dict[str, ViewSchema]
    services: dict[str, ServiceSchema]

    def view(self, name: str) -> ViewSchema:
        try:
            return self.views[name]
        except KeyError:
            raise ConfigError(
                f"no feature view {name!r} in the Feast repo (it has {sorted(self.views)})"
            ) from None

    def service(self, name: str) -> ServiceSchema:
        try:
            return self.services[name]
        except KeyError:
            raise ConfigError(
                f"no feature service {name!r} in the Feast repo (it has {sorted(self.services)})"
            ) from None

    def service_join_keys(self, name: str) -> list[str]:
        service = self.service(name)
        keys = (k for v in service.views for k in self.views[v].join_keys)
        return list(dict.fromkeys(keys))


def repo_schema(settings: Settings) -> RepoSchema:
    """The schema of the settings' Feast repo (parsed once per repo and environment)."""
    from kaizen.featurestore.environ import feast_environ, project_importable

    project_importable(settings)
    environ = feast_environ(settings)
    return _parse(str(Path(settings.feast_repo).resolve()), json.dumps(environ, sort_keys=True))


@functools.lru_cache(maxsize=8)
def _parse(repo: str, environ_json: str) -> RepoSchema:
    import yaml
    from feast.repo_operations import parse_repo

    from kaizen.featurestore.environ import in_repo, scoped_environ

    path = Path(repo)
    try:
        project = yaml.safe_load((path / "feature_store.yaml").read_text())["project"]
    except (OSError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}/feature_store.yaml: no project name ({exc})") from None
    with scoped_environ(json.loads(environ_json)), in_repo(path):
        try:
            contents = parse_repo(path)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"{path}: the Feast repo does not import: {exc}") from None
    entities = {e.name: e for e in contents.entities}
    views: dict[str, ViewSchema] = {}
    for fv in contents.feature_views:
        where = f"{path}: feature view {fv.name}"
        keys: dict[str, str] = {}
        for entity_name in fv.entities:
            entity = entities.get(entity_name)
            if entity is None:
                raise ConfigError(f"{where}: entity {entity_name!r} is not in the repo")
            keys[entity.join_key] = pandas_dtype(entity.value_type, where)
        features = {
            f.name: pandas_dtype(f.dtype.to_value_type(), where)
            for f in fv.features  # declared order (`schema` is not kept in it)
            if f.name not in keys and f.name != EVENT_TIMESTAMP
        }
        ttl = fv.ttl or dt.timedelta(0)
        views[fv.name] = ViewSchema(fv.name, keys, features, ttl)
    odfvs = {o.name: o for o in contents.on_demand_feature_views}
    services: dict[str, ServiceSchema] = {}
    for fs in contents.feature_services:
        stored: dict[str, list[str]] = {}
        on_demand: dict[str, list[str]] = {}
        request: dict[str, str] = {}
        for projection in fs.feature_view_projections:
            names = [f.name for f in projection.features]
            if projection.name in odfvs:
                on_demand[projection.name] = names
                for source in odfvs[projection.name].source_request_sources.values():
                    for f in source.schema:
                        request[f.name] = pandas_dtype(f.dtype.to_value_type(), fs.name)
            else:
                stored[projection.name] = names
        services[fs.name] = ServiceSchema(fs.name, stored, on_demand, request, dict(fs.tags))
    return RepoSchema(project=project, views=views, services=services)
