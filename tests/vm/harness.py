"""Boots a Debian 12 VM (scripts/vm-image) under QEMU against the real imds binary, one dialect per
boot, and reads what the guest's cloud-init did from its serial console.

One boot, all inside a network namespace the harness creates (TEST-NET-1 addresses only):

    host namespace imdsvm-<name>-<pid>
      lo     169.254.169.254/32 (and 168.63.129.16/32 for Azure's WireServer)  <- host_side_up()
      tap0   192.0.2.1/24, QEMU's NIC; dnsmasq hands the VM 192.0.2.10 by its MAC, the router
             and the DNS server (192.0.2.1), and resolves metadata.google.internal to
             169.254.169.254
      imds   serve: guest plane on 169.254.169.254:80, admin on a Unix socket, SQLite in the run
             directory
      qemu   -kernel/-initrd from the image, a qcow2 overlay of its root, the SMBIOS arguments
             exactly as `imds instance smbios ID --dialect D` prints them, console on ttyS0 to
             a file

The user-data (a cloud-config) prints `IMDS-VM ...` marker lines to ttyS0 from runcmd and powers
the VM off; cloud-init itself prints its "finished ... Datasource ..." line on the console. Each
run keeps its files under target/vm-runs/<name>/ (console.log, imds.log, dnsmasq.log, record.json).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
IMDS_BIN = Path(os.environ.get("IMDS_BIN", REPO / "target/debug/imds"))
RUNS = REPO / "target/vm-runs"
BOOT_TIMEOUT_S = float(os.environ.get("IMDS_VM_BOOT_TIMEOUT", "900"))
MEMORY_MIB = os.environ.get("IMDS_VM_MEMORY", "512")
ADMIN_TOKEN = "vm-tests"

HOST_ADDR = "192.0.2.1"
VM_ADDR = "192.0.2.10"
METADATA_ADDR = "169.254.169.254"
WIRESERVER_ADDR = "168.63.129.16"
TAP = "tap0"

# The tools a boot needs and the Debian package of each.
TOOLS = {
    "ip": "iproute2",
    "nft": "nftables",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "dnsmasq": "dnsmasq-base",
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
}


class HarnessError(Exception):
    """Something outside the guest failed (a tool, the namespace, imds, QEMU)."""


def ensure_tools() -> None:
    """Installs the missing tools with apt-get; raises naming what is still missing.

    Looks twice: installing one package can remove another tool. A qemu-utils from
    bookworm-backports, say, goes when Debian's own qemu-system-x86 comes in (they must be the
    same QEMU version); the second pass installs Debian's qemu-utils beside it."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for _ in range(2):
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        if not missing:
            break
        packages = sorted({TOOLS[t] for t in missing})
        if subprocess.run(["apt-get", "install", "-y", *packages], env=env).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env)
            subprocess.run(["apt-get", "install", "-y", *packages], env=env)
    still = [tool for tool in TOOLS if shutil.which(tool) is None]
    if still:
        raise HarnessError(f"missing after apt-get install: {', '.join(still)} (packages {sorted({TOOLS[t] for t in still})})")
    if os.geteuid() != 0:
        raise HarnessError("VM boot tests need root (network namespaces, tap devices, debootstrap)")
    if not IMDS_BIN.is_file():
        raise HarnessError(f"imds binary {IMDS_BIN} not found (cargo build -p imds, or set IMDS_BIN)")


@dataclass
class Image:
    """The built image: root file system, kernel, initramfs and command line."""

    dir: Path
    root: Path
    kernel: Path
    initrd: Path
    cmdline: str
    cloud_init: str


