"""AWS container credentials: botocore's `ContainerProvider` (unmodified) against a listener
bound to `container`, in both of its forms:

- EKS Pod Identity: `AWS_CONTAINER_CREDENTIALS_FULL_URI` (here the loopback listener, which the
  provider allows like 169.254.170.23) with `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`;
- ECS: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, which botocore always resolves against
  `http://169.254.170.2`; its fetcher is given an HTTP session whose proxy is the listener (its
  own `proxies` option), so the request arrives for `http://169.254.170.2/v2/credentials/…` as
  in a task.

The provider takes its environment as an argument: nothing here changes the process's.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import ContainerProvider
from botocore.exceptions import CredentialRetrievalError
from botocore.httpsession import URLLib3Session
from botocore.utils import ContainerMetadataFetcher

from conftest import ADMIN_TOKEN, Imds, put_instance, running_imds


def admin(imds: Imds, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{imds.admin_url}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        text = response.read()
        return json.loads(text) if text else None


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    bound = 'dialect_listen = { container = ["127.0.0.1:0"] }\n'
    with running_imds(tmp_path_factory.mktemp("imds-ct"), guest_config=bound) as imds:
        role = {"source": {"type": "static", "access_key_id": "ASIABOTOCONTAINER1", "secret_access_key": "boto-secret",
                           "session_token": "boto-session", "expiration": "2099-01-01T00:00:00Z"}}
        admin(imds, "PUT", "/v1/roles/task-role", role)
        # botocore calls from 127.0.0.1: the host running the containers.
        put_instance(imds, "i-ecs-host", {"ipv4": ["127.0.0.1"], "iam_role": "task-role"})
        yield imds


def issue(imds: Imds, workload: str) -> dict[str, Any]:
    issued: dict[str, Any] = admin(imds, "POST", "/v1/instances/i-ecs-host/container-tokens", {"workload": workload})
    return issued


def full_uri(imds: Imds) -> str:
    return f"{imds.dialect_urls['container']}/v1/credentials"


def test_pod_identity_with_the_token_in_a_file(node: Imds, tmp_path: Path) -> None:
    token = issue(node, "default/web")["token"]
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(token)
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": full_uri(node), "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)}
    credentials = ContainerProvider(environ=environ).load()
    assert credentials.method == "container-role"
    frozen = credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == ("ASIABOTOCONTAINER1", "boto-secret", "boto-session")


def test_pod_identity_with_the_token_in_the_environment(node: Imds) -> None:
    token = issue(node, "default/worker")["token"]
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": full_uri(node), "AWS_CONTAINER_AUTHORIZATION_TOKEN": token}
    assert ContainerProvider(environ=environ).load().get_frozen_credentials().access_key == "ASIABOTOCONTAINER1"


def test_an_ecs_relative_uri(node: Imds) -> None:
    issued = issue(node, "task/app")
    session = URLLib3Session(timeout=5, proxies={"http": node.dialect_urls["container"]})
    provider = ContainerProvider(
        environ={"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": issued["relative_uri"]},
        fetcher=ContainerMetadataFetcher(session=session),
    )
    assert provider.load().get_frozen_credentials().secret_key == "boto-secret"


def test_a_revoked_or_foreign_token_gets_nothing(node: Imds, tmp_path: Path) -> None:
    issued = issue(node, "default/gone")
    admin(node, "DELETE", f"/v1/instances/i-ecs-host/container-tokens/{issued['id']}")
    for token in [issued["token"], "never-issued"]:
        environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": full_uri(node), "AWS_CONTAINER_AUTHORIZATION_TOKEN": token}
        fetcher = ContainerMetadataFetcher(sleep=lambda _seconds: None)
        with pytest.raises(CredentialRetrievalError):
            ContainerProvider(environ=environ, fetcher=fetcher).load()
