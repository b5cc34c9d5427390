"""Fleet refresh of an `sts` role against moto's STS server: two real `imds serve` nodes on one
real etcd (Debian's `etcd`, started here on loopback), both with the deployment key. Each
refresh assumes the role once for the fleet and both nodes' guests get that one set; a
refresher killed (SIGKILL) mid-refresh holds an etcd lease, which etcd expires, and the other
node takes over while its guests keep getting credentials with more than five minutes left.

STS calls are counted by a small proxy in front of moto (moto's server keeps no call history
one could read): it forwards every request and counts the AssumeRole calls it forwarded. It can
hold the next AssumeRole instead, to kill the refresher while it waits for STS.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import http.server
import json
import os
import queue
import shutil
import signal
import socketserver
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ADMIN_TOKEN, _binary, _read_lines, _wait_for_addresses, stop_process
from test_credentials import DIRECT, Moto, call, free_port, wait_until

ROLE_ARN = "arn:aws:iam::123456789012:role/fleet-role"
# A prefix of this run's own: nothing else's keys are read or written.
PREFIX = f"/imds/fleet-test-{os.getpid()}"
LEASE_KEY = f"{PREFIX}/lease/refreshers/fleet"
# The binary's refresher lease TTL ([`fleet::Config::lease_ttl`]), which bounds a takeover.
LEASE_TTL_S = 15
ETCD = shutil.which("etcd") or "/usr/bin/etcd"


class Etcd:
    """One etcd member on loopback ports, with its data in `tmp`; stopped by its PID."""

    def __init__(self, tmp: Path) -> None:
        client_port = free_port()
        peer_port = next(port for port in iter(free_port, None) if port != client_port)
        self.client_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self.log = (tmp / "etcd.log").open("wb")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "fleet", "--data-dir", str(tmp / "etcd"),
             "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
             "--initial-cluster", f"fleet={peer_url}", "--initial-cluster-state", "new",
             "--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "warn"],
            stdout=self.log, stderr=self.log,
        )
        wait_until("etcd", lambda: self._health(), timeout=30)
        assert self.proc.poll() is None, f"etcd exited: {(tmp / 'etcd.log').read_text()[-2000:]}"

    def _health(self) -> bool:
        try:
            with DIRECT.open(f"{self.client_url}/health", timeout=1) as response:
                return bool(json.load(response).get("health") == "true")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def v3(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A call of etcd's v3 JSON gateway (what `etcdctl` does over gRPC)."""
        request = urllib.request.Request(f"{self.client_url}/v3/{path}", method="POST", data=json.dumps(body).encode())
        with DIRECT.open(request, timeout=5) as response:
            return dict(json.load(response))

    def lease_key(self) -> tuple[str, str] | None:
        """The refresher lease key's value (the holder) and its etcd lease id, or `None`."""
        found = self.v3("kv/range", {"key": base64.b64encode(LEASE_KEY.encode()).decode()})
        kvs = found.get("kvs") or []
        if not kvs:
            return None
        return base64.b64decode(kvs[0]["value"]).decode(), str(kvs[0].get("lease", "0"))

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        self.log.close()


