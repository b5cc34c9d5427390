"""cloud-init's Akamai (Linode) datasource (Debian 13's package, unmodified, see
newer_cloud_init.py) reading imds: `PUT /v1/token`, `/v1/instance` as JSON with the token, and
`/v1/user-data` base64-decoded, on a machine presenting the admin API's SMBIOS hint."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import KEYS, Imds, put_instance, running_imds
from newer_cloud_init import read_akamai
from seeds import RECORD, USER_DATA, smbios

LINODE_ID = "48211302"


@pytest.fixture(scope="module")
def linode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    with running_imds(tmp_path_factory.mktemp("imds-linode")) as imds:
        put_instance(imds, LINODE_ID, {**RECORD, "instance_type": "g6-standard-1"})
        yield imds


def call(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_datasource_reads_the_linode(linode: Imds) -> None:
    hint = smbios(linode, LINODE_ID, "linode")["smbios"]
    assert hint["manufacturer"] == "Linode" and hint["serial"] == LINODE_ID
    found = read_akamai(linode.guest_url, hint)
    assert found["found"] is True
    assert found["instance_id"] == LINODE_ID
    md = found["metadata"]
    assert md["id"] == int(LINODE_ID)
    assert md["label"] == "seed-test.example.internal"
    assert (md["region"], md["type"]) == ("fra1", "g6-standard-1")
    assert md["tags"] == ["env:test", "web"]
    assert base64.b64decode(found["userdata"]) == USER_DATA
    # On reboot cloud-init checks the SMBIOS serial against the id it stored.
    assert found["same_instance"] is True


def test_reads_need_the_token_and_keys_are_the_record_s(linode: Imds) -> None:
    status, body = call(f"{linode.guest_url}/v1/instance", headers={"Accept": "application/json"})
    assert status == 401 and json.loads(body) == {"errors": [{"reason": "Unauthorized"}]}
    status, token = call(f"{linode.guest_url}/v1/token", "PUT", {"Metadata-Token-Expiry-Seconds": "60"})
    assert status == 200
    headers = {"Metadata-Token": token.decode(), "Accept": "application/json"}
    status, body = call(f"{linode.guest_url}/v1/ssh-keys", headers=headers)
    assert status == 200 and json.loads(body) == {"users": {"root": [KEYS["alice"], KEYS["bob"]]}}
    status, body = call(f"{linode.guest_url}/v1/network", headers=headers)
    network = json.loads(body)
    assert network["ipv4"]["public"] == ["203.0.113.10/24"]
    assert network["ipv4"]["private"] == ["10.0.0.11/16"]
    status, text = call(f"{linode.guest_url}/v1/instance", headers={"Metadata-Token": token.decode()})
    assert status == 200 and f"id: {LINODE_ID}\n" in text.decode()


def test_a_disabled_endpoint_refuses_in_linode_s_shape(tmp_path: Path) -> None:
    with running_imds(tmp_path) as imds:
        put_instance(imds, LINODE_ID, {**RECORD, "imds": {"endpoint": "disabled"}})
        status, body = call(f"{imds.guest_url}/v1/token", "PUT", {"Metadata-Token-Expiry-Seconds": "60"})
    assert (status, json.loads(body)) == (403, {"errors": [{"reason": "Forbidden"}]})
