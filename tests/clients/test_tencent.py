"""Tencent Cloud CVM: the Tencent Cloud SDK's CVM role credential provider (tencentcloud-sdk-python's
`CVMRoleCredential`, unmodified) against a listener bound to `tencent` (on a real host:
`metadata.tencentyun.com`, 169.254.0.23:80).

The SDK's endpoint is fixed at `http://metadata.tencentyun.com/…`; it reaches the listener as
its HTTP proxy (the standard `http_proxy` variable its `urlopen` honours), so the request
arrives for `http://metadata.tencentyun.com/latest/meta-data/…` exactly as on a CVM, and no name
is resolved.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tencentcloud.common.credential import CVMRoleCredential

from conftest import ADMIN_TOKEN, Imds, put_instance, running_imds
from seeds import RECORD

INSTANCE_ID = "ins-3g445roi"


@pytest.fixture(scope="module")
def cvm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    bound = 'dialect_listen = { tencent = ["127.0.0.1:0"] }\n'
    with running_imds(tmp_path_factory.mktemp("imds-tc"), guest_config=bound) as imds:
        body = {"source": {"type": "static", "access_key_id": "AKIDTENCENTCLIENT", "secret_access_key": "tc-secret",
                           "session_token": "tc-session-token", "expiration": "2099-01-01T00:00:00Z"}}
        request = urllib.request.Request(
            f"{imds.admin_url}/v1/roles/cvm-app", method="PUT", data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
            assert response.status in (200, 201)
        put_instance(imds, INSTANCE_ID, {**RECORD, "iam_role": "cvm-app"})
        yield imds


def proxy_to(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes `urlopen` send plain-HTTP requests through `url`. `urlopen` keeps the opener it
    first built (with the proxies of that moment), so a fresh one is installed."""
    for name in ["no_proxy", "NO_PROXY", "HTTP_PROXY"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", url)
    urllib.request.install_opener(urllib.request.build_opener())


@pytest.fixture
def via_listener(cvm: Imds, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    proxy_to(cvm.dialect_urls["tencent"], monkeypatch)
    yield
    urllib.request.install_opener(None)


def test_the_sdk_finds_the_role_and_reads_its_credentials(via_listener: None) -> None:
    credential = CVMRoleCredential()
    assert credential.get_role_name() == "cvm-app"
    assert credential.secret_id == "AKIDTENCENTCLIENT"
    assert credential.secret_key == "tc-secret"
    assert credential.token == "tc-session-token"
    assert credential.get_credential() is credential


def test_the_tree_reads_like_tencents(cvm: Imds, via_listener: None) -> None:
    def get(path: str) -> str:
        with urllib.request.urlopen(f"http://metadata.tencentyun.com/latest/meta-data/{path}", timeout=5) as response:
            return response.read().decode()

    assert get("instance-id") == INSTANCE_ID
    assert get("local-ipv4") == "203.0.113.10"
    assert get("placement/region") == "fra1"
    assert get("mac") == RECORD["mac"][0].upper()


def test_an_unregistered_source_gets_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bound = 'dialect_listen = { tencent = ["127.0.0.1:0"] }\nunknown_hold_ms = 0\n'
    with running_imds(tmp_path, guest_config=bound) as imds:
        put_instance(imds, "ins-elsewhere", {"ipv4": ["127.0.0.78"], "iam_role": "cvm-app"})
        proxy_to(imds.dialect_urls["tencent"], monkeypatch)
        try:
            credential = CVMRoleCredential(role_name="cvm-app")
            assert credential.get_credential() is None
            assert credential.secret_id is None
        finally:
            urllib.request.install_opener(None)
