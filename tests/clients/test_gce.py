"""Real GCE clients against a daemon of their own: google-auth's metadata module (the detection
ping, `get_project_id`, `get`, service-account info) pointed at imds with `GCE_METADATA_HOST` and
`GCE_METADATA_IP`, and cloud-init's GCE reader (`DataSourceGCE.read_md`) given imds's address.

google-auth reads its environment variables when it is imported, so it runs in a child Python
process with the variables set, as a user would run it. cloud-init's reader first checks that the
metadata address resolves; for an IP address that needs no DNS, but the check also resolves three
names that must not exist to detect DNS hijacking. So that nothing leaves the machine, the test
seeds that cache (`cloudinit.util._DNS_REDIRECT_IP`) with "no hijacking seen"; the reader's code
runs unmodified.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import KEYS, USER_DATA, Imds, _ssh_ed25519, put_instance, running_imds

GCE_ID = "5550001111"
CAROL = _ssh_ed25519(3, "carol@project")
RECORD: dict[str, Any] = {
    "hostname": "gce-client",
    "domain": "example.internal",
    "ipv4": ["127.0.0.1"],
    "zone": "europe-west1-b",
    "account": {"id": "123456789012", "name": "acme-prod"},
    "iam_role": "app-role",
    "default_user": "ubuntu",
    "ssh_keys": [KEYS["alice"], {"key": KEYS["bob"], "user": "bob"}],
    "user_data": {"base64": base64.b64encode(USER_DATA).decode()},
    "dialects": {
        "gce": {
            "attributes": {"enable-guest-attributes": "TRUE"},
            "project_attributes": {"ssh-keys": f"ubuntu:{CAROL}"},
        }
    },
}


@pytest.fixture(scope="module")
def gce(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    with running_imds(tmp_path_factory.mktemp("imds-gce")) as running:
        put_instance(running, GCE_ID, RECORD)
        yield running


GOOGLE_AUTH_PROGRAM = """
import json
import google.auth.transport.requests
from google.auth.compute_engine import _metadata

request = google.auth.transport.requests.Request()
print(json.dumps({
    "ping": _metadata.ping(request),
    "is_on_gce": _metadata.is_on_gce(request),
    "project_id": _metadata.get_project_id(request),
    "hostname": _metadata.get(request, "instance/hostname"),
    "zone": _metadata.get(request, "instance/zone"),
    "attributes": _metadata.get(request, "instance/attributes/", recursive=True),
    "service_account": _metadata.get_service_account_info(request),
    "universe_domain": _metadata.get_universe_domain(request),
}))
"""


def _host(imds: Imds) -> str:
    return imds.guest_url.removeprefix("http://")


def run_google_auth(imds: Imds) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("GCE_")}
    env.update({"GCE_METADATA_HOST": _host(imds), "GCE_METADATA_IP": _host(imds), "NO_PROXY": "*"})
    done = subprocess.run(
        [sys.executable, "-c", GOOGLE_AUTH_PROGRAM], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"google-auth failed:\n{done.stderr}"
    return json.loads(done.stdout)


def test_google_auth_detects_gce_and_reads_the_instance(gce: Imds) -> None:
    seen = run_google_auth(gce)
    assert seen["ping"] is True
    assert seen["is_on_gce"] is True
    assert seen["project_id"] == "acme-prod"
    assert seen["hostname"] == "gce-client.example.internal"
    assert seen["zone"] == "projects/123456789012/zones/europe-west1-b"
    attributes = seen["attributes"]
    assert attributes["user-data-encoding"] == "base64"
    assert base64.b64decode(attributes["user-data"]) == USER_DATA
    assert attributes["ssh-keys"].splitlines() == [f"ubuntu:{KEYS['alice']}", f"bob:{KEYS['bob']}"]
    assert seen["service_account"] == {
        "aliases": ["default"],
        "email": "app-role@acme-prod.iam.gserviceaccount.com",
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }
    # No universe/ directory: google-auth falls back to the default universe on the 404.
    assert seen["universe_domain"] == "googleapis.com"


def test_google_auth_ping_fails_without_the_flavor_header_reply(tmp_path: Path) -> None:
    """The ping must see the response header: an address with no instance gets EC2's 403
    (the ping's path `/` is EC2's) without it, and google-auth then reports "not on GCE"."""
    with running_imds(tmp_path) as empty:
        seen = run_google_auth_ping_only(empty)
    assert seen is False


def run_google_auth_ping_only(imds: Imds) -> bool:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("GCE_")}
    env.update({"GCE_METADATA_HOST": _host(imds), "GCE_METADATA_IP": _host(imds), "NO_PROXY": "*"})
    program = (
        "import json, google.auth.transport.requests as t\n"
        "from google.auth.compute_engine import _metadata\n"
        "print(json.dumps(_metadata.ping(t.Request(), retry_count=1)))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return bool(json.loads(done.stdout))


def test_cloud_init_gce_reader_returns_exactly_the_instance(gce: Imds) -> None:
    from cloudinit import util
    from cloudinit.sources import URLParams
    from cloudinit.sources import DataSourceGCE

    util._DNS_REDIRECT_IP = set()  # see the module docstring: no DNS queries leave the machine
    result = DataSourceGCE.read_md(
        address=f"{gce.guest_url}/computeMetadata/v1/",
        url_params=URLParams(max_wait_seconds=10, timeout_seconds=5, num_retries=0, sec_between_retries=0),
        platform_check=False,
    )
    assert result["success"] is True, result["reason"]
    md = result["meta-data"]
    assert md["instance-id"] == GCE_ID
    assert md["availability-zone"] == "europe-west1-b"
    assert md["local-hostname"] == "gce-client.example.internal"
    assert json.loads(md["project-data"]) == {"ssh-keys": f"ubuntu:{CAROL}"}
    assert result["user-data"] == USER_DATA
    # Instance keys, then project keys (not blocked); cloud-init keeps those of its users.
    assert md["public-keys-data"] == [f"ubuntu:{KEYS['alice']}", f"bob:{KEYS['bob']}", f"ubuntu:{CAROL}"]
    assert DataSourceGCE._parse_public_keys(md["public-keys-data"], default_user="ubuntu") == [KEYS["alice"], CAROL]


def test_guest_attributes_round_trip_like_cloud_inits_host_key_publisher(gce: Imds) -> None:
    """cloud-init publishes host keys with a PUT to guest-attributes/hostkeys/<type>; its URL is
    fixed to metadata.google.internal, so the same request is sent here to imds's address."""
    url = f"{gce.guest_url}/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    put = urllib.request.Request(url, data=KEYS["alice"].encode(), method="PUT", headers={"Metadata-Flavor": "Google"})
    with direct.open(put, timeout=10) as response:
        assert response.status == 200
    get = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
    with direct.open(get, timeout=10) as response:
        assert response.headers["Metadata-Flavor"] == "Google"
        assert response.read().decode() == KEYS["alice"]
