"""cloud-init's Azure IMDS reader (Debian's package, unpacked, never run as a boot stage) reading
imds, and azure-identity (PyPI, unmodified) probing it and asking for a managed-identity token.

The reader under test is `DataSourceAzure.get_imds_data_with_api_fallback` (cloud-init 22.4,
where the Azure IMDS client lives in `sources/DataSourceAzure.py`): `GET /metadata/instance?
api-version=2021-08-01&extended=true` with `Metadata: true`, a 400 falling back to
`api-version=2019-06-01`. The module hard-codes its URLs in the module-level enum
`MetadataType` (`ALL`, `NETWORK`, `REPROVISION_DATA`, built from `IMDS_URL` at import); the
tests monkeypatch only the URL values of those members to point at the daemon, and nothing of
its logic. The functions that turn the result into configuration (`_username_from_imds`,
`_hostname_from_imds`, `_disable_password_from_imds`, `_userdata_from_imds`,
`_get_public_keys_from_imds`, `_ppstype_from_imds`,
`generate_network_config_from_instance_network_metadata`) run unmodified on what it returned.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.identity import ChainedTokenCredential, CredentialUnavailableError, ManagedIdentityCredential
from azure.identity._credentials import imds as imds_credential
from azure.identity._internal.managed_identity_client import ManagedIdentityClient
from cloudinit import helpers
from cloudinit.sources import DataSourceAzure as azure

from conftest import CLOUD_CONFIG, KEYS, MAC, Imds, derived_uuid, put_instance, running_imds

INSTANCE_ID = "i-azure-clients"
SECOND_MAC = "02:00:00:0a:00:0c"
SUBSCRIPTION = "8d4f3c2a-1b0e-4f7d-9c6b-5a4e3d2c1b0a"
AZURE_TAGS = {"env": "test", "team": "platform"}

RECORD: dict[str, Any] = {
    "name": "vm-azure-clients",
    "hostname": "azure-clients",
    "default_user": "azureuser",
    "password_auth": False,
    "ipv4": ["127.0.0.1"],
    "mac": [MAC],
    "region": "westeurope",
    "zone": "2",
    "instance_type": "Standard_D2s_v5",
    "account": {"id": SUBSCRIPTION},
    "ssh_keys": list(KEYS.values()),
    "tags": AZURE_TAGS,
    "network": {
        "interfaces": [
            {
                "mac": MAC,
                "ipv4": [{"address": "10.0.0.11", "prefix": 24}, {"address": "10.0.0.12", "prefix": 24}],
                "ipv6": [{"address": "fd00:a2::11", "prefix": 64}],
                "public_ipv4": "203.0.113.7",
            },
            {"mac": SECOND_MAC, "ipv4": [{"address": "10.0.1.5", "prefix": 24}]},
        ]
    },
    "user_data": CLOUD_CONFIG.decode(),
    "dialects": {"azure": {"resourceGroupName": "rg-clients"}},
}

IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token"

VM_ID = derived_uuid(INSTANCE_ID)


@pytest.fixture(scope="module")
def azure_imds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    """A daemon of this module's own, with the Azure test instance bound to 127.0.0.1."""
    with running_imds(tmp_path_factory.mktemp("azure")) as running:
        put_instance(running, INSTANCE_ID, RECORD)
        yield running


