"""GCE and Azure credentials through their real SDKs, each against a daemon of its own with a
static role created through the admin API:

- google-auth's `compute_engine.Credentials().refresh()` gets the role's session token, and
  `IDTokenCredentials(..., use_metadata_identity_endpoint=True)` an ID token that verifies
  against the JWKS and certificates the admin API publishes (PyJWT and google-auth's own
  `jwt.decode`);
- azure-identity's `ManagedIdentityCredential`, pointed at imds with
  `AZURE_POD_IDENTITY_AUTHORITY_HOST`, gets the role's token and expiry, by default and by
  `client_id`, and is told "Identity not found" for another client id.

Both SDKs run in child processes with their environment variables set, as a user would run
them (google-auth reads its variables at import time).
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import google.auth.jwt
import jwt
import pytest

from conftest import ADMIN_TOKEN, Imds, put_instance, running_imds

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
EXPIRATION = "2099-01-01T00:00:00Z"
EXPIRES_ON = int(datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
AUDIENCE = "https://api.example.com"


def admin(imds: Imds, path: str, method: str = "GET", body: Any = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"{imds.admin_url}{path}", method=method, data=data, headers=headers)
    try:
        with DIRECT.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def guest(imds: Imds, path: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"{imds.guest_url}{path}", headers=headers)
    try:
        with DIRECT.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def put_static_role(imds: Imds, name: str, token: str) -> None:
    source = {
        "type": "static",
        "access_key_id": "AKIATOKENSCLIENT",
        "secret_access_key": "not-used-here",
        "session_token": token,
        "expiration": EXPIRATION,
    }
    status, body = admin(imds, f"/v1/roles/{name}", "PUT", {"source": source})
    assert status == 201, body


def wait_for_status(imds: Imds, path: str, headers: dict[str, str], status: int) -> None:
    """Polls the guest path (every 0.1 s, at most 20 s) until it answers `status`: the role's
    credentials are loaded and the signing key is ready."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if guest(imds, path, headers) == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} never answered {status}")


def run_child(program: str, env_update: dict[str, str], prefix: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith(prefix)}
    env.update(env_update)
    env["NO_PROXY"] = "*"
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the client failed:\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- GCE ------------------------------------------------------------------------------------

GCE_RECORD: dict[str, Any] = {
    "name": "token-client",
    "ipv4": ["127.0.0.1"],
    "zone": "europe-west1-b",
    "account": {"id": "123456789012", "name": "acme-prod"},
    "iam_role": "gce-role",
}


