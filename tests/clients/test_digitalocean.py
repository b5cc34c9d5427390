"""cloud-init's DigitalOcean helpers (Debian's package, unpacked and unmodified) reading imds:
`read_metadata` fetches `/metadata/v1.json` as `DataSourceDigitalOcean` does, and
`read_sysinfo` accepts the SMBIOS values the admin API gives for the droplet."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cloudinit import url_helper
from cloudinit.sources.helpers import digitalocean

from conftest import KEYS, Imds, put_instance, running_imds
from seeds import MAC, PRIVATE_MAC, RECORD, USER_DATA, VENDOR_DATA, fake_dmi, smbios

DROPLET_ID = "3164494"


@pytest.fixture(scope="module")
def droplet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    with running_imds(tmp_path_factory.mktemp("imds-do")) as imds:
        put_instance(imds, DROPLET_ID, RECORD)
        yield imds


def read(imds: Imds) -> dict[str, Any]:
    md: dict[str, Any] = digitalocean.read_metadata(f"{imds.guest_url}/metadata/v1.json", timeout=5, retries=0)
    return md


def test_read_metadata_returns_the_droplet(droplet: Imds) -> None:
    md = read(droplet)
    assert md["droplet_id"] == int(DROPLET_ID)
    assert md["hostname"] == "seed-test.example.internal"
    assert md["region"] == "fra1"
    assert md["public_keys"] == [KEYS["alice"], KEYS["bob"]]
    assert md["user_data"].encode() == USER_DATA
    assert md["vendor_data"].encode() == VENDOR_DATA
    assert md["tags"] == ["env:test", "web"]
    assert md["dns"] == {"nameservers": ["1.1.1.1"]}
    assert md["floating_ip"] == {"ipv4": {"active": True, "ip_address": "198.51.100.7"}}
    assert md["interfaces"] == {
        "public": [
            {
                "ipv4": {"ip_address": "203.0.113.10", "netmask": "255.255.255.0", "gateway": "203.0.113.1"},
                "ipv6": {"ip_address": "2001:db8::10", "cidr": 64, "gateway": "fe80::1"},
                "mac": MAC,
                "type": "public",
            }
        ],
        "private": [{"ipv4": {"ip_address": "10.0.0.11", "netmask": "255.255.0.0"}, "mac": PRIVATE_MAC, "type": "private"}],
    }


def test_network_conversion_of_the_interfaces(droplet: Imds, monkeypatch: pytest.MonkeyPatch) -> None:
    # cloud-init maps each MAC to a local NIC; present the droplet's two NICs.
    monkeypatch.setattr(digitalocean.cloudnet, "get_interfaces_by_mac", lambda: {MAC: "ens3", PRIVATE_MAC: "ens4"})
    md = read(droplet)
    config = digitalocean.convert_network_configuration(md["interfaces"], md["dns"]["nameservers"])
    public, private, nameserver = config["config"]
    assert (public["name"], public["mac_address"]) == ("eth0", MAC)
    assert public["subnets"][0] == {
        "type": "static",
        "control": "auto",
        "address": "203.0.113.10",
        "gateway": "203.0.113.1",
        "netmask": "255.255.255.0",
    }
    assert public["subnets"][1]["address"] == "2001:db8::10/64"
    assert (private["name"], private["subnets"][0]["address"]) == ("eth1", "10.0.0.11")
    assert nameserver == {"type": "nameserver", "address": ["1.1.1.1"]}


def test_smbios_hint_identifies_the_droplet(droplet: Imds, monkeypatch: pytest.MonkeyPatch) -> None:
    hint = smbios(droplet, DROPLET_ID, "digitalocean")
    monkeypatch.setattr(digitalocean.dmi, "read_dmi_data", fake_dmi(hint["smbios"]))
    found, droplet_id = digitalocean.read_sysinfo()
    assert found is True
    assert droplet_id == str(read(droplet)["droplet_id"])


def test_an_unknown_path_is_an_error(droplet: Imds) -> None:
    with pytest.raises(url_helper.UrlError) as raised:
        digitalocean.read_metadata(f"{droplet.guest_url}/metadata/v1/nothing", timeout=5, retries=0)
    assert raised.value.code == 404
