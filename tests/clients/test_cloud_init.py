"""cloud-init's own EC2 crawler (Debian's package, unpacked and unmodified) reading imds.

`DataSourceEc2` crawls with these helpers: user-data, then `meta-data/` recursively (every
listed entry must answer), then `dynamic/instance-identity`. The crawl helpers swallow errors
and return `{}`, so each test compares the whole value it reads.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from cloudinit.sources.DataSourceEc2 import convert_ec2_metadata_network_config
from cloudinit.sources.helpers import ec2

from conftest import INSTANCE_ID, KEYS, MAC, TAGS, USER_DATA, Imds

# The newest version cloud-init asks for, and the one it falls back to.
NEW, OLD = "2021-03-23", "2009-04-04"


def crawl(imds: Imds, api_version: str, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    with caplog.at_level(logging.WARNING, logger="cloudinit"):
        metadata = ec2.get_instance_metadata(api_version=api_version, metadata_address=imds.guest_url)
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not problems, f"cloud-init complained while crawling {api_version}: {problems}"
    return metadata


@pytest.mark.parametrize("api_version", [NEW, OLD])
def test_metadata_identifies_the_instance(
    imds: Imds, instance: dict[str, Any], api_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    md = crawl(imds, api_version, caplog)
    assert md["instance-id"] == INSTANCE_ID
    assert md["local-hostname"] == "client-test.example.internal"
    assert md["hostname"] == "client-test.example.internal"
    assert md["placement"]["availability-zone"] == "eu-west-1b"
    assert md["instance-type"] == "m5.large"
    assert md["ami-id"] == "ami-0123456789abcdef0"
    assert md["local-ipv4"] == "10.0.0.11"


@pytest.mark.parametrize("api_version", [NEW, OLD])
def test_public_keys_map_names_to_keys(
    imds: Imds, instance: dict[str, Any], api_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    md = crawl(imds, api_version, caplog)
    assert md["public-keys"] == {name: [key] for name, key in KEYS.items()}


def test_network_interfaces_at_2021(imds: Imds, instance: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    md = crawl(imds, NEW, caplog)
    assert list(md["network"]["interfaces"]["macs"]) == [MAC]
    nic = md["network"]["interfaces"]["macs"][MAC]
    assert nic["mac"] == MAC
    assert nic["device-number"] == "0"
    assert nic["local-ipv4s"] == ["10.0.0.11", "10.0.0.12"]
    assert nic["subnet-ipv4-cidr-block"] == "10.0.0.0/24"
    assert nic["ipv6s"] == "fd00:ec2::11"
    assert nic["subnet-ipv6-cidr-blocks"] == "fd00:ec2::/64"
    assert md["mac"] == MAC


def test_network_config_cloud_init_renders(
    imds: Imds, instance: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """What cloud-init turns the crawled `network/` into (netplan v2) on a guest with NIC eth0."""
    md = crawl(imds, NEW, caplog)
    config = convert_ec2_metadata_network_config(md["network"], macs_to_nics={MAC: "eth0"}, fallback_nic="eth0")
    assert config == {
        "version": 2,
        "ethernets": {
            "eth0": {
                "dhcp4": True,
                "dhcp6": True,
                "match": {"macaddress": MAC},
                "set-name": "eth0",
                "addresses": ["10.0.0.12/24"],  # the secondary IPv4, with the subnet's prefix
            }
        },
    }


def test_2009_04_04_predates_network_and_tags(
    imds: Imds, instance: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    md = crawl(imds, OLD, caplog)
    assert md["instance-id"] == INSTANCE_ID  # the crawl worked...
    assert "network" not in md  # ...and shows only what EC2 served in 2009
    assert "mac" not in md
    assert "tags" not in md


def test_tags_at_2021(imds: Imds, instance: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    md = crawl(imds, NEW, caplog)
    assert md["tags"] == {"instance": TAGS}


@pytest.mark.parametrize("api_version", [NEW, OLD])
def test_user_data_is_byte_exact(imds: Imds, instance: dict[str, Any], api_version: str) -> None:
    user_data = ec2.get_instance_userdata(api_version=api_version, metadata_address=imds.guest_url)
    if isinstance(user_data, str):  # cloud-init hands back bytes; a str would have to be UTF-8
        user_data = user_data.encode()
    assert user_data == USER_DATA


def test_identity_document(imds: Imds, instance: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cloudinit"):
        identity = ec2.get_instance_identity(api_version=NEW, metadata_address=imds.guest_url)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    document = identity["document"]  # a JSON leaf, parsed by cloud-init
    assert document["instanceId"] == INSTANCE_ID
    assert document["region"] == "eu-west-1"
    assert document["availabilityZone"] == "eu-west-1b"
    assert document["instanceType"] == "m5.large"
    assert document["imageId"] == "ami-0123456789abcdef0"
    assert document["privateIp"] == "10.0.0.11"