@pytest.fixture(scope="module")
def gce(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    with running_imds(tmp_path_factory.mktemp("imds-gce-tokens")) as running:
        put_instance(running, "5550002222", GCE_RECORD)
        put_static_role(running, "gce-role", "ya29.imds-static-token")
        flavor = {"Metadata-Flavor": "Google"}
        sa = "/computeMetadata/v1/instance/service-accounts/default"
        wait_for_status(running, f"{sa}/token", flavor, 200)
        wait_for_status(running, f"{sa}/identity?audience=x", flavor, 200)
        yield running


GOOGLE_AUTH_PROGRAM = """
import json, sys
import google.auth.transport.requests
from google.auth import compute_engine

request = google.auth.transport.requests.Request()
credentials = compute_engine.Credentials()
credentials.refresh(request)
id_credentials = compute_engine.IDTokenCredentials(
    request, sys.argv[1], use_metadata_identity_endpoint=True
)
id_credentials.refresh(request)
print(json.dumps({
    "token": credentials.token,
    "expiry": credentials.expiry.isoformat(),
    "email": credentials.service_account_email,
    "id_token": id_credentials.token,
    "id_expiry": id_credentials.expiry.isoformat(),
}))
"""


def run_google_auth(imds: Imds) -> dict[str, Any]:
    host = imds.guest_url.removeprefix("http://")
    program = GOOGLE_AUTH_PROGRAM.replace("sys.argv[1]", repr(AUDIENCE))
    return run_child(program, {"GCE_METADATA_HOST": host, "GCE_METADATA_IP": host}, "GCE_")


def test_google_auth_gets_the_roles_token_and_a_verifiable_id_token(gce: Imds) -> None:
    seen = run_google_auth(gce)
    assert seen["token"] == "ya29.imds-static-token"
    assert seen["email"] == "gce-role@acme-prod.iam.gserviceaccount.com"
    # google-auth turns expires_in into a naive UTC expiry; the role's expires in 2099.
    expiry = datetime.datetime.fromisoformat(seen["expiry"]).replace(tzinfo=datetime.timezone.utc)
    assert abs(expiry.timestamp() - EXPIRES_ON) < 120, seen["expiry"]

    id_token = seen["id_token"]
    status, body = admin(gce, "/v1/signing/jwks")
    assert status == 200, body
    jwks = json.loads(body)
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    claims = jwt.decode(id_token, key=key.key, algorithms=["RS256"], audience=AUDIENCE)
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["email"] == "gce-role@acme-prod.iam.gserviceaccount.com"
    engine = claims["google"]["compute_engine"]
    assert engine["instance_id"] == "5550002222"
    assert engine["project_id"] == "acme-prod"
    assert engine["zone"] == "europe-west1-b"
    expiry = datetime.datetime.fromisoformat(seen["id_expiry"])
    assert expiry.replace(tzinfo=datetime.timezone.utc).timestamp() == claims["exp"]

    # google-auth's own verifier, with the published certificates keyed by kid.
    status, pem = admin(gce, "/v1/signing/certificates")
    assert status == 200
    verified = google.auth.jwt.decode(id_token, certs={kid: pem.decode()}, audience=AUDIENCE)
    assert verified["sub"] == claims["sub"]
    # A token for another audience does not pass as this one's.
    with pytest.raises(ValueError):
        google.auth.jwt.decode(id_token, certs={kid: pem.decode()}, audience="https://other.example.com")


# --- Azure ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imds]:
    with running_imds(tmp_path_factory.mktemp("imds-azure-tokens")) as running:
        put_instance(running, "i-azure-tokens", {"ipv4": ["127.0.0.1"], "iam_role": "az-role"})
        put_static_role(running, "az-role", "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.imds.token")
        token = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/"
        wait_for_status(running, token, {"Metadata": "true"}, 200)
        yield running


AZURE_PROGRAM = """
import json, sys
from azure.identity import CredentialUnavailableError, ManagedIdentityCredential

client_id, other = sys.argv[1], sys.argv[2]
seen = {}
for name, credential in [("default", ManagedIdentityCredential()),
                         ("client_id", ManagedIdentityCredential(client_id=client_id))]:
    token = credential.get_token("https://management.azure.com/.default")
    seen[name] = {"token": token.token, "expires_on": token.expires_on}
try:
    ManagedIdentityCredential(client_id=other).get_token("https://management.azure.com/.default")
    seen["other"] = "got a token"
except CredentialUnavailableError as error:
    seen["other"] = str(error)
print(json.dumps(seen))
"""


def client_id(role: str) -> str:
    """The identity's client id as imds derives it: UUIDv5 (URL name space) of the role."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"imds:azure/client/{role}"))


def test_azure_identity_gets_the_roles_token(azure: Imds) -> None:
    program = AZURE_PROGRAM.replace("sys.argv[1], sys.argv[2]", f"{client_id('az-role')!r}, {client_id('x')!r}")
    seen = run_child(program, {"AZURE_POD_IDENTITY_AUTHORITY_HOST": azure.guest_url}, "AZURE_")
    for name in ("default", "client_id"):
        assert seen[name] == {"token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.imds.token", "expires_on": EXPIRES_ON}
    assert "Identity not found" in seen["other"]
