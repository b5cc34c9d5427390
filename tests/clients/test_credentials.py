"""Role credentials through real AWS clients: boto3's default credential chain (IMDS being the
only source it can find) across a rotation, and the `sts` credential source assuming a role
against moto's STS server (started here on loopback), rotating, and recovering after STS was
down. Each test runs its own daemon: the clients call from 127.0.0.1.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.credentials
import pytest

from conftest import ADMIN_TOKEN, Imds, put_instance, running_imds, stop_process

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with DIRECT.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Polls `check` (every 0.1 s, at most `timeout` s) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def guest_credentials(imds: Imds, role: str) -> dict[str, Any]:
    status, body = call(f"{imds.guest_url}{CREDENTIALS_PATH}{role}")
    assert status == 200, body
    return json.loads(body)


@pytest.fixture
def only_imds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[Imds], None]:
    """Leaves boto3 exactly one place to find credentials: the IMDS endpoint."""

    def point_at(imds: Imds) -> None:
        for key in list(os.environ):
            if key.startswith("AWS_"):
                monkeypatch.delenv(key)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"{imds.guest_url}/")

    return point_at


def counting_process_role(tmp: Path, lifetime_minutes: int) -> dict[str, Any]:
    """A `process` role whose n-th run prints key ASIACOUNTING000<n>, expiring in `lifetime_minutes`."""
    script = tmp / "creds.sh"
    counter = tmp / "count"
    script.write_text(
        "#!/bin/sh\n"
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}\n"
        f"exp=$(date -u -d '+{lifetime_minutes} minutes' +%Y-%m-%dT%H:%M:%SZ)\n"
        'printf \'{"Version": 1, "AccessKeyId": "ASIACOUNTING000%d", "SecretAccessKey": "secret-%d", '
        '"SessionToken": "token-%d", "Expiration": "%s"}\' $n $n $n $exp\n'
    )
    return {"source": {"type": "process", "command": ["/bin/sh", str(script)], "timeout_seconds": 10}}


def test_boto3_default_chain_gets_the_role_keys_and_refreshes_them_across_a_rotation(
    tmp_path: Path, only_imds: Callable[[Imds], None]
) -> None:
    with running_imds(tmp_path) as imds:
        status, body = call(f"{imds.admin_url}/v1/roles/app", "PUT", counting_process_role(tmp_path, 60))
        assert status == 201, body
        put_instance(imds, "i-0b0703c0de0000001", {"ipv4": ["127.0.0.1"], "iam_role": "app"})
        wait_until("the first credentials", lambda: guest_credentials(imds, "app").get("Code") == "Success")
        only_imds(imds)

        credentials = boto3.Session().get_credentials()
        assert credentials is not None
        assert credentials.method == "iam-role"
        assert isinstance(credentials, botocore.credentials.RefreshableCredentials)
        first = credentials.get_frozen_credentials()
        assert (first.access_key, first.secret_key, first.token) == ("ASIACOUNTING0001", "secret-1", "token-1")

        # The role rotates: imds serves a new key triple.
        status, body = call(f"{imds.admin_url}/v1/roles/app/refresh", "POST")
        assert status == 202, body
        wait_until("the rotated credentials", lambda: guest_credentials(imds, "app")["AccessKeyId"] == "ASIACOUNTING0002")
        # Nothing changes for boto3 until its copy nears expiry; move the client's clock 50 minutes
        # on (botocore's own time hook), within its refresh window, and it fetches again.
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=50)
        credentials._time_fetcher = lambda: later  # noqa: SLF001 - botocore's injectable clock
        second = credentials.get_frozen_credentials()
        assert (second.access_key, second.secret_key, second.token) == ("ASIACOUNTING0002", "secret-2", "token-2")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Moto:
    """moto's server on a loopback port, started and stopped (by its PID) by the test."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        moto_server = Path(sys.executable).with_name("moto_server")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(moto_server), "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=log
            )

        def answers() -> bool:
            try:
                with DIRECT.open(f"{self.url}/moto-api/", timeout=1):
                    return True
            except (urllib.error.URLError, OSError):
                return False

        wait_until("moto's server", answers, timeout=60)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
            self.proc = None


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[Moto]:
    server = Moto(free_port(), tmp_path / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def caller_arn(moto: Moto, credentials: dict[str, Any]) -> str:
    """Who STS says `credentials` (as a guest was given them) belong to."""
    sts = boto3.client(
        "sts",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["Token"],
    )
    return str(sts.get_caller_identity()["Arn"])


def ready(imds: Imds) -> tuple[int, bytes] | None:
    """`/readyz`'s answer once it is 200, else `None`."""
    status, body = call(f"{imds.admin_url}/readyz")
    return (status, body) if status == 200 else None


def role_status(imds: Imds, role: str) -> dict[str, Any]:
    status, body = call(f"{imds.admin_url}/v1/roles/{role}")
    assert status == 200, body
    return json.loads(body)["status"]


def test_the_sts_source_assumes_rotates_and_recovers_after_sts_was_down(tmp_path: Path, moto: Moto) -> None:
    role_arn = "arn:aws:iam::123456789012:role/moto-role"
    base_secret = "base-secret-never-logged"
    with running_imds(tmp_path) as imds:
        role = {"source": {"type": "sts", "role_arn": role_arn, "endpoint": moto.url, "duration_seconds": 3600}}
        status, body = call(f"{imds.admin_url}/v1/roles/moto", "PUT", role)
        assert status == 201, body
        put_instance(imds, "i-0b0703c0de0000002", {"ipv4": ["127.0.0.1"], "iam_role": "moto"})
        # No base credentials yet: the error form, and readiness names the role (the node
        # itself stays ready: one role must not take every instance out of service).
        assert guest_credentials(imds, "moto")["Code"] == "AssumeRoleUnauthorizedAccess"
        # Ready once the signing key generated at this first start is in the view.
        status, body = wait_until("the node ready", lambda: ready(imds), 60)
        assert "moto" in json.loads(body)["roles_without_credentials"], body
        assert json.loads(body)["roles"]["moto"]["valid"] is False, body

        # The seed's bootstrap: base credentials posted write-only, AWS key names.
        base = {"AccessKeyId": "AKIAMOTOBASE00000001", "SecretAccessKey": base_secret}
        status, body = call(f"{imds.admin_url}/v1/roles/moto/base-credentials", "PUT", base)
        assert status == 204, body
        first = wait_until("assumed credentials", lambda: (c := guest_credentials(imds, "moto"))["Code"] == "Success" and c)
        assert first["AccessKeyId"].startswith("ASIA")
        expiration = datetime.datetime.strptime(first["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
        assert expiration - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(minutes=5)
        # They are STS's own: STS says who they belong to.
        assert ":assumed-role/moto-role/" in caller_arn(moto, first)
        assert call(f"{imds.admin_url}/readyz")[0] == 200

        # Rotation: a refresh assumes the role again and guests get the new set.
        call(f"{imds.admin_url}/v1/roles/moto/refresh", "POST")
        second = wait_until(
            "rotated credentials",
            lambda: (c := guest_credentials(imds, "moto"))["AccessKeyId"] != first["AccessKeyId"] and c,
        )

        # STS goes down: the refresh fails, is visible, and the still-valid set keeps being served.
        moto.stop()
        call(f"{imds.admin_url}/v1/roles/moto/refresh", "POST")
        failed = wait_until("the failure to show", lambda: (s := role_status(imds, "moto")).get("error") and s)
        assert "cannot reach STS" in failed["error"] and failed["valid"] is True, failed
        assert guest_credentials(imds, "moto")["AccessKeyId"] == second["AccessKeyId"]
        assert call(f"{imds.admin_url}/readyz")[0] == 200, "still-valid credentials keep the node ready"

        # STS is back: the retries (back-off from 5 s) assume again without anyone asking.
        moto.start()
        recovered = wait_until("recovery", lambda: "error" not in (s := role_status(imds, "moto")) and s, timeout=90)
        assert recovered["access_key_id"] != second["AccessKeyId"]
        assert guest_credentials(imds, "moto")["AccessKeyId"] == recovered["access_key_id"]

    logs = (tmp_path / "imds.stderr").read_text()
    assert "credential refresh failed" in logs
    assert base_secret not in logs and second["SecretAccessKey"] not in logs


def test_an_sts_role_with_a_session_per_instance_is_assumed_as_the_instance(tmp_path: Path, moto: Moto) -> None:
    role_arn = "arn:aws:iam::123456789012:role/moto-role"
    instance_id = "i-0b0703c0de0000003"
    source = {"type": "sts", "role_arn": role_arn, "endpoint": moto.url, "duration_seconds": 3600}
    with running_imds(tmp_path) as imds:
        # Mistyped, or beside a fixed session name: refused, naming the field.
        for wrong in ({"session_per_instance": "yes"}, {"session_per_instance": True, "session_name": "fixed"}):
            status, body = call(f"{imds.admin_url}/v1/roles/moto", "PUT", {"source": {**source, **wrong}})
            assert status == 400 and b"source.session_per_instance" in body, body
        role = {
            "source": {**source, "session_per_instance": True},
            "base_credentials": {"access_key_id": "AKIAMOTOBASE00000002", "secret_access_key": "per-instance-base"},
        }
        status, body = call(f"{imds.admin_url}/v1/roles/moto", "PUT", role)
        assert status == 201, body
        put_instance(imds, instance_id, {"ipv4": ["127.0.0.1"], "iam_role": "moto"})
        issued = wait_until("assumed credentials", lambda: (c := guest_credentials(imds, "moto"))["Code"] == "Success" and c)
        # STS says whose session they are: the instance's (AssumeRole's RoleSessionName).
        assert caller_arn(moto, issued).endswith(f":assumed-role/moto-role/{instance_id}")
        shown = role_status(imds, "moto")
        assert shown == {"valid": True, "session_per_instance": True, "instances": 1}, shown
        # A refresh on demand assumes each instance's session again.
        status, body = call(f"{imds.admin_url}/v1/roles/moto/refresh", "POST")
        assert status == 202, body
        wait_until("a new session", lambda: guest_credentials(imds, "moto")["AccessKeyId"] != issued["AccessKeyId"])
