"""cloud-init's Vultr datasource (Debian's package, unmodified but for the ephemeral DHCP it
runs before the request, which needs a real NIC): `DataSourceVultr` reads `/v1.json` with its
`Metadata-Token: cloudinit` header, recognises the instance from the admin API's SMBIOS hint and
builds its network config; cloud-init's EC2 crawler reads the `/latest/` tree of an instance
that enables `vultr` first."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from cloudinit import distros, helpers
from cloudinit.sources import DataSourceVultr
from cloudinit.sources.helpers import ec2, vultr

from conftest import KEYS, Imds, derived_uuid, put_instance, running_imds
from seeds import MAC, PRIVATE_MAC, RECORD, USER_DATA, VENDOR_DATA, fake_dmi, smbios

INSTANCE = "vultr-1"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    with running_imds(tmp_path_factory.mktemp("imds-vultr")) as imds:
        put_instance(imds, INSTANCE, {**RECORD, "dialects": {"enabled": ["vultr", "ec2"]}})
        yield imds


def datasource(imds: Imds, monkeypatch: pytest.MonkeyPatch) -> DataSourceVultr.DataSourceVultr:
    hint = smbios(imds, INSTANCE, "vultr")["smbios"]
    monkeypatch.setattr(vultr.dmi, "read_dmi_data", fake_dmi(hint))
    # The request itself is the helper's own read_metadata; only the DHCP around it is skipped.
    def without_dhcp(url, timeout, retries, sec_between, agent, tmp_dir=None):  # type: ignore[no-untyped-def]
        import json

        return json.loads(vultr.read_metadata(url, timeout, retries, sec_between, agent))

    monkeypatch.setattr(vultr, "get_metadata", without_dhcp)
    monkeypatch.setattr(vultr, "get_interface_map", lambda: {MAC: "ens3", PRIVATE_MAC: "ens7"})
    tmp = tempfile.mkdtemp()
    cfg = {"datasource": {"Vultr": {"url": imds.guest_url, "retries": 0}}}
    paths = helpers.Paths({"cloud_dir": tmp, "run_dir": tmp})
    distro = distros.fetch("debian")("debian", {}, paths)
    return DataSourceVultr.DataSourceVultr(cfg, distro, paths)


def test_the_datasource_reads_the_instance(instance: Imds, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = datasource(instance, monkeypatch)
    assert ds._get_data() is True
    assert ds.metadata["instance-id"] == derived_uuid(INSTANCE)
    assert ds.metadata["local-hostname"] == "seed-test.example.internal"
    assert ds.metadata["region"] == "fra1"
    assert ds.metadata["public-keys"] == [KEYS["alice"], KEYS["bob"]]
    assert ds.userdata_raw.encode() == USER_DATA
    assert ds.vendordata_raw.encode() == VENDOR_DATA
    # On reboot: the SMBIOS serial (SUBID) must match the system UUID, as the hint gives them.
    assert ds.check_instance_id({}) is True


def test_the_network_config(instance: Imds, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = datasource(instance, monkeypatch)
    assert ds._get_data()
    nameservers, public, private = ds.network_config["config"]
    assert nameservers["type"] == "nameserver"
    assert (public["name"], public["mac_address"]) == ("ens3", MAC)
    assert public["subnets"][0] == {"type": "dhcp", "control": "auto"}
    assert (private["name"], private["subnets"][0]["address"], private["subnets"][0]["netmask"]) == (
        "ens7",
        "10.0.0.11",
        "255.255.0.0",
    )


def test_the_latest_tree_is_vultr_s(instance: Imds) -> None:
    md = ec2.get_instance_metadata(api_version="latest", metadata_address=instance.guest_url, retries=0)
    assert md["instance-id"] == derived_uuid(INSTANCE)
    assert md["hostname"] == "seed-test.example.internal"
    assert md["public-ipv4"] == "203.0.113.10"
    ud = ec2.get_instance_userdata(api_version="latest", metadata_address=instance.guest_url, retries=0)
    assert ud == USER_DATA
