"""Fixtures for the real-client tests: the real `imds` binary, and one instance registered
through the admin API and bound to 127.0.0.1 (the address the clients call from).

Real clients call from 127.0.0.1, so a test module that needs an instance of its own starts its
own daemon with `running_imds(tmp)` and registers it with `put_instance`.

The binary is `$IMDS_BIN`, else `target/debug/imds` under the repository root. Everything
listens on loopback ports the kernel picks; nothing here contacts any other address.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import queue
import re
import subprocess
import threading
import uuid
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "client-tests"
STARTUP_TIMEOUT_S = 30.0

GUEST_LINE = re.compile(r"^  guest plane: http://(\S+)$")
ADMIN_LINE = re.compile(r"^  admin API:   http://(\S+) \(")
DIALECT_LINE = re.compile(r"^  dialect (\S+): http://(\S+)$")


def _ssh_ed25519(seed: int, comment: str) -> str:
    """A well-formed OpenSSH ed25519 public key line (a fixed, made-up 32-byte key)."""

    def string(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    blob = string(b"ssh-ed25519") + string(bytes([seed]) * 32)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


INSTANCE_ID = "i-0c11e4700000c0de1"
MAC = "02:00:00:0a:00:0b"
KEYS = {"alice": _ssh_ed25519(1, "alice@laptop"), "bob": _ssh_ed25519(2, "bob@desk")}
TAGS = {"Name": "client-test", "team": "platform", "cost-center": "cc:42"}
CLOUD_CONFIG = b"#cloud-config\nruncmd:\n  - [sh, -c, 'echo client tests > /run/imds-client-tests']\n"
# Binary user-data, as EC2 users send it: a gzipped cloud-config (mtime 0, so it is stable).
USER_DATA = gzip.compress(CLOUD_CONFIG, mtime=0)

RECORD: dict[str, Any] = {
    "hostname": "client-test",
    "domain": "example.internal",
    "ipv4": ["127.0.0.1"],
    "mac": [MAC],
    "region": "eu-west-1",
    "zone": "eu-west-1b",
    "instance_type": "m5.large",
    "image_id": "ami-0123456789abcdef0",
    "ssh_keys": [{"key": key, "name": name} for name, key in KEYS.items()],
    "tags": TAGS,
    "imds": {"tags": "on"},
    "network": {
        "interfaces": [
            {
                "mac": MAC,
                "name": "eth0",
                "ipv4": [
                    {"address": "10.0.0.11", "prefix": 24, "gateway": "10.0.0.1"},
                    {"address": "10.0.0.12", "prefix": 24},
                ],
                "ipv6": [{"address": "fd00:ec2::11", "prefix": 64}],
            }
        ]
    },
    "user_data": {"base64": base64.b64encode(USER_DATA).decode()},
}


@dataclass(frozen=True)
class Imds:
    """A running `imds serve`: its guest plane and admin API base URLs (no trailing slash), and
    the base URL of each listener bound to one dialect (`[guest.dialect_listen]`), by dialect."""

    guest_url: str
    admin_url: str
    dialect_urls: dict[str, str] = field(default_factory=dict)


def _binary() -> Path:
    path = Path(os.environ.get("IMDS_BIN", "target/debug/imds"))
    path = path if path.is_absolute() else REPO / path
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"imds binary not found at {path}: run `cargo build -p imds` or set IMDS_BIN")
    return path


def _read_lines(stream: Any, lines: queue.Queue[str | None]) -> None:
    """Copies the server's stdout into a queue (and keeps draining it so the pipe never fills)."""
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _wait_for_addresses(
    proc: subprocess.Popen[str], lines: queue.Queue[str | None]
) -> tuple[str, str, dict[str, str]]:
    guest = admin = None
    bound: dict[str, str] = {}
    seen: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while guest is None or admin is None:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.01)) if remaining > 0 else None
        except queue.Empty:
            line = None
        if line is None:
            raise RuntimeError(
                f"imds did not announce its addresses (exit status {proc.poll()}); stdout so far: {seen!r}"
            )
        seen.append(line)
        if match := GUEST_LINE.match(line):
            guest = guest or match.group(1)
        elif match := ADMIN_LINE.match(line):
            admin = match.group(1)
        elif match := DIALECT_LINE.match(line):
            bound.setdefault(match.group(1), f"http://{match.group(2)}")
    return guest, admin, bound


@contextlib.contextmanager
def running_imds(tmp: Path, extra_config: str = "", guest_config: str = "", listen: str = "127.0.0.1:0") -> Iterator[Imds]:
    """Runs `imds serve` on loopback ports, with its store in `tmp`, and stops it (by its PID)
    on exit. `extra_config` is appended to the TOML configuration file, `guest_config` to its
    `[guest]` table; the guest plane listens on `listen` (a loopback address)."""
    config = tmp / "imds.toml"
    config.write_text(
        "[guest]\n"
        f'listen = ["{listen}"]\n' + guest_config + "[admin]\n"
        'listen = "127.0.0.1:0"\n'
        'socket = ""\n'
        f'token = "{ADMIN_TOKEN}"\n'
        "[store]\n"
        f"path = {json.dumps(str(tmp / 'imds.db'))}\n" + extra_config
    )
    # The file is the whole configuration: no IMDS_* variable of the caller's may override it.
    env = {key: value for key, value in os.environ.items() if not key.startswith("IMDS_")}
    stderr = (tmp / "imds.stderr").open("w")
    proc = subprocess.Popen(
        [str(_binary()), "serve", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        try:
            guest, admin, bound = _wait_for_addresses(proc, lines)
        except RuntimeError as error:
            stderr.flush()
            raise RuntimeError(f"{error}\nimds stderr:\n{(tmp / 'imds.stderr').read_text()[-4000:]}") from None
        yield Imds(guest_url=f"http://{guest}", admin_url=f"http://{admin}", dialect_urls=bound)
    finally:
        stop_process(proc, timeout=5)
        stderr.close()


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> None:
    """Stops a process this suite started: SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def metadata_host() -> str:
    """A loopback address of this test process's own (127.77.x.y), where a reader that insists
    on port 80 and 8080 of one host (Exoscale, CloudStack) finds imds."""
    pid = os.getpid()
    return f"127.77.{(pid >> 8) % 250 + 1}.{pid % 250 + 1}"


def derived_uuid(instance_id: str) -> str:
    """imds's documented UUID for an id that is not a UUID (rule R1): UUIDv5 of
    `imds:instance/<id>` in the URL name space (OpenStack `uuid`, Azure `vmId`), computed here
    independently of imds."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"imds:instance/{instance_id}"))


def put_instance(imds: Imds, instance_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """Creates an instance through the admin API and returns the record the server stored."""
    request = urllib.request.Request(
        f"{imds.admin_url}/v1/instances/{instance_id}",
        method="PUT",
        data=json.dumps(record).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    with direct.open(request, timeout=10) as response:
        assert response.status in (200, 201), f"PUT /v1/instances/{instance_id} answered {response.status}"
        stored: dict[str, Any] = json.load(response)
    assert stored["id"] == instance_id
    return stored


@pytest.fixture(scope="session")
def imds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    """The shared `imds serve` of the EC2 client tests."""
    with running_imds(tmp_path_factory.mktemp("imds")) as running:
        yield running


@pytest.fixture(scope="session")
def instance(imds: Imds) -> dict[str, Any]:
    """Registers the test instance (bound to 127.0.0.1) and returns the record the server stored."""
    stored = put_instance(imds, INSTANCE_ID, RECORD)
    assert stored["hostname"] == RECORD["hostname"]
    return stored