class CountingProxy:
    """A loopback HTTP proxy to moto that counts the AssumeRole calls it forwarded, and holds
    (never forwards) the next one after `hold_next()` until `release()`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.assumed = 0
        self.held = threading.Event()
        self._hold = False
        self._released = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                assume = b"Action=AssumeRole" in body
                with proxy._lock:
                    hold = assume and proxy._hold
                    if hold:
                        proxy._hold = False
                    elif assume:
                        proxy.assumed += 1
                if hold:
                    proxy.held.set()
                    proxy._released.wait(timeout=120)
                    self._answer(503, b"held")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream = urllib.request.Request(f"{proxy.upstream}{self.path}", method="POST", data=body, headers=headers)
                try:
                    with DIRECT.open(upstream, timeout=10) as response:
                        self._answer(response.status, response.read(), response.headers.get("Content-Type"))
                except urllib.error.HTTPError as error:
                    self._answer(error.code, error.read(), error.headers.get("Content-Type"))

            def _answer(self, status: int, body: bytes, content_type: str | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type or "text/xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the caller is gone (killed)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hold_next(self) -> None:
        with self._lock:
            self._hold = True

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()


class Node:
    """`imds serve --node NAME` on etcd with the deployment key, one of the fleet's designated
    refreshers (`[fleet] refresher = true`); its guest is `ip`."""

    def __init__(self, tmp: Path, name: str, etcd: Etcd, key_file: Path, ip: str) -> None:
        self.name, self.ip = name, ip
        home = tmp / name
        home.mkdir()
        config = home / "imds.toml"
        config.write_text(
            '[guest]\nlisten = ["127.0.0.1:0"]\n'
            f'[admin]\nlisten = "127.0.0.1:0"\nsocket = ""\ntoken = "{ADMIN_TOKEN}"\n'
            f'[store]\nbackend = "etcd"\nurl = "etcd://{etcd.client_url.removeprefix("http://")}{PREFIX}"\n'
            f'node = "{name}"\ncredentials_key_file = {json.dumps(str(key_file))}\n'
            '[fleet]\nrefresher = true\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMDS_")}
        self.stderr_path = home / "imds.stderr"
        self.stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [str(_binary()), "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_read_lines, args=(self.proc.stdout, lines), daemon=True).start()
        try:
            guest, admin, _ = _wait_for_addresses(self.proc, lines)
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"{error}\nimds stderr:\n{self.stderr_path.read_text()[-4000:]}") from None
        self.guest = guest
        self.admin_url = f"http://{admin}"

    def credentials(self) -> dict[str, Any]:
        """The role's credentials as this node's guest reads them (calling from `ip`)."""
        host, port = self.guest.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(self.ip, 0))
        try:
            connection.request("GET", "/latest/meta-data/iam/security-credentials/fleet")
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        assert response.status == 200, body
        return dict(json.loads(body))

    def kill(self) -> None:
        """SIGKILL, by PID: no shutdown, no release."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc, timeout=5)
        self.stderr.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Etcd, CountingProxy, list[Node]]]:
    moto = Moto(free_port(), tmp_path / "moto.log")
    moto.start()
    etcd = Etcd(tmp_path)
    proxy = CountingProxy(moto.url)
    key_file = tmp_path / "fleet.key"
    key_file.write_text(os.urandom(32).hex() + "\n")
    nodes: list[Node] = []
    try:
        for n, ip in ((1, "127.0.0.21"), (2, "127.0.0.22")):
            nodes.append(Node(tmp_path, f"hv-{n}", etcd, key_file, ip))
        yield etcd, proxy, nodes
    finally:
        for node in nodes:
            node.stop()
        proxy.stop()
        etcd.stop()
        moto.stop()


