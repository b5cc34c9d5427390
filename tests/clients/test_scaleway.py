"""cloud-init's Scaleway datasource (Debian's package, unmodified; its crawl is run without the
ephemeral DHCP around it, which needs a real NIC) reading imds on a listener bound to Scaleway
(`[guest] dialect_listen`, as 169.254.42.42 would be): `/conf?format=json`, then user and vendor
data from a privileged source port (the reader binds ports 1, 2, …: these tests run as root)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
import requests
from cloudinit import helpers, url_helper
from cloudinit.sources import DataSourceScaleway

from conftest import KEYS, Imds, derived_uuid, put_instance, running_imds
from seeds import RECORD, USER_DATA, VENDOR_DATA, fake_dmi, smbios

SERVER = "scw-1"


@pytest.fixture(scope="module")
def scaleway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Imds, str]]:
    bound = 'dialect_listen = { scaleway = ["127.0.0.1:0"] }\n'
    with running_imds(tmp_path_factory.mktemp("imds-scw"), guest_config=bound) as imds:
        put_instance(imds, SERVER, RECORD)
        yield imds, imds.dialect_urls["scaleway"]


def datasource(url: str) -> DataSourceScaleway.DataSourceScaleway:
    tmp = tempfile.mkdtemp()
    cfg = {
        "datasource": {
            "Scaleway": {
                "metadata_url": f"{url}/conf?format=json",
                "userdata_url": f"{url}/user_data/cloud-init",
                "vendordata_url": f"{url}/vendor_data/cloud-init",
                "retries": 3,
                "timeout": 5,
            }
        }
    }
    return DataSourceScaleway.DataSourceScaleway(cfg, None, helpers.Paths({"cloud_dir": tmp, "run_dir": tmp}))


def test_the_hint_identifies_scaleway(scaleway: tuple[Imds, str], monkeypatch: pytest.MonkeyPatch) -> None:
    imds, _ = scaleway
    hint = smbios(imds, SERVER, "scaleway")["smbios"]
    monkeypatch.setattr(DataSourceScaleway.dmi, "read_dmi_data", fake_dmi(hint))
    assert DataSourceScaleway.on_scaleway() is True


def test_the_crawl_reads_the_server_and_its_data(scaleway: tuple[Imds, str]) -> None:
    _, url = scaleway
    ds = datasource(url)
    ds._crawl_metadata()
    assert ds.get_instance_id() == derived_uuid(SERVER)
    assert ds.get_hostname().hostname == "seed-test.example.internal"
    assert ds.get_public_ssh_keys() == [KEYS["alice"], KEYS["bob"]]
    assert ds.userdata_raw.encode() == USER_DATA
    assert ds.vendordata_raw.encode() == VENDOR_DATA
    ds._fallback_interface = "ens2"
    subnets = ds.network_config["config"][0]["subnets"]
    assert subnets[0] == {"type": "dhcp4"}
    assert (subnets[1]["address"], subnets[1]["netmask"]) == ("2001:db8::10", "64")


def test_an_unprivileged_port_gets_no_user_data(scaleway: tuple[Imds, str]) -> None:
    _, url = scaleway
    with pytest.raises(url_helper.UrlError) as refused:
        DataSourceScaleway.query_data_api_once(f"{url}/user_data/cloud-init", timeout=5, requests_session=requests.Session())
    assert refused.value.code == 403


def test_the_shared_listener_does_not_speak_scaleway(scaleway: tuple[Imds, str]) -> None:
    imds, _ = scaleway
    with pytest.raises(url_helper.UrlError) as missing:
        url_helper.readurl(f"{imds.guest_url}/conf?format=json", retries=0, timeout=5)
    assert missing.value.code == 404
