"""One instance read through cloud-init's EC2, OpenStack, DigitalOcean, Hetzner, NoCloud, AliYun,
Akamai (Linode), Vultr, Scaleway, UpCloud and Exoscale readers (Debian's packages, unpacked and
unmodified), Azure's instance document, GCE's instance tree and Tencent's tree: every reader gets
the same host name, keys, user-data bytes and primary address (where the dialect has them).

UpCloud's `/metadata/v1.json` is DigitalOcean's path and Exoscale's tree EC2's: one instance
answers each such path as one dialect (its `dialects.enabled` order picks which), so those two
readers read the same record, with `upcloud` and `exoscale` enabled first, from a second daemon."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cloudinit import helpers, util
from cloudinit.sources import DataSourceExoscale, DataSourceScaleway
from cloudinit.sources.DataSourceAliYun import DataSourceAliYun, parse_public_keys
from cloudinit.sources.DataSourceOpenStack import read_metadata_service
from cloudinit.sources.helpers import digitalocean, ec2, hetzner, openstack, upcloud, vultr

from conftest import KEYS, metadata_host, put_instance, running_imds
from newer_cloud_init import read_akamai
from seeds import RECORD, USER_DATA, smbios


def azure_instance(url: str) -> Any:
    request = urllib.request.Request(f"{url}/metadata/instance?api-version=2021-08-01", headers={"Metadata": "true"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as response:
        return json.load(response)


def gce(url: str, path: str) -> bytes:
    request = urllib.request.Request(f"{url}/computeMetadata/v1/instance/{path}", headers={"Metadata-Flavor": "Google"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as response:
        return response.read()


# Dialects served at addresses of their own, each on a listener bound to it.
BOUND = 'dialect_listen = { alibaba = ["127.0.0.1:0"], tencent = ["127.0.0.1:0"], scaleway = ["127.0.0.1:0"] }\n'


def scaleway(url: str, tmp: Path) -> DataSourceScaleway.DataSourceScaleway:
    """Scaleway's datasource, crawled (without its ephemeral DHCP) from imds's Scaleway listener."""
    cfg = {"datasource": {"Scaleway": {"metadata_url": f"{url}/conf?format=json", "userdata_url": f"{url}/user_data/cloud-init",
                                       "vendordata_url": f"{url}/vendor_data/cloud-init", "retries": 3, "timeout": 5}}}
    ds = DataSourceScaleway.DataSourceScaleway(cfg, None, helpers.Paths({"cloud_dir": str(tmp), "run_dir": str(tmp)}))
    ds._crawl_metadata()
    return ds


def test_every_dialect_tells_the_same_story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    with running_imds(tmp_path / "a", guest_config=BOUND) as imds:
        put_instance(imds, "one-story", RECORD)
        url = imds.guest_url
        linode = read_akamai(url, smbios(imds, "one-story", "linode")["smbios"])
        ua = "Cloud-Init/test"
        vu = json.loads(vultr.read_metadata(url, timeout=5, retries=0, sec_between=1, agent=ua))
        scw_ds = scaleway(imds.dialect_urls["scaleway"], tmp_path)

        # cloud-init's OpenStack reader also crawls EC2 at the fixed 169.254.169.254: aim it here.
        def ec2_here(reader: openstack.MetadataReader) -> dict[str, Any]:
            return ec2.get_instance_metadata(metadata_address=url, timeout=reader.timeout, retries=0)

        monkeypatch.setattr(openstack.MetadataReader, "_read_ec2_metadata", ec2_here)
        os_results = read_metadata_service(url, timeout=5, retries=0)
        az = azure_instance(url)
        gce_hostname = gce(url, "hostname").decode()
        gce_keys = gce(url, "attributes/ssh-keys").decode()
        gce_user_data = gce(url, "attributes/user-data")
        gce_ip = gce(url, "network-interfaces/0/ip").decode()
        do = digitalocean.read_metadata(f"{url}/metadata/v1.json", timeout=5, retries=0)
        hz = hetzner.read_metadata(f"{url}/hetzner/v1/metadata", timeout=5, retries=0)
        hz_ud = hetzner.read_userdata(f"{url}/hetzner/v1/userdata", timeout=5, retries=0)
        nc, nc_ud, _ = util.read_seeded(f"{url}/nocloud/", timeout=5, retries=0)
        aws = ec2.get_instance_metadata(api_version="2021-03-23", metadata_address=url)
        aws_ud = ec2.get_instance_userdata(api_version="2021-03-23", metadata_address=url)
        # What DataSourceAliYun crawls, at the version it reads.
        ali_url, ali_version = imds.dialect_urls["alibaba"], DataSourceAliYun.min_metadata_version
        ali = ec2.get_instance_metadata(api_version=ali_version, metadata_address=ali_url, retries=0)
        ali_ud = ec2.get_instance_userdata(api_version=ali_version, metadata_address=ali_url, retries=0)
        # Tencent's tree (no hostname or keys there), crawled with the same helpers.
        tc_url = imds.dialect_urls["tencent"]
        tc = ec2.get_instance_metadata(api_version="latest", metadata_address=tc_url, retries=0)
        tc_ud = ec2.get_instance_userdata(api_version="latest", metadata_address=tc_url, retries=0)

    # UpCloud and Exoscale: the same record, their paths enabled first.
    host = metadata_host()
    shared_first = {**RECORD, "dialects": {"enabled": ["upcloud", "exoscale", "ec2", "digitalocean"]}}
    (tmp_path / "b").mkdir()
    config = f'dialect_listen = {{ exoscale = ["{host}:8080"] }}\n'
    with running_imds(tmp_path / "b", guest_config=config, listen=f"{host}:80") as second:
        put_instance(second, "one-story", shared_first)
        uc = upcloud.read_metadata(f"http://{host}/metadata/v1.json", timeout=5, sec_between=1, retries=0)
        exo = DataSourceExoscale.read_metadata(metadata_url=f"http://{host}", url_retries=0, url_timeout=5)

    os_md = os_results["metadata"]
    fqdn = "seed-test.example.internal"
    hostnames = (do["hostname"], hz["hostname"], nc["local-hostname"], aws["local-hostname"], os_md["hostname"],
                 ali["hostname"], linode["metadata"]["label"], vu["hostname"], scw_ds.get_hostname().hostname,
                 uc["hostname"], exo["meta-data"]["local-hostname"])
    assert hostnames == (fqdn,) * 11
    assert gce_hostname == fqdn
    assert az["compute"]["osProfile"]["computerName"] == "seed-test"  # Azure names the short host name
    keys = [KEYS["alice"], KEYS["bob"]]
    assert do["public_keys"] == hz["public-keys"] == nc["public-keys"] == parse_public_keys(ali["public-keys"]) == keys
    assert vu["public-keys"] == uc["public_keys"] == scw_ds.get_public_ssh_keys() == keys
    assert exo["meta-data"]["public-keys"] == keys  # the crawler splits the leaf's lines
    assert sorted(key for pair in aws["public-keys"].values() for key in pair) == sorted(keys)
    assert sorted(os_md["public_keys"].values()) == sorted(keys)
    assert sorted(k["keyData"] for k in az["compute"]["publicKeys"]) == sorted(keys)
    assert sorted(line.split(":", 1)[1] for line in gce_keys.splitlines()) == sorted(keys)  # `user:key` lines
    assert do["user_data"].encode() == hz_ud == nc_ud == aws_ud == os_results["userdata"] == ali_ud == tc_ud == USER_DATA
    assert base64.b64decode(linode["userdata"]) == vu["user-data"].encode() == scw_ds.userdata_raw.encode() == USER_DATA
    assert uc["user_data"].encode() == exo["user-data"] == USER_DATA
    assert base64.b64decode(az["compute"]["userData"]) == USER_DATA
    assert gce_user_data == USER_DATA
    address = "203.0.113.10"
    assert do["interfaces"]["public"][0]["ipv4"]["ip_address"] == hz["public-ipv4"] == aws["local-ipv4"] == address
    assert ali["private-ipv4"] == tc["local-ipv4"] == address
    assert az["network"]["interface"][0]["ipv4"]["ipAddress"][0]["privateIpAddress"] == address
    assert gce_ip == address
    assert vu["interfaces"][0]["ipv4"]["address"] == exo["meta-data"]["public-ipv4"] == address
    assert uc["network"]["interfaces"][0]["ip_addresses"][0]["address"] == address
    assert scw_ds.metadata["public_ip"]["address"] == address
    # One instance UUID: OpenStack's uuid is Azure's vmId, and the id of Vultr, Scaleway, UpCloud
    # and Exoscale.
    assert os_md["uuid"] == az["compute"]["vmId"] == vu["instance-v2-id"] == scw_ds.get_instance_id()
    assert os_md["uuid"] == uc["instance_id"] == exo["meta-data"]["instance-id"]
    # One numeric id: DigitalOcean's droplet_id is Linode's id.
    assert do["droplet_id"] == linode["metadata"]["id"]


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