def build_image() -> Image:
    """Runs scripts/vm-image (a no-op when the cached image matches its inputs)."""
    started = time.monotonic()
    proc = subprocess.run([str(REPO / "scripts/vm-image")], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise HarnessError(f"scripts/vm-image failed with status {proc.returncode}")
    directory = Path(proc.stdout.strip().splitlines()[-1])
    image = Image(
        dir=directory,
        root=directory / "root.raw",
        kernel=directory / "vmlinuz",
        initrd=directory / "initrd.img",
        cmdline=(directory / "cmdline").read_text().strip(),
        cloud_init=(directory / "cloud-init-version").read_text().strip(),
    )
    print(f"vm image: {directory} (cloud-init {image.cloud_init}), ready in {time.monotonic() - started:.0f} s")
    return image


def detect_accel(image: Image, workdir: Path) -> tuple[str, str]:
    """KVM when /dev/kvm works for a Linux guest, else TCG, with the reason.

    The probe boots the image's kernel under KVM with no root file system: a working KVM prints
    "Linux version" on the serial port within a second or two. Where /dev/kvm opens but guests
    die in the decompressor (MSR and emulation failures), nothing is printed and TCG is used.
    `IMDS_VM_ACCEL=kvm|tcg` skips the probe."""
    forced = os.environ.get("IMDS_VM_ACCEL")
    if forced:
        return forced, "IMDS_VM_ACCEL"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "/dev/kvm is not usable"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "kvm-probe.log"
    log.unlink(missing_ok=True)
    cmd = ["qemu-system-x86_64", "-accel", "kvm", "-m", "256", "-nodefaults", "-no-user-config",
           "-display", "none", "-serial", f"file:{log}", "-no-reboot",
           "-kernel", str(image.kernel), "-append", "console=ttyS0 panic=-1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    ok = False
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and "Linux version" in log.read_text(errors="replace"):
            ok = True
            break
        time.sleep(0.5)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if ok or (log.exists() and "Linux version" in log.read_text(errors="replace")):
        return "kvm", "a Linux kernel starts under KVM"
    return "tcg", "/dev/kvm opens but a Linux kernel does not start under KVM (probe: 20 s, no output)"


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Runs a command, raising with its output when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise HarnessError(f"{shlex.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


# --- the host side --------------------------------------------------------------------------


def imds_config(run_dir: Path, scenario: "Scenario") -> str:
    """The configuration `imds serve` (and the host side) read."""
    wire = f'azure_wireserver_listen = ["{WIRESERVER_ADDR}:80"]\n' if scenario.wireserver else ""
    return (
        f'[guest]\nlisten = ["{METADATA_ADDR}:80"]\n{wire}'
        f'[admin]\nsocket = "{run_dir / "admin.sock"}"\ntoken_file = "{run_dir / "token"}"\n'
        f'[store]\nbackend = "sqlite"\npath = "{run_dir / "imds.db"}"\n'
        f'[net]\nguest_interfaces = ["{TAP}"]\ninterface = "lo"\n'
    )


def host_side_up(ns: str, config: Path, wireserver: bool) -> None:
    """The host side as an operator sets it up: `imds net up` puts the metadata address on
    loopback (this kernel has no dummy driver) and the nftables floor in place (guest ports
    reachable from the tap only). Beside it: Azure's WireServer address, which `imds net` does
    not place, and the link-local route back to guests that call from 169.254.x.y."""
    run(["ip", "netns", "exec", ns, str(IMDS_BIN), "net", "up", "--config", str(config)])
    if wireserver:
        run(["ip", "-n", ns, "addr", "add", f"{WIRESERVER_ADDR}/32", "dev", "lo"])
    run(["ip", "-n", ns, "route", "add", "169.254.0.0/16", "dev", TAP])


def host_side_down(ns: str, config: Path) -> None:
    """Undoes host_side_up (deleting the namespace removes everything anyway)."""
    # Best effort: this runs in a `finally`, and deleting the namespace removes it all anyway.
    subprocess.run(["ip", "netns", "exec", ns, str(IMDS_BIN), "net", "down", "--config", str(config)],
                   capture_output=True, check=False)


# --- one boot -------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One dialect's boot: the record, the SMBIOS dialect and what the guest must show."""

    name: str
    dialect: str
    record: dict[str, Any]
    datasource: str  # the datasource class cloud-init must report, e.g. "DataSourceEc2Local"
    user: str  # the default user whose authorized_keys must hold the record's key
    specific: Callable[["Boot"], list[tuple[str, str, str]]]  # (what, expected, seen)
    wireserver: bool = False  # serve Azure's WireServer on 168.63.129.16
    # Other classes of the same datasource that also count (e.g. its network-stage variant).
    datasource_also: tuple[str, ...] = ()


@dataclass
class Boot:
    """What one boot showed."""

    scenario: Scenario
    accel: str
    run_dir: Path
    console: str = ""
    markers: dict[str, list[str]] = field(default_factory=dict)
    finished_line: str = ""
    boot_seconds: float | None = None  # QEMU start to cloud-init's "finished" line
    guest_uptime: str = ""
    error: str = ""

    def marker(self, key: str) -> str:
        """The first `IMDS-VM <key> <value>` line's value, or ""."""
        values = self.markers.get(key, [])
        return values[0] if values else ""

    def checks(self) -> list[tuple[str, str, str]]:
        """Every check as (what, expected, seen)."""
        s = self.scenario
        datasource = re.search(r"Datasource (\S+?)\.?(?:\s|$)", self.finished_line)
        seen_ds = datasource.group(1) if datasource else "(no cloud-init finished line)"
        host = s.record["hostname"]
        keys = self.markers.get("key", [])
        key_file = f"/home/{s.user}/.ssh/authorized_keys"
        want_key = s.record["ssh_keys"][0]
        held = [k.split(" ", 1)[1] for k in keys if k.startswith(key_file + " ")]
        return [
            ("datasource", " or ".join((s.datasource, *s.datasource_also)), seen_ds),
            ("hostname", host, self.marker("hostname") or "(no marker)"),
            (f"ssh key in {key_file}", want_key, want_key if want_key in held else
             f"(files with keys: {sorted({k.split(' ', 1)[0] for k in keys}) or 'none'})"),
            ("user-data ran", "yes", "yes" if "userdata" in self.markers else "no marker"),
            *s.specific(self),
        ]

    def failures(self) -> list[str]:
        """The checks that did not hold, described."""
        if self.error:
            return [self.error]
        return [f"{what}: expected {want!r}, saw {seen!r}" for what, want, seen in self.checks() if not holds(want, seen)]


def holds(want: str, seen: str) -> bool:
    """Whether a check holds: `seen` is `want`, or one of its " or "-separated alternatives."""
    return seen in want.split(" or ")


def user_data() -> str:
    """The cloud-config every boot runs: markers on ttyS0, then power off."""
    report = r"""#!/bin/sh
exec >/dev/ttyS0 2>&1
m() { echo "IMDS-VM $*"; }
m userdata ran
m hostname "$(hostname)"
m fqdn "$(hostname -f 2>/dev/null)"
for f in /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys; do
  [ -f "$f" ] && while read -r k; do m key "$f $k"; done <"$f"
done
m status "$(grep -o '"datasource": "[^"]*"' /run/cloud-init/status.json | head -n 1)"
m cloud-id "$(cloud-id 2>/dev/null)"
m instance-id "$(cloud-init query v1.instance_id 2>/dev/null)"
m region "$(cloud-init query v1.region 2>/dev/null)"
m zone "$(cloud-init query v1.availability_zone 2>/dev/null)"
m addr "$(ip -o -4 addr show scope global | awk '{ printf "%s %s ", $2, $4 }')"
m route "$(ip -4 route show default | head -n 1)"
m eni "$(grep -hE '^(auto|iface|allow|[[:space:]]+(address|gateway|post-up route))' /etc/network/interfaces.d/* 2>/dev/null | sed 's/^[[:space:]]*//' | tr '\n' ';')"
m done
"""
    doc = {
        "write_files": [{"path": "/run/imds-vm-report", "permissions": "0755", "content": report}],
        "runcmd": [["sh", "/run/imds-vm-report"]],
        "power_state": {"mode": "poweroff", "delay": "now", "timeout": 30, "condition": True},
    }
    # JSON is YAML: the cloud-config needs no YAML library here.
    return "#cloud-config\n" + json.dumps(doc, indent=1) + "\n"


MARKER = re.compile(r"IMDS-VM (\S+) ?(.*)$")
FINISHED = re.compile(r"Cloud-init v\. \S+ finished at .*")


def parse_console(boot: Boot) -> None:
    """Reads the markers and cloud-init's finished line out of the console text."""
    boot.markers = {}
    for raw in boot.console.splitlines():
        line = raw.rstrip("\r")
        found = MARKER.search(line)
        if found:
            boot.markers.setdefault(found.group(1), []).append(found.group(2).strip())
        done = FINISHED.search(line)
        if done:
            boot.finished_line = done.group(0)
            up = re.search(r"Up ([\d.]+) seconds", line)
            boot.guest_uptime = up.group(1) if up else ""


class Processes:
    """The processes one boot started, stopped by PID in reverse order."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def imds_cli(run_dir: Path, *args: str) -> str:
    """Runs the imds CLI against this boot's admin socket."""
    env = dict(os.environ, IMDS_ADMIN_TOKEN=ADMIN_TOKEN)
    return run([str(IMDS_BIN), *args, "--admin", str(run_dir / "admin.sock")], env=env).stdout


def boot(scenario: Scenario, image: Image, accel: str) -> Boot:
    """Boots one VM for the scenario and returns what its console showed."""
    run_dir = RUNS / scenario.name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    result = Boot(scenario=scenario, accel=accel, run_dir=run_dir)
    ns = f"imdsvm-{scenario.name}-{os.getpid()}"[:40]
    procs = Processes()
    try:
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "tuntap", "add", "dev", TAP, "mode", "tap"])
        run(["ip", "-n", ns, "addr", "add", f"{HOST_ADDR}/24", "dev", TAP])
        run(["ip", "-n", ns, "link", "set", TAP, "up"])
        in_ns = ["ip", "netns", "exec", ns]

        # imds: the real binary, a real SQLite store in the run directory, one config file for
        # `serve` and the host side.
        (run_dir / "token").write_text(ADMIN_TOKEN)
        config = run_dir / "imds.toml"
        config.write_text(imds_config(run_dir, scenario))
        host_side_up(ns, config, scenario.wireserver)
        procs.start(in_ns + [str(IMDS_BIN), "serve", "--config", str(config)], run_dir / "imds.log")
        deadline = time.monotonic() + 30
        while True:
            try:
                imds_cli(run_dir, "instance", "ls")
                break
            except HarnessError:
                if time.monotonic() > deadline:
                    raise HarnessError(f"imds did not answer on its admin socket in 30 s: {(run_dir / 'imds.log').read_text()[-2000:]}")
                time.sleep(0.3)

        # The instance record, registered through the CLI; the SMBIOS arguments as it prints them.
        record = dict(scenario.record, user_data=user_data())
        (run_dir / "record.json").write_text(json.dumps(record, indent=1))
        imds_cli(run_dir, "instance", "put", "--file", str(run_dir / "record.json"))
        smbios_text = imds_cli(run_dir, "instance", "smbios", record["id"], "--dialect", scenario.dialect).strip()
        (run_dir / "smbios.txt").write_text(smbios_text + "\n")
        smbios_args = shlex.split(smbios_text)

        # DHCP and DNS for the VM.
        mac = record["mac"][0]
        procs.start(in_ns + ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root",
                             f"--interface={TAP}", "--bind-interfaces", f"--listen-address={HOST_ADDR}",
                             "--no-resolv", "--no-hosts", "--log-dhcp", "--log-queries",
                             f"--log-facility={run_dir / 'dnsmasq.log'}",
                             f"--pid-file={run_dir / 'dnsmasq.pid'}",
                             f"--dhcp-leasefile={run_dir / 'dnsmasq.leases'}",
                             f"--dhcp-range={HOST_ADDR[:-1]}0,static,255.255.255.0,1h",
                             f"--dhcp-host={mac},{VM_ADDR}",
                             f"--dhcp-option=option:router,{HOST_ADDR}",
                             f"--dhcp-option=option:dns-server,{HOST_ADDR}",
                             f"--address=/metadata.google.internal/{METADATA_ADDR}"],
                    run_dir / "dnsmasq.out")

        # The VM, on a copy-on-write overlay of the image's root.
        disk = run_dir / "disk.qcow2"
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.root), str(disk)])
        console = run_dir / "console.log"
        qemu = ["qemu-system-x86_64", "-accel", accel, "-m", MEMORY_MIB, "-smp", "1",
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-serial", f"file:{console}",
                "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", image.cmdline,
                "-drive", f"file={disk},if=virtio,format=qcow2",
                "-netdev", f"tap,id=net0,ifname={TAP},script=no,downscript=no",
                "-device", f"virtio-net-pci,netdev=net0,mac={mac}",
                "-device", "virtio-rng-pci", *smbios_args]
        (run_dir / "qemu.cmd").write_text(shlex.join(qemu) + "\n")
        started = time.monotonic()
        vm = procs.start(in_ns + qemu, run_dir / "qemu.out")
        deadline = started + BOOT_TIMEOUT_S
        finished_at = None
        while time.monotonic() < deadline:
            exited = vm.poll() is not None
            if console.exists():
                result.console = console.read_text(errors="replace")
                parse_console(result)
            if result.finished_line and finished_at is None:
                finished_at = time.monotonic()
                result.boot_seconds = finished_at - started
            if exited:
                break
            if finished_at is not None and time.monotonic() - finished_at > 60:
                break  # finished but did not power off: enough seen
            if re.search(r"^\S+ login: ", result.console, re.M) and "Cloud-init v." not in result.console:
                # A login prompt and not one cloud-init stage: ds-identify found no datasource
                # in the SMBIOS values and disabled cloud-init for this boot.
                result.error = ("cloud-init did not run: the VM reached its login prompt without any cloud-init "
                                "stage (ds-identify disabled it: no datasource recognised in the SMBIOS values "
                                f"{smbios_text}); console tail:\n{result.console[-1500:]}")
                break
            time.sleep(1)
        else:
            result.error = (f"timed out after {BOOT_TIMEOUT_S:.0f} s without cloud-init's finished line; "
                            f"console tail:\n{result.console[-3000:]}")
        if not result.finished_line and not result.error:
            result.error = f"QEMU exited ({vm.returncode}) before cloud-init finished; console tail:\n{result.console[-3000:]}"
    except HarnessError as err:
        result.error = str(err)
    finally:
        procs.stop()
        host_side_down(ns, run_dir / "imds.toml")
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        (run_dir / "disk.qcow2").unlink(missing_ok=True)
    return result
