"""cloud-init's NoCloud seed reader (Debian's package, unpacked and unmodified) reading imds: the
seed URL comes from the admin API's SMBIOS hint, parsed by NoCloud's own command-line parser,
then `util.read_seeded` fetches meta-data, user-data and vendor-data as the datasource does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cloudinit import url_helper, util
from cloudinit.net import network_state
from cloudinit.sources import DataSourceNoCloud

from conftest import KEYS, Imds, put_instance, running_imds
from seeds import MAC, PRIVATE_MAC, RECORD, USER_DATA, VENDOR_DATA, smbios

INSTANCE_ID = "nocloud-seed-1"
EMPTY_ID = "nocloud-empty"


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    # A non-default prefix, to show the configured one is what the hint and the server use.
    with running_imds(tmp_path_factory.mktemp("imds-nc"), guest_config='nocloud_prefix = "/seed/nocloud/"\n') as imds:
        put_instance(imds, INSTANCE_ID, RECORD)
        yield imds


def seed_url(imds: Imds) -> str:
    """The URL cloud-init would read: the hint's serial, parsed by NoCloud's own parser, with the
    link-local address replaced by the test daemon's loopback address."""
    hint = smbios(imds, INSTANCE_ID, "nocloud")
    serial = hint["smbios"]["serial"]
    assert serial == hint["kernel_cmdline"] == "ds=nocloud-net;s=http://169.254.169.254/seed/nocloud/"
    fill: dict[str, Any] = {}
    assert DataSourceNoCloud.load_cmdline_data(fill, cmdline=serial)
    # Network mode: in local mode (`ds=nocloud`) this cloud-init cannot read an http seed.
    assert fill["dsmode"] == "net", fill
    url: str = fill["seedfrom"]
    return url.replace("http://169.254.169.254", imds.guest_url)


def test_read_seeded_returns_the_instance(seed: Imds) -> None:
    md, ud, vd = util.read_seeded(seed_url(seed), timeout=5, retries=0)
    assert md == {
        "instance-id": INSTANCE_ID,
        "local-hostname": "seed-test.example.internal",
        "public-keys": [KEYS["alice"], KEYS["bob"]],
        "region": "fra1",
        "availability-zone": "fra1-a",
    }
    assert ud == USER_DATA
    assert vd == VENDOR_DATA


def test_empty_user_data_is_still_a_seed(seed: Imds, tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_imds(tmp_path_factory.mktemp("imds-nc-empty")) as imds:
        put_instance(imds, EMPTY_ID, {"ipv4": ["127.0.0.1"]})
        md, ud, vd = util.read_seeded(f"{imds.guest_url}/nocloud/", timeout=5, retries=0)
    assert md == {"instance-id": EMPTY_ID, "local-hostname": EMPTY_ID}
    assert ud == b""  # 200 with no body: cloud-init treats a missing user-data as fatal
    assert vd is None


def test_network_config_is_netplan_v2_cloud_init_accepts(seed: Imds) -> None:
    response = url_helper.readurl(seed_url(seed) + "network-config", timeout=5, retries=0)
    config = util.load_yaml(response.contents)
    assert config["version"] == 2
    assert config["ethernets"]["eth0"]["match"] == {"macaddress": MAC}
    assert config["ethernets"]["eth0"]["addresses"] == ["203.0.113.10/24", "2001:db8::10/64"]
    assert config["ethernets"]["eth1"]["match"] == {"macaddress": PRIVATE_MAC}
    state = network_state.parse_net_config_data(config, skip_broken=False)
    eth0, eth1 = sorted(state.iter_interfaces(), key=lambda iface: iface["name"])
    assert (eth0["name"], eth0["mac_address"], eth1["name"], eth1["mac_address"]) == ("eth0", MAC, "eth1", PRIVATE_MAC)
    v4, v6 = eth0["subnets"]
    assert (v4["address"], v4["prefix"]) == ("203.0.113.10", 24)
    assert v4["routes"] == [{"gateway": "203.0.113.1", "network": "0.0.0.0", "prefix": 0, "netmask": "0.0.0.0"}]
    assert (v6["address"], v6["prefix"], v6["gateway"]) == ("2001:db8::10", 64, "fe80::1")
    assert [(s["address"], s["prefix"]) for s in eth1["subnets"]] == [("10.0.0.11", 16)]
    assert state.dns_nameservers == ["1.1.1.1"]
    assert state.dns_searchdomains == ["example.internal"]
