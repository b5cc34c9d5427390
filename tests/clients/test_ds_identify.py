"""cloud-init's `ds-identify` (the shell script from Debian's package, unmodified) choosing the
datasource from exactly the SMBIOS values imds's platform hint gives, as it does at boot.

The script reads DMI from `$PATH_ROOT/sys/class/dmi/id/` and the kernel command line from
`$PATH_ROOT/proc/cmdline` (its own test hooks); the files are written from the hint, as a VMM
presenting these values would make them appear. `systemd-detect-virt` is a stand-in answering
`kvm`: the suite itself may run in a container, which ds-identify would otherwise report.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, Imds, put_instance, running_imds
from seeds import smbios

DS_IDENTIFY = REPO / "target" / "clients" / "cloud-init" / "usr" / "lib" / "cloud-init" / "ds-identify"
# The hint's fields and the DMI files Linux shows them in.
DMI_FILES = {
    "manufacturer": "sys_vendor",
    "product": "product_name",
    "serial": "product_serial",
    "uuid": "product_uuid",
    "version": "product_version",
    "sku": "product_sku",
    "family": "product_family",
    "asset_tag": "chassis_asset_tag",
}
# An EC2-style id (no UUID): the case where the vendor alone left cloud-init disabled.
INSTANCE_ID = "i-0123456789abcdef0"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    if not DS_IDENTIFY.is_file():
        raise RuntimeError(f"{DS_IDENTIFY} missing: scripts/test unpacks Debian's cloud-init package")
    with running_imds(tmp_path_factory.mktemp("imds-dsi")) as running:
        put_instance(running, INSTANCE_ID, {"ipv4": ["127.0.0.1"], "instance_type": "t3.micro"})
        yield running


def ds_identify(root: Path, values: dict[str, str], script: Path = DS_IDENTIFY) -> str:
    """Runs ds-identify over a machine presenting `values`; returns the cloud.cfg it writes."""
    dmi = root / "sys" / "class" / "dmi" / "id"
    dmi.mkdir(parents=True)
    for name in DMI_FILES.values():
        (dmi / name).write_text("\n")
    for field, value in values.items():
        (dmi / DMI_FILES[field]).write_text(value + "\n")
    for directory in ["proc/1", "etc/cloud", "run", "sys/hypervisor", "sys/class/block", "dev/disk", "var/lib/cloud"]:
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "proc" / "cmdline").write_text("BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro\n")
    (root / "proc" / "1" / "cmdline").write_text("/sbin/init\n")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    virt = bin_dir / "systemd-detect-virt"
    virt.write_text("#!/bin/sh\necho kvm\n")
    virt.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "PATH_ROOT": str(root), "DI_LOG": "stderr"}
    done = subprocess.run(["sh", str(script), "--force"], env=env, capture_output=True, text=True, timeout=60)
    cfg = root / "run" / "cloud-init" / "cloud.cfg"
    assert cfg.is_file(), f"ds-identify wrote no cloud.cfg (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return cfg.read_text()


@pytest.mark.parametrize(
    ("dialect", "datasource"),
    [
        ("ec2", "Ec2"),
        ("nocloud", "NoCloud"),
        ("gce", "GCE"),
        ("azure", "Azure"),
        ("openstack", "OpenStack"),
        ("digitalocean", "DigitalOcean"),
        ("hetzner", "Hetzner"),
        ("alibaba", "AliYun"),
        ("vultr", "Vultr"),
        ("scaleway", "Scaleway"),
        ("upcloud", "UpCloud"),
        ("exoscale", "Exoscale"),
    ],
)
def test_the_hint_makes_ds_identify_pick_the_dialect(daemon: Imds, tmp_path: Path, dialect: str, datasource: str) -> None:
    hint = smbios(daemon, INSTANCE_ID, dialect)["smbios"]
    cfg = ds_identify(tmp_path, hint)
    assert f"datasource_list: [ {datasource}, None ]" in cfg, cfg


def test_the_vendor_alone_does_not_identify_ec2(tmp_path: Path) -> None:
    """What the EC2 hint used to be for an id that is not a UUID: cloud-init stays disabled."""
    cfg = ds_identify(tmp_path, {"manufacturer": "Amazon EC2", "asset_tag": "Amazon EC2"})
    assert "datasource_list: [ Ec2, None ]" not in cfg, cfg


def test_the_linode_hint_makes_ds_identify_pick_akamai(daemon: Imds, tmp_path: Path) -> None:
    """Debian 12's ds-identify predates Akamai: Debian 13's (see newer_cloud_init.py) knows it."""
    newer = REPO / "target" / "clients" / "cloud-init-trixie" / "usr" / "lib" / "cloud-init" / "ds-identify"
    if not newer.is_file():
        raise RuntimeError(f"{newer} missing: scripts/test unpacks Debian 13's cloud-init package")
    hint = smbios(daemon, INSTANCE_ID, "linode")["smbios"]
    cfg = ds_identify(tmp_path, hint, newer)
    assert "datasource_list: [ Akamai, None ]" in cfg, cfg
