"""cloud-init's own OpenStack crawler (Debian's package, unpacked and unmodified) reading imds.

`read_metadata_service` is what `DataSourceOpenStack` calls: it lists `/openstack`, picks the
newest version it knows, reads `meta_data.json` (required), `user_data`, `vendor_data.json`,
`vendor_data2.json` and `network_data.json`, then crawls the EC2 tree. That EC2 crawl is
hard-coded to http://169.254.169.254; here it is pointed at the daemon under test (and nowhere
else) by replacing the reader's `_read_ec2_metadata` with the same helper call plus the address.

This module runs a daemon of its own, with one instance bound to 127.0.0.1.
"""

from __future__ import annotations

import base64
import gzip
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudinit import sources
from cloudinit.sources.DataSourceOpenStack import read_metadata_service
from cloudinit.sources.helpers import ec2, openstack

from conftest import Imds, _ssh_ed25519, derived_uuid, put_instance, running_imds

INSTANCE_ID = "os-client-1"
MAC = "02:00:00:0a:01:0b"
KEYS = {"carol": _ssh_ed25519(3, "carol@laptop"), "dave": _ssh_ed25519(4, "dave@desk")}
TAGS = {"role": "db", "tier": "gold"}
USER_DATA = gzip.compress(b"#cloud-config\nhostname: os-client\n", mtime=0)
VENDOR_DATA = "#cloud-config\npackages: [htop]\n"
PROJECT = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

RECORD: dict[str, Any] = {
    "hostname": "os-client",
    "domain": "example.internal",
    "name": "OpenStack client test",
    "ipv4": ["127.0.0.1"],
    "mac": [MAC],
    "zone": "az-2",
    "launch_index": 1,
    "account": {"id": PROJECT},
    "ssh_keys": [{"key": key, "name": name} for name, key in KEYS.items()],
    "tags": TAGS,
    "user_data": {"base64": base64.b64encode(USER_DATA).decode()},
    "vendor_data": VENDOR_DATA,
    "network": {
        "interfaces": [
            {
                "mac": MAC,
                "mtu": 1450,
                "ipv4": [{"address": "10.1.0.11", "prefix": 24, "gateway": "10.1.0.1"}],
                "ipv6": [{"address": "fd00:1::b", "prefix": 64}],
            }
        ],
        "nameservers": ["10.1.0.2"],
        "routes": [{"to": "192.168.0.0/16", "via": "10.1.0.254"}],
    },
}
UUID = derived_uuid(INSTANCE_ID)


@pytest.fixture(scope="module")
def imds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    with running_imds(tmp_path_factory.mktemp("imds-openstack")) as running:
        put_instance(running, INSTANCE_ID, RECORD)
        yield running


def read(imds: Imds, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """`read_metadata_service` against the daemon, its EC2 crawl aimed at the daemon too."""

    def ec2_here(reader: openstack.MetadataReader) -> dict[str, Any]:
        return ec2.get_instance_metadata(
            metadata_address=imds.guest_url, ssl_details=reader.ssl_details, timeout=reader.timeout, retries=0
        )

    monkeypatch.setattr(openstack.MetadataReader, "_read_ec2_metadata", ec2_here)
    with caplog.at_level(logging.DEBUG, logger="cloudinit"):
        results = read_metadata_service(imds.guest_url, timeout=5, retries=0)
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not problems, f"cloud-init complained: {problems}"
    return results


def test_cloud_init_reads_the_instance(
    imds: Imds, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    results = read(imds, monkeypatch, caplog)
    selected = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Selected version")]
    assert selected and selected[0].startswith("Selected version '2018-08-27'"), selected
    md = results["metadata"]
    assert md["instance-id"] == UUID
    assert md["uuid"] == UUID
    assert md["local-hostname"] == "os-client.example.internal"
    assert md["name"] == "OpenStack client test"
    assert md["public_keys"] == KEYS
    assert md["keys"] == [{"name": name, "type": "ssh", "data": key} for name, key in KEYS.items()]
    assert md["meta"] == TAGS
    assert md["availability_zone"] == "az-2"
    assert md["launch_index"] == 1
    assert md["project_id"] == PROJECT
    assert md["devices"] == []
    assert len(md["random_seed"]) == 512  # decoded by cloud-init
    assert results["userdata"] == USER_DATA
    assert results["vendordata"] == {"cloud-init": VENDOR_DATA}
    assert sources.convert_vendordata(results["vendordata"]) == VENDOR_DATA
    assert results["vendordata2"] == {}
    assert results["files"] == {}
    assert "dsmode" not in results


def test_network_data_converts_to_the_instance_network(
    imds: Imds, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    results = read(imds, monkeypatch, caplog)
    # The guest's NIC with the record's MAC is eth0: cloud-init names links by MAC.
    config = openstack.convert_net_json(results["networkdata"], known_macs={MAC: "eth0"})
    assert config == {
        "version": 1,
        "config": [
            {
                "name": "eth0",
                "type": "physical",
                "mac_address": MAC,
                "mtu": 1450,
                "accept-ra": False,
                "subnets": [
                    {
                        "type": "static",
                        "address": "10.1.0.11",
                        "netmask": "255.255.255.0",
                        "routes": [
                            {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.1.0.1"},
                            {"network": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "10.1.0.254"},
                        ],
                        "ipv4": True,
                    },
                    {
                        "type": "static6",
                        "address": "fd00:1::b",
                        "netmask": "ffff:ffff:ffff:ffff::",
                        "routes": [],
                        "ipv6": True,
                    },
                ],
            },
            {"type": "nameserver", "address": "10.1.0.2"},
        ],
    }


def test_the_ec2_side_crawl_tells_the_same_story(
    imds: Imds, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    results = read(imds, monkeypatch, caplog)
    md, ec2_md = results["metadata"], results["ec2-metadata"]
    assert ec2_md["instance-id"] == INSTANCE_ID
    assert ec2_md["local-hostname"] == md["local-hostname"]
    assert ec2_md["public-keys"] == {name: [key] for name, key in md["public_keys"].items()}
    assert ec2_md["local-ipv4"] == "10.1.0.11"
    assert ec2_md["placement"]["availability-zone"] == md["availability_zone"]
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(f"{imds.guest_url}/latest/user-data", timeout=5) as response:
        assert response.read() == results["userdata"]


def test_required_ec2_tokens_leave_the_openstack_data_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # With `imds.tokens = required` the tokenless EC2 side-crawl is refused (401) and cloud-init
    # records no EC2 metadata; the OpenStack paths never need a token.
    with running_imds(tmp_path) as own:
        put_instance(own, INSTANCE_ID, {**RECORD, "imds": {"tokens": "required"}})

        def ec2_here(reader: openstack.MetadataReader) -> dict[str, Any]:
            return ec2.get_instance_metadata(metadata_address=own.guest_url, timeout=reader.timeout, retries=0)

        monkeypatch.setattr(openstack.MetadataReader, "_read_ec2_metadata", ec2_here)
        results = read_metadata_service(own.guest_url, timeout=5, retries=0)
    assert results["ec2-metadata"] == {}
    assert results["metadata"]["instance-id"] == UUID
    assert results["userdata"] == USER_DATA
