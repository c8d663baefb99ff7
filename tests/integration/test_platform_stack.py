"""`kaizen up` in the `stack` profile: SeaweedFS joins the supervised processes as the S3 store.

The unit tests at the top need no server. The running instance uses this machine's PostgreSQL
(fresh databases for MLflow and the Feast registry, dropped after) and Redis, and its own
SeaweedFS on free loopback ports with credentials generated into the temporary home's .env.
"""

from __future__ import annotations

import os
import secrets
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from support import REPO, kaizen, service_unavailable, tcp_open

from kaizen.config import Settings
from kaizen.errors import KaizenError
from kaizen.ops import secrets as platform_secrets
from kaizen.ops.components import components, mlflow_env
from kaizen.ops.layout import Layout
from kaizen.seaweed import free_port, port_plan

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
# What `kaizen up` supervises in every profile (the stack profile adds "s3").
LOCAL_COMPONENTS = ["airflow-api", "airflow-scheduler", "airflow-dag-processor"]
LOCAL_COMPONENTS += ["airflow-triggerer", "mlflow", "feature-server", "prediction-api"]


def _stack(tmp_path: Path, **extra: object) -> Settings:
    return Settings(_env_file=None, home=tmp_path, profile="stack", **extra)


# --- no server needed -----------------------------------------------------------------------


def test_the_stack_profile_supervises_seaweedfs_first_and_local_does_not(tmp_path: Path) -> None:
    settings = _stack(tmp_path, s3_port=19333)
    [s3, *rest] = components(settings)
    assert s3.name == "s3" and "s3" not in {c.name for c in rest}
    assert s3.port == 19333 and s3.health_url == "http://127.0.0.1:19333/healthz"
    assert s3.argv[1] == "mini"
    assert "-ip.bind=127.0.0.1" in s3.argv and "-s3.port=19333" in s3.argv
    assert sorted((19333, *s3.also_binds)) == list(range(19333, 19333 + 13))
    layout = Layout.from_settings(settings)
    assert f"-s3.config={layout.s3_identities}" in s3.argv
    assert f"-dir={layout.seaweedfs_dir}" in s3.argv
    assert "-bucket=kaizen" in s3.argv  # the bucket of the lake, raw zone and MLflow artifacts
    # The endpoint every client uses defaults to the supervised store.
    assert settings.s3_endpoint_url == "http://127.0.0.1:19333"
    assert mlflow_env(settings)["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:19333"

    assert "s3" not in {c.name for c in components(Settings(_env_file=None, home=tmp_path))}
    external = _stack(tmp_path, s3_server="external")
    assert "s3" not in {c.name for c in components(external)}
    assert external.s3_endpoint_url is None  # AWS, or whatever the user points it at


def test_the_buckets_follow_the_s3_locations(tmp_path: Path) -> None:
    settings = _stack(
        tmp_path,
        lake_root="s3://lake-bucket/lake",
        raw_root="/srv/raw",
        mlflow_artifacts_destination="s3://models/mlflow",
    )
    assert settings.s3_buckets() == ["lake-bucket", "models"]
    [s3, *_] = components(settings)
    assert "-bucket=lake-bucket,models" in s3.argv


def test_port_plans_of_neighbouring_instances_never_overlap() -> None:
    a, b = port_plan(8333), port_plan(8333 + 13)
    assert len(set(a.values())) == 13 and not set(a.values()) & set(b.values())
    assert a["s3.port"] == 8333


def test_s3_credentials_are_generated_only_where_seaweedfs_is_supervised(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    local = platform_secrets.ensure_passwords(Settings(_env_file=None, home=tmp_path), env_file)
    assert set(local) == set(platform_secrets.PASSWORDS.values())
    env_file.unlink()
    generated = platform_secrets.ensure_passwords(_stack(tmp_path), env_file)
    assert set(generated) == {
        *platform_secrets.PASSWORDS.values(),
        *platform_secrets.S3_CREDENTIALS.values(),
    }
    key = generated["KAIZEN_S3_ACCESS_KEY_ID"]
    secret = generated["KAIZEN_S3_SECRET_ACCESS_KEY"]
    assert len(key) == 20 and key.isalnum() and key.isupper()
    assert len(secret) == 40 and not secret.startswith("-")
    reread = Settings(_env_file=env_file, home=tmp_path, profile="stack")
    assert reread.s3_secret_access_key is not None
    assert reread.s3_secret_access_key.get_secret_value() == secret
    assert platform_secrets.ensure_passwords(reread, env_file) == {}
    env_file.unlink()
    external = _stack(tmp_path, s3_server="external")
    assert set(platform_secrets.ensure_passwords(external, env_file)) == set(
        platform_secrets.PASSWORDS.values()
    )


def test_a_busy_seaweedfs_side_port_names_the_s3_port_setting(tmp_path: Path) -> None:
    from kaizen.ops.supervisor import _check_ports

    base = _free_block(13)
    settings = _stack(tmp_path, s3_port=base)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 5))
        holder.listen()
        with pytest.raises(KaizenError, match=f"port {base + 5} for s3 .*KAIZEN_S3_PORT"):
            _check_ports(settings, components(settings))


