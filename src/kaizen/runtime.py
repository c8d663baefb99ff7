"""What a stage needs to run, loaded once and lazily: settings, params, declarations, lake."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from kaizen.config import Settings, get_settings
from kaizen.lake import Lake
from kaizen.params import Params, load_params
from kaizen.sources import SourceCatalog, load_sources


@dataclass
class Runtime:
    settings: Settings = field(default_factory=get_settings)

    @cached_property
    def params(self) -> Params:
        return load_params(self.settings.params_file)

    @cached_property
    def catalog(self) -> SourceCatalog:
        return load_sources(self.settings.sources_file)

    @cached_property
    def lake(self) -> Lake:
        return Lake.from_settings(self.settings)

    def raw_url(self, source: str, ds: str) -> str:
        spec = self.catalog.get(source)
        return f"{self.settings.raw_root.rstrip('/')}/{source}/{spec.raw_name(ds)}"
