"""Real Node.js clients from npm, unmodified, against a daemon of their own:
`@aws-sdk/ec2-metadata-service` (IMDSv2 token, then metadata: it sends `//latest/…`, its
endpoint's `/` joined to the path), `@smithy/credential-provider-imds` (the SDK's instance-role
credentials) and `gcp-metadata` (detection, instance and project values); and PyPI's
`ec2-metadata`.

Each client runs in a child process as its user would run it, from its own instance's source
address: every instance is registered at a different 127.0.10.x address, and the child's sockets
are bound to it (Node: `bind_source.cjs`, loaded with `--require`, sets the local address of
every connection; ec2-metadata: the `urllib3` pool manager its constructor takes, with a
`source_address`). The Node packages are pinned in `tests/clients/node/package-lock.json` and
installed by scripts/test into `target/clients/node`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import ADMIN_TOKEN, REPO, Imds, put_instance, running_imds

NODE_DIR = REPO / "tests" / "clients" / "node"
NODE_MODULES = REPO / "target" / "clients" / "node" / "node_modules"

EC2_SOURCE, CREDS_SOURCE, GCE_SOURCE, PY_SOURCE, STRANGER = (
    "127.0.10.1",
    "127.0.10.2",
    "127.0.10.3",
    "127.0.10.4",
    "127.0.10.9",
)
ROLE = {
    "source": {
        "type": "static",
        "access_key_id": "AKIANODECLIENTS00001",
        "secret_access_key": "node-secret",
        "session_token": "node-session-token",
        "expiration": "2099-01-01T00:00:00Z",
    }
}


def admin(imds: Imds, path: str, method: str, body: Any) -> int:
    import urllib.request

    request = urllib.request.Request(
        f"{imds.admin_url}{path}",
        method=method,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(request, timeout=10) as response:
        return response.status


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    if not (NODE_MODULES / "gcp-metadata").is_dir():
        raise RuntimeError(f"Node clients missing in {NODE_MODULES}: scripts/test installs them (npm ci)")
    with running_imds(tmp_path_factory.mktemp("imds-node")) as running:
        assert admin(running, "/v1/roles/node-app", "PUT", ROLE) == 201
        put_instance(
            running,
            "i-0a1b2c3d4e5f60001",
            {"ipv4": [EC2_SOURCE], "imds": {"tokens": "required"}, "user_data": "#!/bin/sh\necho node\n"},
        )
        put_instance(running, "i-0a1b2c3d4e5f60002", {"ipv4": [CREDS_SOURCE], "iam_role": "node-app"})
        put_instance(
            running,
            "7700000000000000003",
            {
                "hostname": "node-gce",
                "domain": "example.internal",
                "ipv4": [GCE_SOURCE],
                "zone": "europe-west1-b",
                "account": {"id": "node-project"},
                "dialects": {"gce": {"attributes": {"role": "web"}}},
            },
        )
        put_instance(
            running,
            "i-0a1b2c3d4e5f60004",
            {"ipv4": [PY_SOURCE], "instance_type": "t3.nano", "region": "eu-west-1", "zone": "eu-west-1a"},
        )
        yield running


def node(imds: Imds, scenario: str, source: str) -> tuple[int, dict[str, Any]]:
    host = imds.guest_url.removeprefix("http://")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "NODE_PATH": str(NODE_MODULES),
        "IMDS_CLIENT_SOURCE": source,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.guest_url,
        "GCE_METADATA_HOST": host,
        # No shared config files of the machine's user, no proxy.
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "NO_PROXY": "*",
    }
    bind = str(NODE_DIR / "bind_source.cjs")
    done = subprocess.run(
        ["node", "--require", bind, str(NODE_DIR / "clients.cjs"), scenario],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=NODE_DIR,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"{scenario}: no result (exit {done.returncode}); stderr:\n{done.stderr[-3000:]}"
    return done.returncode, json.loads(lines[-1])


def test_ec2_metadata_service_reads_its_instance_with_a_token(daemon: Imds) -> None:
    status, result = node(daemon, "ec2-metadata-service", EC2_SOURCE)
    assert status == 0, result
    assert result["instance_id"] == "i-0a1b2c3d4e5f60001"
    assert result["token_length"] > 0
    assert "instance-id" in result["listing"].split("\n")
    assert result["user_data"] == "#!/bin/sh\necho node\n"


def test_credential_provider_imds_gets_the_role_credentials(daemon: Imds) -> None:
    status, result = node(daemon, "credential-provider-imds", CREDS_SOURCE)
    assert status == 0, result
    assert result["accessKeyId"] == "AKIANODECLIENTS00001"
    assert result["secretAccessKey"] == "node-secret"
    assert result["sessionToken"] == "node-session-token"
    assert result["expiration"] is not None


def test_gcp_metadata_detects_gce_and_reads_its_instance(daemon: Imds) -> None:
    status, result = node(daemon, "gcp-metadata", GCE_SOURCE)
    assert status == 0, result
    assert result["available"] is True
    assert result["id"] == "7700000000000000003"
    assert result["hostname"].startswith("node-gce.")
    assert result["project_id"] == "node-project"
    assert result["attributes"]["role"] == "web"


def test_clients_from_an_unregistered_address_learn_nothing(daemon: Imds) -> None:
    # gcp-metadata concludes there is no metadata server here (a 404, GCE's shape).
    status, result = node(daemon, "gcp-metadata-detect", STRANGER)
    assert (status, result) == (0, {"available": False})
    # The AWS SDK's credential provider fails without any instance's credentials.
    status, result = node(daemon, "credential-provider-imds", STRANGER)
    assert status == 1 and "error" in result, result
    assert "AKIANODECLIENTS" not in json.dumps(result)


EC2_METADATA_PROGRAM = """
import json, sys, urllib3
from ec2_metadata import EC2Metadata

guest_url, source = sys.argv[1], sys.argv[2]
# The pool manager is the package's own configuration point: this one connects from the
# instance's address and sends its requests (for http://169.254.169.254/) to imds.
pool = urllib3.ProxyManager(guest_url, source_address=(source, 0))
metadata = EC2Metadata(pool_manager=pool)
print(json.dumps({
    "instance_id": metadata.instance_id,
    "instance_type": metadata.instance_type,
    "region": metadata.region,
    "availability_zone": metadata.availability_zone,
    "private_ipv4": metadata.private_ipv4,
    "user_data": None if metadata.user_data is None else metadata.user_data.decode(),
}))
"""


def test_pypi_ec2_metadata_reads_its_instance(daemon: Imds) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EC2_METADATA_PROGRAM, daemon.guest_url, PY_SOURCE],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "NO_PROXY": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "instance_id": "i-0a1b2c3d4e5f60004",
        "instance_type": "t3.nano",
        "region": "eu-west-1",
        "availability_zone": "eu-west-1a",
        "private_ipv4": PY_SOURCE,
        "user_data": None,
    }