def _free_block(size: int) -> int:
    """A port whose `size` neighbours upwards are all free on loopback now."""
    for _ in range(50):
        base = free_port()
        if base + size > 65535:
            continue
        if all(_free(base + i) for i in range(size)):
            return base
    raise RuntimeError(f"no block of {size} free ports found")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- one running stack platform -------------------------------------------------------------


@dataclass
class StackPlatform:
    home: Path
    env: dict[str, str]
    settings: Settings
    layout: Layout
    up_output: str
    up_seconds: float

    def kaizen(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return kaizen(self.env, self.home, *args, timeout=timeout)

    def s3(self, key: str | None = None, secret: str | None = None, unsigned: bool = False):
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        s = self.settings
        assert s.s3_access_key_id and s.s3_secret_access_key
        config = Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5)
        if unsigned:
            config = config.merge(Config(signature_version=UNSIGNED))
        return boto3.client(
            "s3",
            endpoint_url=s.s3_endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=key or s.s3_access_key_id.get_secret_value(),
            aws_secret_access_key=secret or s.s3_secret_access_key.get_secret_value(),
            config=config,
        )


def _drop_databases(names: list[str]) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="module")
def stack_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackPlatform]:
    if not tcp_open("127.0.0.1", 5432):
        service_unavailable("PostgreSQL", "nothing answers on 127.0.0.1:5432")
    if not tcp_open("127.0.0.1", 6379):
        service_unavailable("Redis", "nothing answers on 127.0.0.1:6379")
    home = tmp_path_factory.mktemp("stack-platform-home")
    tag = f"kz_up_{uuid.uuid4().hex[:8]}"
    databases = [tag, f"{tag}_mlflow"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAIZEN_", "AIRFLOW"))}
    env.update(
        {
            "KAIZEN_HOME": str(home),
            "KAIZEN_PROFILE": "stack",
            "KAIZEN_DAGS_FOLDER": str(REPO / "projects"),
            "KAIZEN_PROJECTS_DIR": str(REPO / "projects"),
            "KAIZEN_PROJECT": "credit_risk",
            "KAIZEN_FEAST_DATA_DIR": str(home / "{project}" / "feast"),
            "KAIZEN_AIRFLOW_PORT": str(free_port()),
            "KAIZEN_MLFLOW_PORT": str(free_port()),
            "KAIZEN_FEATURE_SERVER_PORT": str(free_port()),
            "KAIZEN_PREDICTION_API_PORT": str(free_port()),
            "KAIZEN_S3_PORT": str(_free_block(13)),
            # Fresh databases: the Feast SQL registry and MLflow's backend store.
            "KAIZEN_POSTGRES_URL": f"{PG}/{tag}",
            "KAIZEN_MLFLOW_BACKEND_STORE_URI": f"{PG}/{tag}_mlflow",
            "KAIZEN_REDIS_CONNECTION": "127.0.0.1:6379,db=11",
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    started = time.monotonic()
    up = kaizen(env, home, "up", "--timeout", "150", timeout=240)
    up_seconds = time.monotonic() - started
    try:
        assert up.returncode == 0, f"kaizen up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        os_env = {k: v for k, v in env.items() if k.startswith("KAIZEN_")}
        settings = Settings(
            _env_file=home / ".env",
            **{k.removeprefix("KAIZEN_").lower(): v for k, v in os_env.items()},
        )
        yield StackPlatform(
            home=home,
            env=env,
            settings=settings,
            layout=Layout(home / ".kaizen"),
            up_output=up.stdout + up.stderr,
            up_seconds=up_seconds,
        )
    finally:
        kaizen(env, home, "down", timeout=60)
        _drop_databases(databases)


@pytest.mark.services
@pytest.mark.slow
def test_up_starts_seaweedfs_healthy_with_generated_credentials(
    stack_platform: StackPlatform,
) -> None:
    p = stack_platform
    print(f"kaizen up (stack): healthy in {p.up_seconds:.1f}s")
    assert "KAIZEN_S3_SECRET_ACCESS_KEY" in p.up_output  # named on the first start, never shown
    assert "KAIZEN_S3_SECRET_ACCESS_KEY=" not in p.up_output
    status = p.kaizen("status", "--platform", timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
    assert "healthy" in lines["s3"].split()[3:4], lines.get("s3")
    env_text = (p.home / ".env").read_text()
    assert "KAIZEN_S3_ACCESS_KEY_ID=" in env_text
    assert p.settings.s3_secret_access_key is not None
    secret = p.settings.s3_secret_access_key.get_secret_value()
    assert stat.S_IMODE((p.home / ".env").stat().st_mode) == 0o600
    assert stat.S_IMODE(p.layout.s3_identities.stat().st_mode) == 0o600
    leaked = [
        path
        for path in p.layout.root.rglob("*")
        if path.is_file()
        and path != p.layout.s3_identities
        and secret.encode() in path.read_bytes()
    ]
    assert leaked == [], f"the S3 secret leaked into {leaked}"
    # A second start of a running platform generates nothing and keeps the same store.
    again = p.kaizen("up", timeout=120)
    assert again.returncode == 0 and "SECRET_ACCESS_KEY=" not in again.stdout + again.stderr


@pytest.mark.services
@pytest.mark.slow
def test_seaweedfs_refuses_unsigned_and_wrongly_signed_requests(
    stack_platform: StackPlatform,
) -> None:
    from botocore.exceptions import ClientError

    p = stack_platform
    assert p.s3().head_bucket(Bucket="kaizen")["ResponseMetadata"]["HTTPStatusCode"] == 200
    for client in (
        p.s3(unsigned=True),
        p.s3(secret=secrets.token_hex(20)),
        p.s3(key="admin", secret="password1234"),
    ):
        with pytest.raises(ClientError) as refused:
            client.list_objects_v2(Bucket="kaizen")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.mark.services
@pytest.mark.slow
def test_mlflow_server_stores_artifacts_in_seaweedfs(
    stack_platform: StackPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An artifact logged through the authenticated tracking server (its artifact proxy)
    lands in the S3 store: the server reads its key pair from the environment it started in."""
    p = stack_platform
    s = p.settings
    assert s.mlflow_admin_password is not None
    probe = tmp_path / "probe.txt"
    probe.write_text("kaizen stack probe\n")
    # In this process (the session has imported MLflow by now; a child took ~10 s more to
    # import it here), with no key pair of its own: only the server can write to S3.
    for key in [k for k in os.environ if k.startswith(("MLFLOW_", "AWS_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", s.mlflow_admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", s.mlflow_admin_password.get_secret_value())
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{s.mlflow_port}")  # no global state
    run = client.create_run(client.create_experiment(f"stack-up-probe-{uuid.uuid4().hex[:8]}"))
    client.log_artifact(run.info.run_id, str(probe))
    client.set_terminated(run.info.run_id)
    uri = run.info.artifact_uri
    assert uri.startswith("mlflow-artifacts:"), uri  # through the server's proxy
    listed = p.s3().list_objects_v2(Bucket="kaizen", Prefix="mlflow/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert any(k.endswith("/probe.txt") for k in keys), keys


@pytest.mark.services
@pytest.mark.slow
def test_stack_down_stops_every_process_within_15s_and_every_port_was_loopback(
    stack_platform: StackPlatform,
) -> None:
    """Runs last: stops the stack and checks that nothing of it survives. The one test of
    `kaizen down` on a running platform (test_platform.py's shared one ends with its
    supervisor killed, test_platform_heal.py)."""
    from kaizen.ops.supervisor import members

    p = stack_platform
    found = members(p.layout)
    before = [m.proc for m in found]
    sessions = {os.getsid(proc.pid) for proc in before}
    assert {m.component for m in found} >= {"s3", *LOCAL_COMPONENTS}
    weed = [m.proc for m in found if m.component == "s3"]
    assert weed, "no SeaweedFS process in the platform"
    listening = []
    for m in found:
        try:
            conns = m.proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        listening += [c.laddr for c in conns if c.status == psutil.CONN_LISTEN]
    assert p.settings.s3_port in {a.port for a in listening}
    assert [a for a in listening if a.ip != "127.0.0.1"] == []
    started = time.monotonic()
    down = p.kaizen("down", timeout=30)
    seconds = time.monotonic() - started
    print(f"kaizen down (stack): {seconds:.1f}s")
    assert down.returncode == 0, down.stderr
    assert seconds < 15
    assert not any(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE for proc in weed)
    survivors = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue  # dead, waiting for its parent (init here) to reap it
            if proc in before or os.getsid(proc.pid) in sessions:
                survivors.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    assert survivors == []
    assert not p.layout.pid_file.exists()
    after = p.kaizen("status", "--platform")
    assert after.returncode != 0 and "stopped" in after.stdout
