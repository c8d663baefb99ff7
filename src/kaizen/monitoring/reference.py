"""The champion's training reference: the frozen holdout logged with its MLflow version.

Why the holdout and not the whole training set: it is stored with the version itself
(`evaluation/holdout.parquet`, what the gates judged it on), so the reference of any version
can be rebuilt at any time from the registry alone, and it is the newest slice of what the
model learned from (the training set file is a DVC output that may not be on this machine).
Its rows are labelled rows at their event time, the same population as the current window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kaizen.model.versions import Version, by_alias, holdout_of, load
from kaizen.runtime import Runtime


@dataclass
class Reference:
    version: Version
    alias: str
    frame: pd.DataFrame  # the holdout rows: keys, model inputs, label
    scores: np.ndarray  # the version's scores on them

    @property
    def inputs(self) -> list[str]:
        return self.version.inputs

    @property
    def categorical(self) -> list[str]:
        return [
            c
            for c in self.inputs
            if self.frame[c].dtype == object or isinstance(self.frame[c].dtype, pd.StringDtype)
        ]


def version_at(rt: Runtime, alias: str) -> Version | None:
    number = by_alias(rt, alias)
    return load(rt, number) if number is not None else None


def reference_of(rt: Runtime, version: Version, alias: str) -> Reference:
    holdout = holdout_of(rt, version)
    return Reference(version, alias, holdout, version.score(holdout))