def left_s(credentials: dict[str, Any]) -> float:
    expiration = datetime.datetime.strptime(credentials["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return (expiration - now).total_seconds()


def put_role(node: Node, proxy: CountingProxy, duration: int) -> None:
    role = {"source": {"type": "sts", "role_arn": ROLE_ARN, "endpoint": proxy.url, "duration_seconds": duration}}
    status, body = call(f"{node.admin_url}/v1/roles/fleet", "PUT", role)
    assert status in (200, 201), body


def test_one_node_assumes_the_role_per_refresh_and_a_killed_refresher_is_replaced(
    fleet: tuple[Etcd, CountingProxy, list[Node]],
) -> None:
    etcd, proxy, nodes = fleet
    put_role(nodes[0], proxy, 3600)
    base = {"AccessKeyId": "AKIAFLEETBASE0000001", "SecretAccessKey": "fleet-base-secret"}
    status, body = call(f"{nodes[0].admin_url}/v1/roles/fleet/base-credentials", "PUT", base)
    assert status == 204, body
    for n, node in enumerate(nodes):
        record = {"ipv4": [node.ip], "node": node.name, "iam_role": "fleet"}
        status, body = call(f"{node.admin_url}/v1/instances/i-0f1ee70000000000{n}", "PUT", record)
        assert status in (200, 201), body

    def all_serve(previous: str | None = None) -> list[dict[str, Any]]:
        def check() -> list[dict[str, Any]] | None:
            served = [node.credentials() for node in nodes]
            fresh = all(c.get("Code") == "Success" and c["AccessKeyId"] != previous for c in served)
            return served if fresh else None

        return list(wait_until("every node serving new credentials", check, timeout=60))

    # The first refresh: one AssumeRole for the fleet, the same set on both nodes.
    first = all_serve()
    assert first[0]["AccessKeyId"].startswith("ASIA")
    assert {c["AccessKeyId"] for c in first} == {first[0]["AccessKeyId"]}, first
    assert first[0]["SecretAccessKey"] == first[1]["SecretAccessKey"]
    assert proxy.assumed == 1, f"{proxy.assumed} AssumeRole calls for one refresh"
    assert etcd.lease_key() is None, "the refresher kept its lease after publishing"

    # A role update forces a refresh everywhere (the old publication no longer decrypts): one
    # AssumeRole again, one new set on both nodes.
    put_role(nodes[1], proxy, 3500)
    second = all_serve(previous=first[0]["AccessKeyId"])
    assert {c["AccessKeyId"] for c in second} == {second[0]["AccessKeyId"]}, second
    assert proxy.assumed == 2, f"{proxy.assumed - 1} AssumeRole calls for the second refresh"

    # Short-lived credentials (moto honours DurationSeconds): 975 s, so fresh for the fleet
    # (more than 16 minutes left) for only 15 s, while they can be served for 11 more minutes.
    put_role(nodes[0], proxy, 975)
    third = all_serve(previous=second[0]["AccessKeyId"])
    assert {c["AccessKeyId"] for c in third} == {third[0]["AccessKeyId"]}, third
    assert proxy.assumed == 3, f"{proxy.assumed - 2} AssumeRole calls for the third refresh"
    wait_until("the published credentials to be due", lambda: left_s(third[0]) <= 16 * 60 - 5, timeout=60)

    # The next refresh's AssumeRole is held at STS; the node waiting for it holds the etcd
    # lease, and is killed. etcd expires the lease and the other node takes over.
    proxy.hold_next()
    for node in nodes:
        status, body = call(f"{node.admin_url}/v1/roles/fleet/refresh", "POST")
        assert status == 202, body
    assert proxy.held.wait(timeout=60), "no node asked STS for the fourth refresh"
    holder, lease = wait_until("the refresher's lease in etcd", etcd.lease_key, timeout=30)
    ttl = etcd.v3("lease/timetolive", {"ID": lease})
    assert int(ttl["grantedTTL"]) == LEASE_TTL_S, ttl
    # The holder is the node's name and its process id.
    dead = next(node for node in nodes if holder == f"{node.name}/{node.proc.pid}")
    survivor = next(node for node in nodes if node is not dead)
    dead.kill()
    proxy.release()

    def taken_over() -> dict[str, Any] | None:
        served = survivor.credentials()
        # Guests keep getting credentials, never close to expiry, while the refresher is replaced.
        assert served.get("Code") == "Success", served
        assert left_s(served) > 300, served
        return served if served["AccessKeyId"] != third[0]["AccessKeyId"] else None

    fourth = wait_until("the survivor's takeover", taken_over, timeout=LEASE_TTL_S + 60)
    assert proxy.assumed == 4, f"{proxy.assumed - 3} AssumeRole calls reached STS for the fourth refresh"
    assert left_s(fourth) > 300
    assert etcd.lease_key() is None, "the new refresher kept its lease after publishing"
    logs = survivor.stderr_path.read_text()
    assert "refreshing the role for the fleet" in logs
    assert "fleet-base-secret" not in logs and fourth["SecretAccessKey"] not in logs
