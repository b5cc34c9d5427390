"""cloud-init's UpCloud datasource (Debian's package, unmodified): `DataSourceUpCloud` reads
`/metadata/v1.json` (DigitalOcean's path, UpCloud's for an instance that enables `upcloud`
first), recognises the server from the admin API's SMBIOS hint, and converts its network."""

from __future__ import annotations

import http.client
import json
import tempfile
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from cloudinit import helpers
from cloudinit.sources import DataSourceUpCloud
from cloudinit.sources.helpers import upcloud

from conftest import KEYS, Imds, derived_uuid, put_instance, running_imds
from seeds import MAC, PRIVATE_MAC, RECORD, USER_DATA, VENDOR_DATA, fake_dmi, smbios

SERVER = "upcloud-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    with running_imds(tmp_path_factory.mktemp("imds-upcloud")) as imds:
        put_instance(imds, SERVER, {**RECORD, "dialects": {"enabled": ["upcloud", "digitalocean"]}})
        plain = {key: value for key, value in RECORD.items() if key not in ("network", "mac")}
        put_instance(imds, "droplet", {**plain, "ipv4": ["127.0.0.2"]})
        yield imds


def datasource(imds: Imds, monkeypatch: pytest.MonkeyPatch) -> DataSourceUpCloud.DataSourceUpCloud:
    hint = smbios(imds, SERVER, "upcloud")["smbios"]
    monkeypatch.setattr(upcloud.dmi, "read_dmi_data", fake_dmi(hint))
    tmp = tempfile.mkdtemp()
    cfg = {"datasource": {"UpCloud": {"metadata_url": f"{imds.guest_url}/metadata/v1.json", "retries": 0}}}
    return DataSourceUpCloud.DataSourceUpCloud(cfg, None, helpers.Paths({"cloud_dir": tmp, "run_dir": tmp}))


def test_the_datasource_reads_the_server(server: Imds, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = datasource(server, monkeypatch)
    assert ds._get_data() is True
    assert ds.metadata["instance-id"] == derived_uuid(SERVER)
    assert ds.metadata["local-hostname"] == "seed-test.example.internal"
    assert ds.metadata["public-keys"] == [KEYS["alice"], KEYS["bob"]]
    assert ds.metadata["availability_zone"] == "fra1-a"
    assert ds.userdata_raw.encode() == USER_DATA
    assert ds.vendordata_raw.encode() == VENDOR_DATA
    # On reboot cloud-init compares the id with the SMBIOS UUID the hint gives.
    assert ds.check_instance_id({}) is True


def test_the_network_converts(server: Imds, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = datasource(server, monkeypatch)
    assert ds._get_data()
    monkeypatch.setattr(upcloud.cloudnet, "get_interfaces_by_mac", lambda: {MAC: "ens3", PRIVATE_MAC: "ens4"})
    config = ds.network_config
    assert config["version"] == 1
    public, private, nameserver = config["config"]
    assert (public["name"], public["mac_address"]) == ("ens3", MAC)
    assert public["subnets"][0] == {"type": "static", "control": "auto", "address": "203.0.113.10",
                                    "gateway": "203.0.113.1", "netmask": "24"}
    assert public["subnets"][1]["address"] == "2001:db8::10" and public["subnets"][1]["type"] == "static6"
    assert public["subnets"][2]["address"] == "198.51.100.7"  # the floating IPv4
    assert private["subnets"][0]["address"] == "10.0.0.11"
    assert nameserver == {"type": "nameserver", "address": ["1.1.1.1"]}


def get_from(url: str, path: str, source: str) -> Any:
    """`GET path` as JSON, from the loopback address `source`."""
    parsed = urllib.parse.urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=5, source_address=(source, 0))
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def test_an_instance_enabling_everything_still_gets_digitalocean_there(server: Imds) -> None:
    droplet = get_from(server.guest_url, "/metadata/v1.json", "127.0.0.2")
    assert "droplet_id" in droplet and "cloud_name" not in droplet
    assert get_from(server.guest_url, "/metadata/v1.json", "127.0.0.1")["cloud_name"] == "upcloud"
