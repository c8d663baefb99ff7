"""The local platform: `kaizen up` / `status` / `down` on free ports, every UI behind a login.

The session's one platform (tests/integration/conftest.py, shared with test_platform_heal.py)
runs from a temporary project home (its own .env, runtime dir and Airflow home) on free
loopback ports, so it never meets a developer's `make up`. Everything is checked over real
HTTP. The unit tests at the top need no server.
"""

from __future__ import annotations

import stat
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
from dotenv import dotenv_values
from support import Platform

from kaizen.config import Settings
from kaizen.ops import secrets as platform_secrets
from kaizen.seaweed import free_port

DEFAULT_LOGINS = [("admin", "admin"), ("admin", "password1234")]
COMPONENTS = ["airflow-api", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]
COMPONENTS += ["mlflow", "feature-server", "prediction-api"]


# --- no server needed -----------------------------------------------------------------------


def test_passwords_are_generated_once_into_env_keeping_other_lines(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("KAIZEN_LOG_LEVEL=DEBUG\n# keep me\nKAIZEN_MLFLOW_ADMIN_PASSWORD=\n")
    env_file.chmod(0o644)
    settings = Settings(_env_file=env_file, home=tmp_path)
    generated = platform_secrets.ensure_passwords(settings, env_file)
    assert sorted(generated) == sorted(platform_secrets.PASSWORDS.values())
    assert all(len(v) >= 32 for v in generated.values())
    assert len(set(generated.values())) == len(platform_secrets.PASSWORDS)
    text = env_file.read_text()
    assert text.startswith("KAIZEN_LOG_LEVEL=DEBUG\n# keep me\n")
    assert text.count("KAIZEN_MLFLOW_ADMIN_PASSWORD=") == 1  # the empty one was filled in place
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    reread = Settings(_env_file=env_file, home=tmp_path)
    assert reread.airflow_admin_password is not None
    assert (
        reread.airflow_admin_password.get_secret_value()
        == generated["KAIZEN_AIRFLOW_ADMIN_PASSWORD"]
    )
    assert platform_secrets.ensure_passwords(reread, env_file) == {}
    assert env_file.read_text() == text


def test_airflow_environ_has_auth_and_loopback_but_no_secret(tmp_path: Path) -> None:
    from kaizen.dags.runner import airflow_environ

    secret = "s3cr3t-" + "x" * 30
    settings = Settings(
        _env_file=None, home=tmp_path, airflow_port=18123, airflow_admin_password=secret
    )
    env = airflow_environ(settings)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API__PORT"] == "18123"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18123/execution/"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith(str(tmp_path))
    assert not any(secret in value for value in env.values())


@pytest.mark.slow  # importing MLflow's server package takes seconds
def test_mlflow_reads_back_the_auth_config_we_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.server.auth.config import read_auth_config

    path = tmp_path / "auth.ini"
    password = "with%percent-and-more-than-12"
    platform_secrets.write_mlflow_auth_config(path, "admin", password, "sqlite:///x.db")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(path))
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_USERNAME", raising=False)
    config = read_auth_config()
    assert (config.admin_username, config.admin_password) == ("admin", password)
    assert config.database_uri == "sqlite:///x.db"


def test_a_busy_port_is_one_line_naming_its_setting(tmp_path: Path) -> None:
    import socket

    from kaizen.errors import KaizenError
    from kaizen.ops.components import components
    from kaizen.ops.supervisor import _check_ports

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        settings = Settings(_env_file=None, home=tmp_path, airflow_port=busy)
        with pytest.raises(KaizenError, match=f"port {busy} for airflow-api .*KAIZEN_AIRFLOW_PORT"):
            _check_ports(settings, components(settings))
    same = Settings(_env_file=None, home=tmp_path, airflow_port=free_port())
    same = same.model_copy(update={"mlflow_port": same.airflow_port})
    with pytest.raises(KaizenError, match="both set to port"):
        _check_ports(same, components(same))


