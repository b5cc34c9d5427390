"""cloud-init's Akamai (Linode) datasource, from Debian 13's package (Debian 12's predates it),
run unmodified in a Python process of its own: `scripts/test` unpacks that package under
target/clients/cloud-init-trixie, beside the Debian 12 package the other tests import.

`read_akamai(url, smbios)` builds `DataSourceAkamai` with its base URL pointed at imds (IPv6 off:
its default IPv6 address is not on this machine), presents the SMBIOS values of the admin API's
hint as the machine's DMI, runs its `_get_data` (the token, `/v1/instance` as JSON, base64
user-data), and returns what it found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import REPO

NEWER = REPO / "target" / "clients" / "cloud-init-trixie" / "usr" / "lib" / "python3" / "dist-packages"

_READER = r"""
import base64, json, sys, tempfile
args = json.load(sys.stdin)
from cloudinit import dmi, helpers
smbios = args["smbios"]
fields = {"system-manufacturer": "manufacturer", "system-product-name": "product",
          "system-serial-number": "serial", "system-uuid": "uuid"}
dmi.read_dmi_data = lambda key: smbios.get(fields.get(key, ""))
from cloudinit.sources import DataSourceAkamai
tmp = tempfile.mkdtemp()
cfg = {"datasource": {"Akamai": {"base_urls": {"ipv4": args["url"], "ipv6": args["url"]}, "allow_ipv6": False}}}
ds = DataSourceAkamai.DataSourceAkamai(cfg, None, helpers.Paths({"cloud_dir": tmp, "run_dir": tmp}))
found = ds._get_data()
userdata = ds.userdata_raw if isinstance(ds.userdata_raw, bytes) else (ds.userdata_raw or "").encode()
print(json.dumps({"found": found, "metadata": ds.metadata, "instance_id": ds.get_instance_id(),
                  "userdata": base64.b64encode(userdata).decode(), "same_instance": ds.check_instance_id(cfg)}))
"""


def read_akamai(url: str, smbios: dict[str, str]) -> dict[str, Any]:
    """What cloud-init's Akamai datasource reads from imds at `url` on a machine presenting
    `smbios`."""
    if not (NEWER / "cloudinit" / "sources" / "DataSourceAkamai.py").is_file():
        raise RuntimeError(f"{NEWER} has no DataSourceAkamai: scripts/test unpacks Debian 13's cloud-init there")
    env = {**os.environ, "PYTHONPATH": str(NEWER), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _READER],
        input=json.dumps({"url": url, "smbios": smbios}),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, f"DataSourceAkamai failed:\n{done.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
