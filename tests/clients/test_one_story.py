"""One instance read through cloud-init's EC2, DigitalOcean, Hetzner and NoCloud readers (Debian's
package, unpacked and unmodified): every reader gets the same host name, keys, user-data bytes and
primary address."""

from __future__ import annotations

from pathlib import Path

from cloudinit import util
from cloudinit.sources.helpers import digitalocean, ec2, hetzner

from conftest import KEYS, put_instance, running_imds
from seeds import RECORD, USER_DATA


def test_every_dialect_tells_the_same_story(tmp_path: Path) -> None:
    with running_imds(tmp_path) as imds:
        put_instance(imds, "one-story", RECORD)
        url = imds.guest_url
        do = digitalocean.read_metadata(f"{url}/metadata/v1.json", timeout=5, retries=0)
        hz = hetzner.read_metadata(f"{url}/hetzner/v1/metadata", timeout=5, retries=0)
        hz_ud = hetzner.read_userdata(f"{url}/hetzner/v1/userdata", timeout=5, retries=0)
        nc, nc_ud, _ = util.read_seeded(f"{url}/nocloud/", timeout=5, retries=0)
        aws = ec2.get_instance_metadata(api_version="2021-03-23", metadata_address=url)
        aws_ud = ec2.get_instance_userdata(api_version="2021-03-23", metadata_address=url)

    fqdn = "seed-test.example.internal"
    assert (do["hostname"], hz["hostname"], nc["local-hostname"], aws["local-hostname"]) == (fqdn,) * 4
    keys = [KEYS["alice"], KEYS["bob"]]
    assert do["public_keys"] == hz["public-keys"] == nc["public-keys"] == keys
    assert sorted(key for pair in aws["public-keys"].values() for key in pair) == sorted(keys)
    assert do["user_data"].encode() == hz_ud == nc_ud == aws_ud == USER_DATA
    address = "203.0.113.10"
    assert do["interfaces"]["public"][0]["ipv4"]["ip_address"] == hz["public-ipv4"] == aws["local-ipv4"] == address


def test_yaml_documents_carry_any_text_unchanged(tmp_path: Path) -> None:
    """Strings that would change type or break a naive YAML writer reach cloud-init unchanged."""
    tricky = ["yes", "no", "null", "~", "0x1F", "1e3", "2026-08-01", "- item", "a: b", "#x", "'q'", '"dq"',
              "back\\slash", "tab\there", "line\nbreak", "nel\x85x", "del\x7fx", "bell\x07", "ünïcødé ✓ 🚀", " lead", "trail "]
    record = {**RECORD, "vendor_data": "\n".join(tricky), "dialects": {"nocloud": {f"k{i}": t for i, t in enumerate(tricky)}}}
    with running_imds(tmp_path) as imds:
        put_instance(imds, "yaml-text", record)
        hz = hetzner.read_metadata(f"{imds.guest_url}/hetzner/v1/metadata", timeout=5, retries=0)
        nc, _, _ = util.read_seeded(f"{imds.guest_url}/nocloud/", timeout=5, retries=0)
    assert hz["vendor_data"] == "\n".join(tricky)
    assert [nc[f"k{i}"] for i in range(len(tricky))] == tricky