def test_feasts_temporary_metrics_dir_is_not_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    """`up` imports Feast, which points these at a temp dir removed when `up` exits: a task
    importing Feast under the platform then failed on the missing dir (found by
    tests/test_clients.py's DAG runs)."""
    from kaizen.ops.supervisor import NOT_INHERITED, child_environ

    for key in NOT_INHERITED:
        monkeypatch.setenv(key, "/tmp/feast_metrics_gone")
    monkeypatch.setenv("KAIZEN_KEPT", "1")
    env = child_environ()
    assert not set(NOT_INHERITED) & set(env)
    assert env["KAIZEN_KEPT"] == "1"


# --- one running platform -------------------------------------------------------------------


def _client() -> httpx.Client:
    return httpx.Client(timeout=15, trust_env=False)


def _airflow_token(p: Platform, username: str, password: str) -> httpx.Response:
    with _client() as client:
        return client.post(
            f"{p.airflow}/auth/token", json={"username": username, "password": password}
        )


@pytest.mark.services
@pytest.mark.slow
def test_first_start_says_where_the_generated_secrets_live_never_their_values(
    platform: Platform,
) -> None:
    print(f"kaizen up: healthy in {platform.up_seconds:.1f}s (incl. Airflow db migrate)")
    env_file = platform.home / ".env"
    assert f"secrets into {env_file}" in platform.up_output
    assert "KAIZEN_AIRFLOW_ADMIN_PASSWORD" in platform.up_output
    values = dotenv_values(env_file)
    secrets = [values[variable] for variable in platform_secrets.PASSWORDS.values()]
    assert all(secrets) and not any(v in platform.up_output for v in secrets)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file.read_text().startswith("# the developer's own line, which must survive\n")
    again = platform.kaizen("up")
    assert again.returncode == 0, again.stderr
    assert "is running and restarts crashed components" in again.stdout
    assert platform.airflow_password not in again.stdout + again.stderr
    assert platform.mlflow_password not in again.stdout + again.stderr


@pytest.mark.services
@pytest.mark.slow
def test_airflow_refuses_anonymous_and_default_logins(platform: Platform) -> None:
    with _client() as client:
        assert client.get(f"{platform.airflow}/api/v2/dags").status_code in (401, 403)
        assert client.get(f"{platform.airflow}/api/v2/monitor/health").status_code == 200
    for username, password in DEFAULT_LOGINS:
        assert _airflow_token(platform, username, password).status_code == 401


@pytest.mark.services
@pytest.mark.slow
def test_airflow_generated_login_lists_the_parsed_dag(platform: Platform) -> None:
    token = _airflow_token(platform, "admin", platform.airflow_password)
    assert token.status_code in (200, 201), token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    deadline = time.monotonic() + 90  # the dag-processor parses the folder after it starts
    dag_ids: list[str] = []
    with _client() as client:
        while time.monotonic() < deadline:
            response = client.get(f"{platform.airflow}/api/v2/dags", headers=headers)
            assert response.status_code == 200, response.text
            dag_ids = [d["dag_id"] for d in response.json()["dags"]]
            if "credit_risk.dataops_daily" in dag_ids:
                break
            time.sleep(1)
    assert "credit_risk.dataops_daily" in dag_ids


@pytest.mark.services
@pytest.mark.slow
def test_mlflow_refuses_anonymous_default_and_foreign_host(platform: Platform) -> None:
    url = f"{platform.mlflow}/api/2.0/mlflow/experiments/search"
    params = {"max_results": 1}
    good = ("admin", platform.mlflow_password)
    with _client() as client:
        assert client.get(url, params=params).status_code == 401
        assert client.get(f"{platform.mlflow}/").status_code == 401  # the UI too
        for login in DEFAULT_LOGINS:
            assert client.get(url, params=params, auth=login).status_code == 401
        ok = client.get(url, params=params, auth=good)
        assert ok.status_code == 200, ok.text
        # DNS rebinding: a page on another name resolving to 127.0.0.1 is refused.
        foreign = client.get(url, params=params, auth=good, headers={"Host": "evil.example"})
        assert foreign.status_code in (400, 403)


TRAVERSALS = [
    "../../../../../../etc/passwd",
    "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/etc/passwd",
    "model/../../../../../../etc/passwd",
    "....//....//....//etc/passwd",
]


