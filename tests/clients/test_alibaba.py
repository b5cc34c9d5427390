"""Alibaba Cloud ECS: cloud-init's AliYun datasource (Debian's package, unmodified) and the
Alibaba Cloud credentials SDK's ECS RAM role provider, unmodified, against a listener bound to
`alibaba` (on a real host: 100.100.100.200:80).

The datasource is pointed at the listener with its own `metadata_urls` setting; the SDK, whose
host is fixed at 100.100.100.200, reaches it as an HTTP proxy (its `proxy` option): the request
arrives at the bound listener for `http://100.100.100.200/…` exactly as it would on ECS.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudinit import helpers
from cloudinit.sources import DataSourceAliYun

from conftest import ADMIN_TOKEN, KEYS, Imds, put_instance, running_imds
from seeds import RECORD, USER_DATA, fake_dmi, smbios

INSTANCE_ID = "i-bp1alibaba0client"


def put_role(imds: Imds, name: str) -> None:
    body = {"source": {"type": "static", "access_key_id": "STS.ALIBABAKEY", "secret_access_key": "ali-secret",
                       "session_token": "ali-session-token", "expiration": "2099-01-01T00:00:00Z"}}
    request = urllib.request.Request(
        f"{imds.admin_url}/v1/roles/{name}", method="PUT", data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        assert response.status in (200, 201)


@pytest.fixture(scope="module")
def ecs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    bound = 'dialect_listen = { alibaba = ["127.0.0.1:0"] }\n'
    with running_imds(tmp_path_factory.mktemp("imds-ali"), guest_config=bound) as imds:
        put_role(imds, "ecs-app")
        put_instance(imds, INSTANCE_ID, {**RECORD, "iam_role": "ecs-app", "instance_type": "ecs.g7.large"})
        assert "alibaba" in imds.dialect_urls, imds
        yield imds


def datasource(ecs: Imds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    hint = smbios(ecs, INSTANCE_ID, "alibaba")["smbios"]
    monkeypatch.setattr(DataSourceAliYun.dmi, "read_dmi_data", fake_dmi(hint))
    sys_cfg = {"datasource": {"AliYun": {"metadata_urls": [ecs.dialect_urls["alibaba"]], "max_wait": 10, "timeout": 5}}}
    paths = helpers.Paths({"cloud_dir": str(tmp_path / "cloud"), "run_dir": str(tmp_path / "run")})
    return DataSourceAliYun.DataSourceAliYun(sys_cfg, None, paths)


def test_cloud_init_aliyun_reads_the_instance(ecs: Imds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = datasource(ecs, tmp_path, monkeypatch)
    assert ds.cloud_name == "aliyun", "the SMBIOS hint identifies Alibaba Cloud"
    assert ds._get_data()
    assert ds.get_instance_id() == INSTANCE_ID
    assert ds.get_hostname().hostname == "seed-test.example.internal"
    assert sorted(ds.get_public_ssh_keys()) == sorted([KEYS["alice"], KEYS["bob"]])
    assert ds.userdata_raw == USER_DATA
    assert ds.metadata["region-id"] == "fra1"
    assert ds.metadata["zone-id"] == "fra1-a"
    assert ds.metadata["private-ipv4"] == "203.0.113.10"
    assert ds.metadata["instance"]["instance-type"] == "ecs.g7.large"
    assert ds._crawled_metadata["_metadata_api_version"] == "2016-01-01"


def test_the_main_listener_is_not_alibaba(ecs: Imds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On 169.254.169.254 the same paths are EC2's: Alibaba's keys are not there."""
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        f"{ecs.guest_url}/latest/meta-data/", timeout=5
    ) as response:
        listing = response.read().decode().splitlines()
    assert "ami-id" in listing and "region-id" not in listing


def test_the_credentials_sdk_gets_the_ram_role_with_a_token(ecs: Imds) -> None:
    from alibabacloud_credentials.http import HttpOptions
    from alibabacloud_credentials.provider.ecs_ram_role import EcsRamRoleCredentialsProvider

    provider = EcsRamRoleCredentialsProvider(
        disable_imds_v1=True,  # the hardened mode: a token must be minted and sent
        http_options=HttpOptions(proxy=ecs.dialect_urls["alibaba"]),
        async_update_enabled=False,
    )
    credentials = provider.get_credentials()
    assert credentials.get_access_key_id() == "STS.ALIBABAKEY"
    assert credentials.get_access_key_secret() == "ali-secret"
    assert credentials.get_security_token() == "ali-session-token"
    assert credentials.get_provider_name() == "ecs_ram_role"


def test_an_unregistered_source_gets_nothing(tmp_path: Path) -> None:
    """The SDK from an address no instance holds: no credentials, a refusal in Alibaba's shape."""
    from alibabacloud_credentials.http import HttpOptions
    from alibabacloud_credentials.provider.ecs_ram_role import EcsRamRoleCredentialsProvider

    bound = 'dialect_listen = { alibaba = ["127.0.0.1:0"] }\nunknown_hold_ms = 0\n'
    with running_imds(tmp_path, guest_config=bound) as imds:
        put_instance(imds, "i-elsewhere", {"ipv4": ["127.0.0.77"], "iam_role": "ecs-app"})
        provider = EcsRamRoleCredentialsProvider(
            role_name="ecs-app", http_options=HttpOptions(proxy=imds.dialect_urls["alibaba"]), async_update_enabled=False
        )
        with pytest.raises(Exception, match="HttpCode=404"):
            provider.get_credentials()
