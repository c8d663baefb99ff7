"""What a stage needs to run, loaded once and lazily: settings, project, params, lake."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kaizen.config import Settings, get_settings
from kaizen.lake import Lake
from kaizen.params import Params, load_params
from kaizen.project.project import Project, load_project
from kaizen.sources import SourceCatalog


@dataclass
class Runtime:
    settings: Settings = field(default_factory=get_settings)

    @cached_property
    def project(self) -> Project:
        return load_project(self.settings.require_project())

    @property
    def model_name(self) -> str:
        """The project's registered model (kaizen.yaml `model.name`)."""
        return self.project.declaration.model.name

    @property
    def experiment(self) -> str:
        return self.project.declaration.model.experiment

    @cached_property
    def params(self) -> Params:
        return load_params(self.settings.params_file)

    @cached_property
    def project_params(self) -> Any:
        """params.yaml's `project:` section, as the project's own model."""
        return self.project.params(self.params.project, str(self.settings.params_file))

    @cached_property
    def catalog(self) -> SourceCatalog:
        return self.project.declaration.catalog

    @cached_property
    def schema(self) -> Any:
        """The feature schema (kaizen.featurestore.schema.RepoSchema) of the project's repo."""
        from kaizen.featurestore.schema import repo_schema

        return repo_schema(self.settings)

    @cached_property
    def lake(self) -> Lake:
        return Lake.from_settings(self.settings)

    def raw_url(self, source: str, ds: str) -> str:
        spec = self.catalog.get(source)
        return f"{self.settings.raw_root.rstrip('/')}/{source}/{spec.raw_name(ds)}"