@pytest.mark.services
@pytest.mark.slow
def test_path_traversal_to_mlflow_artifact_routes_is_refused(platform: Platform) -> None:
    """An authenticated client asks every artifact route for /etc/passwd: a 4xx every time,
    never the file. (Our own APIs read no file named by a request.)"""
    auth = ("admin", platform.mlflow_password)
    api = f"{platform.mlflow}/api/2.0/mlflow"
    with _client() as client:
        experiment = client.post(
            f"{api}/experiments/create", auth=auth, json={"name": f"probe-{uuid.uuid4().hex[:8]}"}
        )
        assert experiment.status_code == 200, experiment.text
        run = client.post(
            f"{api}/runs/create",
            auth=auth,
            json={"experiment_id": experiment.json()["experiment_id"]},
        )
        assert run.status_code == 200, run.text
        run_id = run.json()["run"]["info"]["run_id"]
        probes = []
        for path in TRAVERSALS:
            probes += [
                f"{platform.mlflow}/get-artifact?path={path}&run_uuid={run_id}",
                f"{platform.mlflow}/get-artifact?path={path}&run_id={run_id}",
                f"{platform.mlflow}/model-versions/get-artifact?path={path}&name=credit_risk&version=1",
                f"{platform.mlflow}/api/2.0/mlflow-artifacts/artifacts/{path}",
                f"{api}/artifacts/list?run_id={run_id}&path={path}",
                f"{platform.mlflow}/ajax-api/2.0/mlflow/get-artifact?path={path}&run_uuid={run_id}",
            ]
        answers = [(url, client.get(url, auth=auth)) for url in probes]
    leaked = [url for url, r in answers if "root:" in r.text]
    assert leaked == [], f"/etc/passwd served by {leaked}"

    def refused(url: str, r: httpx.Response) -> bool:
        # `....//` is a literal folder name, not a way up (it beats filters that strip
        # `../`): listing it inside the run's own artifacts finds nothing, which is fine.
        literal = "....//" in url and "/artifacts/list" in url
        return 400 <= r.status_code < 500 or (literal and not r.json().get("files"))

    allowed = [(url, r.status_code, r.text[:200]) for url, r in answers if not refused(url, r)]
    assert allowed == [], allowed


@pytest.mark.services
@pytest.mark.slow
def test_status_reports_every_component_healthy_without_secrets(platform: Platform) -> None:
    result = platform.kaizen("status")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    for name in ["supervisor", *COMPONENTS]:
        assert "healthy" in lines[name].split()[3:4], lines.get(name)
    for secret in (platform.airflow_password, platform.mlflow_password):
        assert secret not in result.stdout + result.stderr


@pytest.mark.services
@pytest.mark.slow
def test_every_listening_socket_is_loopback_only(platform: Platform) -> None:
    from kaizen.ops.supervisor import members

    pids = {m.proc.pid for m in members(platform.layout)}
    assert len(pids) >= 1 + len(COMPONENTS)
    listening = []
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        listening += [(pid, c.laddr) for c in conns if c.status == psutil.CONN_LISTEN]
    ports = {addr.port for _, addr in listening}
    assert {
        int(platform.airflow.rsplit(":", 1)[1]),
        int(platform.mlflow.rsplit(":", 1)[1]),
    } <= ports
    assert [(pid, addr) for pid, addr in listening if addr.ip != "127.0.0.1"] == []


@pytest.mark.services
@pytest.mark.slow
def test_generated_passwords_are_in_no_log_or_generated_file(platform: Platform) -> None:
    secrets = [
        platform.airflow_password.encode(),
        platform.mlflow_password.encode(),
        platform.feature_server_token.encode(),
    ]
    allowed = {platform.layout.airflow_passwords, platform.layout.mlflow_auth_config}
    scanned = 0
    for root in (platform.layout.root, platform.airflow_home):
        for path in root.rglob("*"):
            if path.is_file() and path not in allowed:
                scanned += 1
                data = path.read_bytes()
                assert not any(s in data for s in secrets), f"a password leaked into {path}"
    assert scanned > 3 and platform.layout.log_file.stat().st_size > 0
    for path in allowed:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


# `kaizen down` of a running platform: test_platform_stack.py's last test (the stack profile
# supervises the same components and SeaweedFS). This session's platform is stopped by
# test_platform_heal.py's last test, with its supervisor killed first.
