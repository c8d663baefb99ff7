"""The one exception type every entry point turns into a one-line message and a non-zero exit."""

from __future__ import annotations

from pydantic import ValidationError


class KaizenError(Exception):
    """A problem the operator can act on. The message is one line and says what is wrong."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # Entry points print this on one line; never let a multi-line cause leak through.
        super().__init__(" ".join(str(message).split()))


class ConfigError(KaizenError):
    """A setting, parameter or declaration is missing or wrong."""


class InputError(KaizenError):
    """A command-line, API or DAG argument is invalid."""


class RawFileError(KaizenError):
    """A raw drop is missing, empty, unreadable or cannot be parsed.

    `kind` tells a bad batch (`empty`, `malformed`: quarantined) from a batch that is not
    there to judge (`missing`, `unreadable`: retried).
    """

    def __init__(self, message: str, kind: str = "malformed") -> None:
        super().__init__(message)
        self.kind = kind


class PartitionLockedError(KaizenError):
    """Another writer holds the partition being written."""

    exit_code = 3


class BatchQuarantined(KaizenError):
    """A batch failed its gate and was moved to quarantine (nothing was lost)."""

    exit_code = 4


class ModelRefused(KaizenError):
    """A trained model fails a check that registration requires (nothing was registered)."""

    exit_code = 5


def describe_validation_error(exc: ValidationError, where: str) -> str:
    """One line naming the first bad key, e.g. `params.yaml: train.max_depth: ...`."""
    errors = exc.errors()
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"]) or "(root)"
    message = first["msg"]
    if first["type"] == "missing":
        message = "is required but missing"
    elif first["type"] == "extra_forbidden":
        message = "is not a known key (a typo?)"
    elif "input" in first and not isinstance(first["input"], dict | list):
        message = f"{message} (got {first['input']!r})"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {key}: {message}{more}"
