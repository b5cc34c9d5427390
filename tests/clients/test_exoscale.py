"""cloud-init's Exoscale datasource and CloudStack's password client (Debian's package,
unmodified) reading imds: the EC2-shaped tree at `/1.0/` on port 80 and the password server on
port 8080 of the same address (a listener bound to Exoscale, `[guest] dialect_listen`), whose
password is served once, until the guest acknowledges it."""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from cloudinit import helpers
from cloudinit.sources import DataSourceCloudStack, DataSourceExoscale

from conftest import ADMIN_TOKEN, KEYS, Imds, derived_uuid, metadata_host, put_instance, running_imds
from seeds import RECORD, USER_DATA, fake_dmi, smbios

VM = "exo-1"


def record(password: str) -> dict[str, Any]:
    return {**RECORD, "instance_type": "standard.small",
            "dialects": {"enabled": ["exoscale"], "exoscale": {"password": password}}}


@pytest.fixture(scope="module")
def exoscale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Imds, str]]:
    host = metadata_host()
    config = f'dialect_listen = {{ exoscale = ["{host}:8080"] }}\n'
    with running_imds(tmp_path_factory.mktemp("imds-exo"), guest_config=config, listen=f"{host}:80") as imds:
        put_instance(imds, VM, record("first-password"))
        yield imds, host


def replace(imds: Imds, doc: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{imds.admin_url}/v1/instances/{VM}",
        method="PUT",
        data=json.dumps(doc).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        assert response.status == 200


def test_the_datasource_reads_the_tree_and_the_password_once(exoscale: tuple[Imds, str], monkeypatch: pytest.MonkeyPatch) -> None:
    imds, host = exoscale
    hint = smbios(imds, VM, "exoscale")["smbios"]
    monkeypatch.setattr(DataSourceExoscale.dmi, "read_dmi_data", fake_dmi(hint))
    tmp = tempfile.mkdtemp()
    cfg = {"datasource": {"Exoscale": {"metadata_url": f"http://{host}", "retries": 0, "timeout": 5}}}
    ds = DataSourceExoscale.DataSourceExoscale(cfg, None, helpers.Paths({"cloud_dir": tmp, "run_dir": tmp}))
    assert ds._get_data() is True
    assert ds.metadata["instance-id"] == derived_uuid(VM)
    assert ds.metadata["local-hostname"] == "seed-test.example.internal"
    assert ds.metadata["service-offering"] == "standard.small"
    assert ds.metadata["public-ipv4"] == "203.0.113.10"
    assert sorted(ds.get_public_ssh_keys()) == sorted([KEYS["alice"], KEYS["bob"]])
    assert ds.userdata_raw == USER_DATA
    assert ds.get_config_obj()["password"] == "first-password"
    # Acknowledged by that read: the next boot gets no password.
    again = DataSourceExoscale.read_metadata(metadata_url=f"http://{host}", url_retries=0, url_timeout=5)
    assert again["password"] is None
    assert again["meta-data"]["instance-id"] == derived_uuid(VM)


def test_cloudstack_s_password_client_reads_a_new_password(exoscale: tuple[Imds, str]) -> None:
    if shutil.which("wget") is None:
        raise RuntimeError("CloudStack's password client runs wget: apt-get install wget")
    imds, host = exoscale
    replace(imds, record("second-password"))
    client = DataSourceCloudStack.CloudStackPasswordServerClient(host)
    assert client.get_password() == "second-password"
    assert client.get_password() is None  # it acknowledged it