@pytest.fixture
def datasource(azure_imds: Imds, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> azure.DataSourceAzure:
    """cloud-init's Azure datasource, its IMDS URLs pointed at the daemon."""
    for member, path in [("ALL", "instance"), ("NETWORK", "instance/network"), ("REPROVISION_DATA", "reprovisiondata")]:
        monkeypatch.setattr(getattr(azure.MetadataType, member), "_value_", f"{azure_imds.guest_url}/metadata/{path}")
    paths = helpers.Paths({"cloud_dir": str(tmp_path / "cloud"), "run_dir": str(tmp_path / "run")})
    return azure.DataSourceAzure({}, None, paths)


def without_host_driver(netconfig: dict[str, Any]) -> dict[str, Any]:
    """The generator adds `match.driver` when *this* machine's ethN happens to be hv_netvsc."""
    for nic in netconfig["ethernets"].values():
        nic["match"].pop("driver", None)
    return netconfig


def test_cloud_init_reads_the_instance_at_the_version_it_wants(
    datasource: azure.DataSourceAzure, caplog: pytest.LogCaptureFixture
) -> None:
    md = datasource.get_imds_data_with_api_fallback(retries=0)
    assert "Fall back" not in caplog.text, "2021-08-01 must be accepted"
    compute = md["compute"]
    assert compute["vmId"] == VM_ID
    assert compute["name"] == "vm-azure-clients"
    assert compute["location"] == "westeurope"
    assert compute["zone"] == "2"
    assert compute["vmSize"] == "Standard_D2s_v5"
    assert compute["subscriptionId"] == SUBSCRIPTION
    assert compute["resourceGroupName"] == "rg-clients"
    assert compute["resourceId"] == (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-clients"
        "/providers/Microsoft.Compute/virtualMachines/vm-azure-clients"
    )
    assert compute["tags"] == "env:test;team:platform"
    assert compute["tagsList"] == [{"name": k, "value": v} for k, v in AZURE_TAGS.items()]
    assert compute["publicKeys"] == [
        {"keyData": key, "path": "/home/azureuser/.ssh/authorized_keys"} for key in KEYS.values()
    ]

    # What DataSourceAzure takes from it.
    assert azure._username_from_imds(md) == "azureuser"
    assert azure._hostname_from_imds(md) == "azure-clients"
    assert azure._disable_password_from_imds(md) is True
    assert base64.b64decode(azure._userdata_from_imds(md)) == CLOUD_CONFIG
    assert datasource._get_public_keys_from_imds(md) == list(KEYS.values())
    assert datasource._ppstype_from_imds(md) == "None"

    netconfig = azure.generate_network_config_from_instance_network_metadata(md["network"])
    assert without_host_driver(netconfig) == {
        "version": 2,
        "ethernets": {
            "eth0": {
                "dhcp4": True,
                "dhcp4-overrides": {"route-metric": 100},
                "dhcp6": True,
                "dhcp6-overrides": {"route-metric": 100},
                "addresses": ["10.0.0.12/24"],
                "match": {"macaddress": MAC},
                "set-name": "eth0",
            },
            "eth1": {
                "dhcp4": True,
                "dhcp4-overrides": {"route-metric": 200},
                "dhcp6": False,
                "match": {"macaddress": SECOND_MAC},
                "set-name": "eth1",
            },
        },
    }


def test_cloud_init_falls_back_when_its_version_is_refused(
    datasource: azure.DataSourceAzure, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A cloud-init newer than imds asks for a version imds does not know (the wanted-version
    constant set to one no Azure serves); imds's 400 must make it fall back to 2019-06-01."""
    monkeypatch.setattr(azure, "IMDS_VER_WANT", "2099-01-01")
    md = datasource.get_imds_data_with_api_fallback(retries=0)
    assert "Fall back to IMDS api-version: 2019-06-01" in caplog.text
    assert md["compute"]["vmId"] == VM_ID
    # 2019-06-01 predates osProfile, userData and tagsList: cloud-init finds none of them.
    assert azure._username_from_imds(md) is None
    assert azure._userdata_from_imds(md) is None
    assert "tagsList" not in md["compute"]
    assert datasource._get_public_keys_from_imds(md) == list(KEYS.values())
    assert [nic["macAddress"] for nic in md["network"]["interface"]] == ["0200000A000B", "0200000A000C"]


class Fallback:
    """The next credential of a chain: whatever it returns proves the chain moved on."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fallback-token", int(time.time()) + 3600)


def identity_requests(caplog: pytest.LogCaptureFixture) -> list[tuple[bool, str]]:
    """(carries a Metadata header, the status that came back) for each token request azure-core
    logged, in order."""
    logged = [r.getMessage() for r in caplog.records if r.name == "azure.core.pipeline.policies.http_logging_policy"]
    requests = [m for m in logged if m.startswith("Request URL:") and IMDS_TOKEN_PATH in m]
    statuses = [m.split()[2] for m in logged if m.startswith("Response status:")]
    return [("'Metadata':" in request, status) for request, status in zip(requests, statuses)]


def test_azure_identity_probes_imds_and_moves_on_without_an_identity(
    azure_imds: Imds, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """azure-identity inside a credential chain first probes IMDS with the token request
    *without* `Metadata`, a one-second timeout and no retry: any HTTP answer means "IMDS is
    here". Then it asks with the header; a 400 means "no identity assigned", and the chain tries
    its next credential. The credential is built before `AZURE_POD_IDENTITY_AUTHORITY_HOST` (the
    SDK's documented host override, read per request) is set, because with the variable set at
    construction it skips the probe."""
    managed = ManagedIdentityCredential()
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", azure_imds.guest_url)
    chain = ChainedTokenCredential(managed, Fallback())
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="azure"):
        token = chain.get_token("https://management.azure.com/.default")
    assert token.token == "fallback-token"
    assert time.monotonic() - started < 5, "the probe and the refusal must come back promptly"
    # The probe without the header, then the token request with it; both refused with 400.
    assert identity_requests(caplog) == [(False, "400"), (True, "400")]
    # Asked directly, the credential reports why it is unavailable.
    with pytest.raises(CredentialUnavailableError, match="Identity not found"):
        managed.get_token("https://management.azure.com/.default")


def test_azure_identity_moves_on_from_an_unregistered_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """From an address no instance holds (this daemon has none for 127.0.0.1), the token
    endpoint answers as Azure does for a VM without identity, so the chain moves on instead of
    failing with an authentication error."""
    with running_imds(tmp_path, guest_config="unknown_hold_ms = 0\n") as empty:
        managed = ManagedIdentityCredential()
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", empty.guest_url)
        chain = ChainedTokenCredential(managed, Fallback())
        with caplog.at_level(logging.INFO, logger="azure"):
            token = chain.get_token("https://management.azure.com/.default")
        assert token.token == "fallback-token"
        assert identity_requests(caplog) == [(False, "400"), (True, "400")]
        with pytest.raises(CredentialUnavailableError, match="Identity not found"):
            managed.get_token("https://management.azure.com/.default")


def test_the_probe_alone_gets_a_prompt_400(azure_imds: Imds, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe request exactly as azure-identity sends it (its own request builder and client,
    one-second connection timeout, no retry), asserting the refusal itself."""
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", azure_imds.guest_url)
    client = ManagedIdentityClient(imds_credential._get_request, **imds_credential.PIPELINE_SETTINGS)
    started = time.monotonic()
    with pytest.raises(HttpResponseError) as refused:
        client.request_token("https://management.azure.com/.default", connection_timeout=1, retry_total=0)
    # Generous next to the probe's one-second budget, tight next to a server that waits.
    assert time.monotonic() - started < 3
    assert refused.value.status_code == 400
    assert "Required metadata header not specified" in str(refused.value)
