"""The champion and challenger as loaded from their MLflow aliases, and their hot reload.

A `Deployment` is an immutable pair (champion, challenger). A request reads
`refresher.current` once and uses that pair to the end, so replacing it is one reference
assignment: requests in flight finish on the old models, new ones get the new pair, nothing
restarts. The `AliasRefresher` thread re-resolves both aliases every `alias_refresh_seconds`;
a moved alias is loaded in that thread (never on a request's path), then swapped in.
A version already loaded under the other alias (challenger promoted to champion) is reused.
When the registry cannot be reached or a load fails, the models loaded before keep serving.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kaizen.errors import ConfigError
from kaizen.logs import get_logger
from kaizen.model.versions import Version, manifest
from kaizen.runtime import Runtime

log = get_logger(__name__)
FEATURE_SERVICE_TAG = "kaizen.feature_service"  # set by `register` from the release manifest


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version under one alias, with what it needs from a request."""

    alias: str
    version: Version
    feature_service: str
    categorical: frozenset[str]  # inputs the model reads as text; the rest are numbers
    onnx: Any = None  # the version's ONNX form (OnnxModel) when serve.model_format is onnx
    loaded_at: float = field(default_factory=time.time)

    @property
    def form(self) -> str:
        return "sklearn" if self.onnx is None else "onnx"

    @property
    def number(self) -> str:
        return str(self.version.number)

    @property
    def inputs(self) -> list[str]:
        return self.version.inputs

    def input_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each row's model inputs (features and request data), in the model's order."""
        missing = [name for name in self.inputs if rows and name not in rows[0]]
        if missing:
            raise ConfigError(
                f"model version {self.number} needs inputs that feature service "
                f"{self.feature_service!r} and the request do not provide: {', '.join(missing)}"
            )
        return [{name: row[name] for name in self.inputs} for row in rows]

    def frame(self, inputs: list[dict[str, Any]]) -> pd.DataFrame:
        """The model's input frame: numbers as float64 (None -> NaN), text as object."""
        columns = {}
        for name in self.inputs:
            values = [row[name] for row in inputs]
            if name in self.categorical:
                columns[name] = pd.Series(
                    [np.nan if v is None else str(v) for v in values], dtype=object
                )
            else:
                columns[name] = pd.Series(
                    [np.nan if v is None else v for v in values], dtype="float64"
                )
        return pd.DataFrame(columns)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class, as `Version.score`: OpenMP limited to one
        thread. The limit is per thread (requests run on the server's worker threads), and a
        controller built once makes it cheap; on two busy cores an unlimited one-row predict
        of the trees was measured ~10x slower than a limited one."""
        if self.onnx is not None:  # parity with the scikit-learn form checked at registration
            return self.onnx.predict_proba(frame)[:, 1]
        with _openmp().limit(limits=1, user_api="openmp"):
            return self.version.model.predict_proba(frame[self.inputs])[:, 1]

    def explain(self, frame: pd.DataFrame) -> Any:
        """SHAP values of this version's P(positive) for `frame`, against the background its
        evaluation logged (so /explain and the version's report agree)."""
        with _openmp().limit(limits=1, user_api="openmp"):
            return _explainer(self.version, self.categorical).explain(frame)

    def describe(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "version": self.number,
            "run_id": self.version.run_id,
            "feature_service": self.feature_service,
            "inputs": self.inputs,
            "form": self.form,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
            "manifest": manifest(self.version),
        }


_explainers: dict[str, Any] = {}
_explainers_lock = threading.Lock()


def _explainer(version: Version, categorical: frozenset[str]) -> Any:
    """One explainer per loaded version, built on first use (a background download)."""
    from kaizen.model.explain import ProbabilityExplainer, load_background

    key = f"{version.run_id}/{version.number}"
    with _explainers_lock:
        if key not in _explainers:
            background = load_background(version.run_id)
            inputs = _inputs(version, categorical)
            if len(_explainers) >= 4:  # champion, challenger and the ones they replaced
                _explainers.pop(next(iter(_explainers)))
            _explainers[key] = ProbabilityExplainer(version.model, background, inputs, seed=0)
        return _explainers[key]


@functools.lru_cache(maxsize=1)
def _openmp() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@dataclass(frozen=True)
class Deployment:
    champion: ServedModel | None = None
    challenger: ServedModel | None = None

    def get(self, role: str) -> ServedModel | None:
        return self.champion if role == "champion" else self.challenger

    def versions(self) -> dict[str, str | None]:
        return {
            "champion": self.champion.number if self.champion else None,
            "challenger": self.challenger.number if self.challenger else None,
        }


def load_served(rt: Runtime, number: str, alias: str) -> ServedModel:
    """Load a registered version and read its feature service from its tags."""
    from kaizen.model.versions import load

    version = load(rt, number)
    return served(rt, version, alias)


def served(rt: Runtime, version: Version, alias: str) -> ServedModel:
    """The version as served: its feature service (the tag `register` sets), which must ask
    the request for exactly the project's declared request fields."""
    from kaizen.serving.schemas import check_request_fields

    service = version.tags.get(FEATURE_SERVICE_TAG, "")
    if not service:
        raise ConfigError(
            f"model version {version.number} has no {FEATURE_SERVICE_TAG} tag: it was not "
            "registered by `kaizen register`, so its feature service is unknown"
        )
    schema = rt.schema
    check_request_fields(rt.project, schema.service(service), schema.service_join_keys(service))
    categorical = frozenset(_text_inputs(rt, version))
    onnx = _onnx_form(version, categorical) if rt.params.serve.model_format == "onnx" else None
    return ServedModel(
        alias=alias,
        version=version,
        feature_service=service,
        categorical=categorical,
        onnx=onnx,
    )


def _onnx_form(version: Version, categorical: frozenset[str]) -> Any:
    """The version's registered ONNX form, or None (served as scikit-learn, said once per
    load) when it was registered without one."""
    import mlflow

    from kaizen.model.onnx_export import OnnxModel
    from kaizen.stages.register import ONNX_TAG

    path = version.tags.get(ONNX_TAG)
    if not path:
        log.warning(
            "model version %s has no ONNX form (registered before it, or with "
            "register.onnx.enabled false): serving its scikit-learn form",
            version.number,
        )
        return None
    local = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=path)
    with open(local, "rb") as handle:
        return OnnxModel(handle.read(), _inputs(version, categorical))


def _inputs(version: Version, categorical: frozenset[str]) -> Any:
    from kaizen.model.data import Inputs

    return Inputs(
        [c for c in version.inputs if c not in categorical],
        [c for c in version.inputs if c in categorical],
    )


def _text_inputs(rt: Runtime, version: Version) -> list[str]:
    """Inputs the version's MLflow signature types as strings (the registered contract)."""
    import mlflow

    name = rt.model_name
    info = mlflow.models.get_model_info(f"models:/{name}/{version.number}")
    signature = info.signature
    if signature is None or signature.inputs is None:
        return []
    return [
        spec.name
        for spec in signature.inputs.inputs
        if getattr(spec, "name", None) and str(getattr(spec, "type", "")).endswith("string")
    ]


def resolve_alias(rt: Runtime, alias: str) -> str | None:
    """The version number behind `alias`; None when the alias (or the model) does not exist.
    Any other registry failure raises: an unreachable registry must not unload a model."""
    from mlflow.exceptions import MlflowException

    from kaizen.model.registry import client

    try:
        found = client(rt).get_model_version_by_alias(rt.model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return str(found.version)


Loader = Callable[[str, str], ServedModel]  # (version number, alias) -> loaded model
Resolver = Callable[[str], "str | None"]  # alias -> version number


class AliasRefresher:
    """Keeps `current` in step with the registry's aliases, from a background thread."""

    def __init__(
        self,
        aliases: dict[str, str],  # role ("champion", "challenger") -> MLflow alias
        resolve: Resolver,
        load: Loader,
        interval_s: float,
        on_swap: Callable[[str, str | None, str | None], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.aliases = aliases
        self.resolve, self.load = resolve, load
        self.interval_s = interval_s
        self.on_swap, self.on_error = on_swap, on_error
        self.current = Deployment()
        self.refreshed_once = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one refresh at a time

    def refresh(self) -> bool:
        """Re-resolve both aliases; load what moved, then swap. True when anything changed."""
        with self._lock:
            old = self.current
            loaded = {m.number for m in (old.champion, old.challenger) if m}
            new: dict[str, ServedModel | None] = {}
            for role, alias in self.aliases.items():
                number = self.resolve(alias)
                before = old.get(role)
                if number is None:
                    new[role] = None
                elif before is not None and before.number == number:
                    new[role] = before
                elif number in loaded:  # e.g. the challenger promoted to champion
                    other = next(
                        m for m in (old.champion, old.challenger) if m and m.number == number
                    )
                    new[role] = dataclasses.replace(other, alias=alias)  # keeps its ONNX form
                else:
                    new[role] = self.load(number, alias)
            deployment = Deployment(champion=new["champion"], challenger=new.get("challenger"))
            changed = deployment.versions() != old.versions()
            if changed:
                self.current = deployment  # the swap: one reference assignment
                for role in self.aliases:
                    before_v, after_v = old.versions()[role], deployment.versions()[role]
                    if before_v != after_v and self.on_swap is not None:
                        self.on_swap(role, before_v, after_v)
            return changed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alias-refresher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:
                log.error(
                    "alias refresh failed (%s: %s); the loaded models keep serving",
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )
                if self.on_error is not None:
                    self.on_error(exc)
            finally:
                self.refreshed_once.set()
            self._stop.wait(self.interval_s)


def features_json(row: dict[str, Any]) -> str:
    """A row of model inputs as JSON (NaN and None as null), for the prediction log."""

    def clean(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, float) and value != value:
            return None
        if isinstance(value, np.generic):
            return value.item()
        return value

    return json.dumps({k: clean(v) for k, v in row.items()}, separators=(",", ":"), default=str)
