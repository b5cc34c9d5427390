"""Host datapath tests: the real `imds` binary (`$IMDS_BIN`, else target/debug/imds) in network
namespaces this module creates, joined by veth pairs standing in for taps and a Linux bridge.

Every namespace is named `imdsNx<pid>-<role>` (`$IMDS_NETNS_PREFIX` replaces `imds`); the
daemon and `imds net` run inside a "host" namespace, so the machine's own namespace never gets
169.254.169.254 or an nftables table.
Only TEST-NET addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are used,
inside those namespaces. Everything is removed afterwards, also when a test fails. A machine
where namespaces cannot be created fails the tests, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMDS = os.environ.get("IMDS_BIN", str(REPO / "target" / "debug" / "imds"))
TOKEN = "net-tests-admin-token"


def run(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def require_tools() -> None:
    missing = [tool for tool in ("ip", "nft", "curl") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"host datapath tests need {', '.join(missing)} (Debian: iproute2, nftables, curl)")
    probe = f"imdsprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"cannot create a network namespace (needs root or CAP_SYS_ADMIN): {made.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)


class Lab:
    """Namespaces of one test, removed (with every process started in them) by `close`."""

    counter = 0

    def __init__(self, tmp: Path) -> None:
        require_tools()
        Lab.counter += 1
        # IMDS_NETNS_PREFIX: another leading word for the namespace names (runs side by side).
        self.prefix = f"{os.environ.get('IMDS_NETNS_PREFIX', 'imds')}{Lab.counter}x{os.getpid()}"
        self.tmp = tmp
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.host = self.netns("host")

    def netns(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def ns(self, ns: str, *args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)

    def veth(self, host_side: str, vm: str, mac: str | None = None, host_ns: str | None = None) -> None:
        """A veth pair: `host_side` in the host namespace, `eth0` in `vm`."""
        host_ns = host_ns or self.host
        args = ["ip", "-n", host_ns, "link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", vm]
        run(*args)
        if mac:
            run("ip", "-n", vm, "link", "set", "eth0", "address", mac)
        run("ip", "-n", host_ns, "link", "set", host_side, "up")
        run("ip", "-n", vm, "link", "set", "eth0", "up")

    def routed_vm(self, role: str, tap: str, ip: str, mac: str, ip6: str | None = None) -> str:
        """A VM on its own tap: host side 192.0.2.1 (and 2001:db8::1), a /32 route to the VM."""
        vm = self.netns(role)
        self.veth(tap, vm, mac)
        run("ip", "-n", self.host, "addr", "add", "192.0.2.1/32", "dev", tap)
        run("ip", "-n", self.host, "route", "add", f"{ip}/32", "dev", tap)
        run("ip", "-n", vm, "addr", "add", f"{ip}/24", "dev", "eth0")
        run("ip", "-n", vm, "route", "add", "192.0.2.1/32", "dev", "eth0")
        run("ip", "-n", vm, "route", "add", "default", "via", "192.0.2.1", "dev", "eth0")
        if ip6:
            run("ip", "-n", self.host, "-6", "addr", "add", "2001:db8::1/128", "dev", tap, "nodad")
            run("ip", "-n", self.host, "-6", "route", "add", f"{ip6}/128", "dev", tap)
            run("ip", "-n", vm, "-6", "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad")
            run("ip", "-n", vm, "-6", "route", "add", "default", "via", "2001:db8::1", "dev", "eth0")
        return vm

    def config(self, text: str) -> Path:
        self.configs = getattr(self, "configs", 0) + 1
        path = self.tmp / f"imds-{self.configs}.toml"
        (self.tmp / "admin-token").write_text(TOKEN)
        path.write_text(text)
        return path

    def imds(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.ns(self.host, IMDS, *args, check=check, timeout=30)

    def serve(self, config: Path) -> "Daemon":
        log = open(self.tmp / f"serve-{len(self.processes)}.log", "w")
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.host, IMDS, "serve", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )
        self.processes.append(process)
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("imds is serving"):
                return Daemon(self, process, Path(log.name))
        process.kill()
        raise AssertionError(f"imds serve did not start: {''.join(lines)}{Path(log.name).read_text()}")

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


class Daemon:
    def __init__(self, lab: Lab, process: subprocess.Popen, log: Path) -> None:
        self.lab, self.process, self.log_path = lab, process, log

    def log(self) -> str:
        return self.log_path.read_text()

    def admin(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        args = ["curl", "-s", "-m", "10", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-X", method,
                "-H", f"Authorization: Bearer {TOKEN}", f"http://127.0.0.1:8998{path}"]
        if body is not None:
            args += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        out = self.lab.ns(self.lab.host, *args).stdout
        text, _, status = out.rpartition("\n")
        return int(status), (json.loads(text) if text.strip() else {})

    def put(self, instance: dict) -> None:
        status, body = self.admin("PUT", f"/v1/instances/{instance['id']}", instance)
        assert status in (200, 201), (status, body)


def curl(lab: Lab, ns: str, url: str, *headers: str, method: str = "GET", timeout: float = 3) -> tuple[int, str]:
    """`curl` inside `ns`: (status, body); status 0 when nothing came back in time."""
    args = ["curl", "-s", "-g", "-m", str(timeout), "-X", method, "-o", "/dev/stdout", "-w", "\n%{http_code}"]
    for header in headers:
        args += ["-H", header]
    result = lab.ns(ns, *args, url, check=False, timeout=timeout + 10)
    text, _, status = result.stdout.rpartition("\n")
    return int(status or 0), text


def snapshot_host(lab: Lab) -> tuple[str, str]:
    """What `net down` must restore: the ruleset and the addresses of the host namespace."""
    rules = lab.ns(lab.host, "nft", "list", "ruleset").stdout
    addrs = lab.ns(lab.host, "ip", "-o", "addr").stdout
    # Interface, family, address/prefix: lifetimes count down and kernel-made link-local
    # addresses lose their "tentative" flag between two listings.
    addrs = "\n".join(" ".join(line.split()[:4]) for line in addrs.splitlines())
    return rules, addrs


def wait_until(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
