"""Shared pieces of the DigitalOcean, Hetzner and NoCloud client tests: one record (bound to
127.0.0.1, where the clients call from) and the admin API's SMBIOS hint for it."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from conftest import ADMIN_TOKEN, KEYS, Imds

MAC = "02:00:00:0d:00:0b"
PRIVATE_MAC = "02:00:00:0d:00:0c"
USER_DATA = b"#cloud-config\nruncmd:\n  - [sh, -c, 'echo seeded > /run/imds-seed']\n"
VENDOR_DATA = b"#cloud-config\npackages: [htop]\n"

RECORD: dict[str, Any] = {
    "hostname": "seed-test",
    "domain": "example.internal",
    "ipv4": ["127.0.0.1"],
    "mac": [MAC],
    "region": "fra1",
    "zone": "fra1-a",
    "ssh_keys": [KEYS["alice"], KEYS["bob"]],
    "tags": {"env": "test", "web": ""},
    "user_data": USER_DATA.decode(),
    "vendor_data": VENDOR_DATA.decode(),
    "network": {
        "interfaces": [
            {
                "mac": MAC,
                "name": "eth0",
                "ipv4": [{"address": "203.0.113.10", "prefix": 24, "gateway": "203.0.113.1"}],
                "ipv6": [{"address": "2001:db8::10", "prefix": 64, "gateway": "fe80::1"}],
                "floating_ipv4": "198.51.100.7",
            },
            {"mac": PRIVATE_MAC, "name": "eth1", "role": "private", "ipv4": [{"address": "10.0.0.11", "prefix": 16}]},
        ],
        "nameservers": ["1.1.1.1"],
        "search": ["example.internal"],
    },
}


def smbios(imds: Imds, instance_id: str, dialect: str) -> dict[str, Any]:
    """The admin API's SMBIOS hint for the instance and dialect."""
    request = urllib.request.Request(
        f"{imds.admin_url}/v1/instances/{instance_id}/smbios?dialect={dialect}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(request, timeout=10) as response:
        assert response.status == 200
        hint: dict[str, Any] = json.load(response)
    return hint


def fake_dmi(values: dict[str, str]):  # type: ignore[no-untyped-def]
    """A stand-in for `cloudinit.dmi.read_dmi_data` presenting `values` (the VMM's SMBIOS)."""
    keys = {
        "system-manufacturer": "manufacturer",
        "system-product-name": "product",
        "system-serial-number": "serial",
        "system-uuid": "uuid",
        "chassis-asset-tag": "asset_tag",
    }

    def read_dmi_data(key: str) -> str | None:
        return values.get(keys.get(key, ""))

    return read_dmi_data
