"""The dialects booted: each one's record, the datasource cloud-init must choose, and one
dialect-specific check. Records are what an operator would write for that cloud: its own id
style, region and zone, one NIC with the address DHCP hands out."""

from __future__ import annotations

import base64
import re
from typing import Any

from harness import HOST_ADDR, VM_ADDR, Boot, Scenario


def _ssh_ed25519(seed: int, comment: str) -> str:
    """A well-formed OpenSSH ed25519 public key line (a made-up 32-byte key)."""

    def string(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    blob = string(b"ssh-ed25519") + string(bytes([seed]) * 32)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


def record(name: str, id: str, mac: str, **extra: Any) -> dict[str, Any]:
    """An instance bound to the VM's MAC and DHCP address, with a key and a static NIC."""
    return {
        "id": id,
        "hostname": f"vm-{name}",
        "domain": "example.internal",
        "ipv4": [VM_ADDR],
        "mac": [mac],
        "ssh_keys": [_ssh_ed25519(len(name), f"operator@{name}")],
        "network": {
            "interfaces": [
                {"mac": mac, "name": "eth0", "ipv4": [{"address": VM_ADDR, "prefix": 24, "gateway": HOST_ADDR}]}
            ],
            "nameservers": [HOST_ADDR],
        },
        **extra,
    }


def expect(*pairs: tuple[str, str]):  # type: ignore[no-untyped-def]
    """Checks that markers hold the given values: ("zone", "us-east-1a"), ..."""

    def check(boot: Boot) -> list[tuple[str, str, str]]:
        return [(f"{key} (cloud-init query)", want, boot.marker(key) or "(none)") for key, want in pairs]

    return check


def eni_static(boot: Boot) -> list[tuple[str, str, str]]:
    """The metadata's static network configuration (not DHCP), rendered by cloud-init to ENI."""
    eni = boot.marker("eni")
    want = f"iface <nic> inet static;address {VM_ADDR}/24"
    seen = re.search(rf"iface (\S+) inet static;address {re.escape(VM_ADDR)}/24", eni)
    return [("network config applied (ENI)", want, want if seen else eni or "(none)")]


def both(*checks):  # type: ignore[no-untyped-def]
    def check(boot: Boot) -> list[tuple[str, str, str]]:
        return [c for fn in checks for c in fn(boot)]

    return check


EC2_ID = "i-0123456789abcdef0"
EC2_UUID = "ec2d1a5c-0de0-4a11-8b00-5e1ec7ab1e01"
OPENSTACK_UUID = "6f0b5a4e-2f3c-4a57-9d1e-0b7c5a1f2e31"
AZURE_UUID = "3c8a0e53-95f7-4c0b-9a8e-6d3b2c1f7a42"

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            name="ec2",
            dialect="ec2",
            record=record("ec2", EC2_ID, "52:54:00:12:00:01", region="us-east-1", zone="us-east-1a",
                          instance_type="t3.micro"),
            datasource="DataSourceEc2Local",
            user="debian",
            specific=expect(("instance-id", EC2_ID), ("zone", "us-east-1a")),
        ),
        Scenario(
            name="ec2-tokens",
            dialect="ec2",
            record=record("ec2-tokens", EC2_UUID, "52:54:00:12:00:02", region="eu-west-1", zone="eu-west-1b",
                          instance_type="t3.micro", imds={"tokens": "required"}),
            datasource="DataSourceEc2Local",
            user="debian",
            specific=expect(("instance-id", EC2_UUID), ("region", "eu-west-1")),
        ),
        Scenario(
            name="openstack",
            dialect="openstack",
            record=record("openstack", OPENSTACK_UUID, "52:54:00:12:00:03", region="RegionOne", zone="nova"),
            datasource="DataSourceOpenStackLocal",
            user="debian",
            specific=expect(("instance-id", OPENSTACK_UUID), ("zone", "nova")),
        ),
        Scenario(
            name="gce",
            dialect="gce",
            record=record("gce", "vm-gce-1", "52:54:00:12:00:04", region="us-central1", zone="us-central1-a"),
            datasource="DataSourceGCELocal",
            # The local stage resolves metadata.google.internal before any resolver is configured
            # (its ephemeral DHCP does not write resolv.conf): on an image without a hosts entry
            # for it, GCE is found in the network stage, once dnsmasq's DNS is in resolv.conf.
            datasource_also=("DataSourceGCE",),
            user="debian",
            specific=expect(("zone", "us-central1-a")),
        ),
        Scenario(
            name="azure",
            dialect="azure",
            record=record("azure", AZURE_UUID, "52:54:00:12:00:05", region="westeurope"),
            datasource="DataSourceAzure",
            user="azureuser",
            specific=expect(("instance-id", AZURE_UUID), ("region", "westeurope")),
            wireserver=True,
        ),
        Scenario(
            name="digitalocean",
            dialect="digitalocean",
            record=record("digitalocean", "3164494", "52:54:00:12:00:06", region="fra1"),
            datasource="DataSourceDigitalOcean",
            user="debian",
            specific=both(expect(("instance-id", "3164494")), eni_static),
        ),
        Scenario(
            name="hetzner",
            dialect="hetzner",
            record=record("hetzner", "4711", "52:54:00:12:00:07", region="eu-central", zone="fsn1-dc14"),
            datasource="DataSourceHetzner",
            user="debian",
            specific=expect(("instance-id", "4711")),
        ),
        Scenario(
            name="nocloud",
            dialect="nocloud",
            record=record("nocloud", "vm-nocloud-1", "52:54:00:12:00:08"),
            datasource="DataSourceNoCloudNet",
            user="debian",
            specific=expect(("instance-id", "vm-nocloud-1")),
        ),
    ]
}
