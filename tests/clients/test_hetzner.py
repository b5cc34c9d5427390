"""cloud-init's Hetzner helpers (Debian's package, unpacked and unmodified) reading imds:
`read_metadata` and `read_userdata` as `DataSourceHetzner` calls them, the serial check the
datasource makes against the admin API's SMBIOS hint, and the network config it applies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cloudinit import url_helper, util
from cloudinit.net import network_state
from cloudinit.sources import DataSourceHetzner
from cloudinit.sources.helpers import hetzner

from conftest import KEYS, Imds, put_instance, running_imds
from seeds import MAC, PRIVATE_MAC, RECORD, USER_DATA, VENDOR_DATA, fake_dmi, smbios

SERVER_ID = "hcloud-seed-1"  # not numeric: the dialect derives the integer id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    with running_imds(tmp_path_factory.mktemp("imds-hz")) as imds:
        put_instance(imds, SERVER_ID, RECORD)
        yield imds


def test_read_metadata_returns_the_server(server: Imds) -> None:
    md = hetzner.read_metadata(f"{server.guest_url}/hetzner/v1/metadata", timeout=5, retries=0)
    assert isinstance(md["instance-id"], int) and md["instance-id"] > 0
    assert md["hostname"] == "seed-test.example.internal"
    assert md["public-keys"] == [KEYS["alice"], KEYS["bob"]]
    assert md["public-ipv4"] == "203.0.113.10"
    assert md["local-ipv4"] == "10.0.0.11"
    assert md["region"] == "fra1"
    assert md["availability-zone"] == "fra1-a"
    assert md["vendor_data"].encode() == VENDOR_DATA
    assert md["network-config"] == {
        "version": 1,
        "config": [
            {
                "type": "physical",
                "name": "eth0",
                "mac_address": MAC,
                "subnets": [
                    {"type": "static", "address": "203.0.113.10/24", "gateway": "203.0.113.1"},
                    {"type": "static", "address": "2001:db8::10/64", "gateway": "fe80::1"},
                ],
            },
            {
                "type": "physical",
                "name": "eth1",
                "mac_address": PRIVATE_MAC,
                "subnets": [{"type": "static", "address": "10.0.0.11/16"}],
            },
            {"type": "nameserver", "address": ["1.1.1.1"], "search": ["example.internal"]},
        ],
    }
    # cloud-init's own parser accepts the network config.
    state = network_state.parse_net_config_data(md["network-config"], skip_broken=False)
    assert [iface["name"] for iface in state.iter_interfaces()] == ["eth0", "eth1"]
    assert state.dns_nameservers == ["1.1.1.1"]


def test_instance_id_leaf_is_the_connectivity_probe(server: Imds) -> None:
    md = hetzner.read_metadata(f"{server.guest_url}/hetzner/v1/metadata", timeout=5, retries=0)
    # The datasource's connectivity check reads this leaf and needs a 200.
    leaf = url_helper.readurl(f"{server.guest_url}/hetzner/v1/metadata/instance-id", timeout=5, retries=0)
    assert leaf.ok()
    assert leaf.contents == str(md["instance-id"]).encode()


def test_read_userdata_returns_the_bytes(server: Imds) -> None:
    ud = hetzner.read_userdata(f"{server.guest_url}/hetzner/v1/userdata", timeout=5, retries=0)
    assert ud == USER_DATA
    # What the datasource keeps after its base64 guess: cloud-config is not base64, so unchanged.
    assert hetzner.maybe_b64decode(ud) == USER_DATA


def test_smbios_serial_matches_the_instance_id(server: Imds, monkeypatch: pytest.MonkeyPatch) -> None:
    hint = smbios(server, SERVER_ID, "hetzner")
    monkeypatch.setattr(DataSourceHetzner.dmi, "read_dmi_data", fake_dmi(hint["smbios"]))
    on_hetzner, serial = DataSourceHetzner.get_hcloud_data()
    assert on_hetzner is True
    md = hetzner.read_metadata(f"{server.guest_url}/hetzner/v1/metadata", timeout=5, retries=0)
    # DataSourceHetzner raises unless str(instance-id) equals the serial.
    assert str(md["instance-id"]) == serial


def test_private_networks(server: Imds) -> None:
    response = url_helper.readurl(f"{server.guest_url}/hetzner/v1/metadata/private-networks", timeout=5, retries=0)
    networks = util.load_yaml(response.contents, allowed=(list,))
    assert networks == [
        {
            "ip": "10.0.0.11",
            "alias_ips": [],
            "interface_num": 1,
            "mac_address": PRIVATE_MAC,
            "network": "10.0.0.0/16",
            "subnet": "10.0.0.0/16",
        }
    ]
