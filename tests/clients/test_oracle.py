"""Oracle OCI: cloud-init's Oracle datasource reader (`read_opc_metadata`, Debian's package,
unmodified; its URL pattern aimed at the daemon) and its platform check against imds's hint."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from cloudinit.sources import DataSourceOracle

from conftest import KEYS, Imds, put_instance, running_imds
from seeds import MAC, RECORD, USER_DATA, fake_dmi, smbios

INSTANCE_ID = "ocid1.instance.oc1.phx.anyhqljtexampleuniqueid"


@pytest.fixture(scope="module")
def oci(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    with running_imds(tmp_path_factory.mktemp("imds-oci")) as imds:
        put_instance(imds, INSTANCE_ID, {**RECORD, "instance_type": "VM.Standard.E4.Flex"})
        yield imds


@pytest.fixture
def aimed(oci: Imds, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DataSourceOracle, "METADATA_PATTERN", oci.guest_url + "/opc/v{version}/{path}/")


def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_cloud_init_reads_the_instance_and_vnics_over_v2(aimed: None) -> None:
    opc = DataSourceOracle.read_opc_metadata(fetch_vnics_data=True)
    assert opc.version == 2
    data = opc.instance_data
    assert data["id"] == INSTANCE_ID
    assert data["hostname"] == "seed-test.example.internal"
    assert data["ociAdName"] == "fra1-a"
    assert data["shape"] == "VM.Standard.E4.Flex"
    assert base64.b64decode(data["metadata"]["user_data"]) == USER_DATA
    assert data["metadata"]["ssh_authorized_keys"].splitlines() == [KEYS["alice"], KEYS["bob"]]
    primary = opc.vnics_data[0]
    assert (primary["macAddr"], primary["privateIp"], primary["subnetCidrBlock"]) == (MAC, "203.0.113.10", "203.0.113.0/24")


def test_the_hint_makes_the_platform_viable(oci: Imds, monkeypatch: pytest.MonkeyPatch) -> None:
    hint = smbios(oci, INSTANCE_ID, "oracle")["smbios"]
    monkeypatch.setattr(DataSourceOracle.dmi, "read_dmi_data", fake_dmi(hint))
    assert DataSourceOracle._is_platform_viable()


def test_v2_needs_the_header_and_forwarding_headers_are_refused(oci: Imds) -> None:
    url = f"{oci.guest_url}/opc/v2/instance/"
    assert fetch(url, {})[0] == 401
    assert fetch(url, {"Authorization": "Bearer Oracle"})[0] == 200
    for header in ["X-Forwarded-For", "Forwarded", "X-Forwarded-Host", "X-Real-IP"]:
        status, body = fetch(url, {"Authorization": "Bearer Oracle", header: "127.0.0.1"})
        assert status == 403 and INSTANCE_ID.encode() not in body, header


def test_v1_answers_until_the_record_switches_it_off(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with running_imds(tmp_path) as imds:
        put_instance(imds, "oci-v1", {**RECORD, "dialects": {"oracle": {"v1": False}}})
        assert fetch(f"{imds.guest_url}/opc/v1/instance/", {})[0] == 404
        assert fetch(f"{imds.guest_url}/opc/v2/instance/", {"Authorization": "Bearer Oracle"})[0] == 200
        # cloud-init reads v2 and never needs v1.
        monkeypatch.setattr(DataSourceOracle, "METADATA_PATTERN", imds.guest_url + "/opc/v{version}/{path}/")
        assert DataSourceOracle.read_opc_metadata().instance_data["id"] == "oci-v1"
