"""A model version's release manifest: everything needed to trace it back to the byte.

git commit, params hash, the DVC hash of its training set, the feature service it needs
(name and version), the GX suite versions its data passed, its holdout metrics and the
Airflow run that made it. Stored as tags on the version (`kaizen.*`) and as a JSON artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from kaizen.runtime import Runtime

PREFIX = "kaizen."
# Why the version was trained (a `Trigger`), set by whoever starts the training: the train DAG
# (a monitor's retrain request, the weekly schedule, new labels) or the scoreboard's loop.
# Unset: someone ran it by hand. The staging gate picks its comparison by it.
TRIGGER_ENV = "KAIZEN_TRAIN_TRIGGER"


def git_commit(home: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(home), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        # dvc.lock is rewritten by every `dvc repro`: it is the pipeline's state, not code.
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(home),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":!dvc.lock",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def file_md5(path: Path) -> str:
    """The hash DVC records for a file output (plain MD5 of its bytes)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def suite_versions(rt: Runtime, feature_service: str) -> dict[str, str]:
    """The suites the training data passed: every source's raw gate and the feature gate of
    each view the model's service reads (not every file in the folder)."""
    from kaizen.quality.suites import feature_suite_name, raw_suite_name, suite_version

    names = [raw_suite_name(s) for s in rt.catalog.names]
    names += [feature_suite_name(v) for v in rt.schema.service(feature_service).views]
    folder = rt.settings.expectations_dir / "expectations"
    return {
        name: suite_version(json.loads((folder / f"{name}.json").read_text()))
        for name in sorted(names)
    }


def build(
    rt: Runtime, training_set: Path, description: dict[str, Any], metrics: dict[str, Any]
) -> dict[str, Any]:
    from kaizen.featurestore.store import open_store

    service = open_store(rt.settings).get_feature_service(description["feature_service"])
    return {
        "git_commit": git_commit(rt.settings.home),
        "params_sha256": hashlib.sha256(rt.settings.params_file.read_bytes()).hexdigest(),
        "training_set_md5": file_md5(training_set),
        "training_set_rows": description["rows"],
        "training_set_cutoff": description["cutoff"],
        "training_set_first_issued": description["first_issued"],
        "feature_service": service.name,
        "feature_service_version": (service.tags or {}).get("version", ""),
        "gx_suites": suite_versions(rt, service.name),
        "holdout": {
            k: metrics.get(k)
            for k in ("roc_auc", "pr_auc", "brier", "log_loss", "rows", "positives")
        },
        "holdout_window": metrics.get("window", ""),
        "airflow_run": os.environ.get("KAIZEN_AIRFLOW_RUN", ""),
        "trigger": trigger(),
    }


def trigger() -> str:
    """This training's trigger (`TRIGGER_ENV`); a value outside `TRIGGERS` is refused, so a
    typo cannot turn a drift-triggered candidate into one judged as scheduled."""
    from kaizen.errors import ConfigError
    from kaizen.params import TRIGGERS

    value = os.environ.get(TRIGGER_ENV, "") or "manual"
    if value not in TRIGGERS:
        raise ConfigError(f"{TRIGGER_ENV}={value!r}: expected one of {', '.join(TRIGGERS)}")
    return value


def as_tags(manifest: dict[str, Any]) -> dict[str, str]:
    """MLflow tags are strings: nested values as compact JSON."""
    return {
        PREFIX + key: value
        if isinstance(value, str)
        else json.dumps(value, sort_keys=True, separators=(",", ":"))
        for key, value in manifest.items()
    }
