"""Routed hosts, one tap per VM (Firecracker's and DigitalOcean's model): `imds net up`, the
identity rules `serve` keeps, every dialect from each VM's default route, a VM forging its
neighbour's IP and MAC, a VM known by MAC only, IPv6, the EC2 hop limit, trusted proxies, the
admin listener and `net up`/`net down` leaving the host as it found it."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import stat

from netlab import IMDS, Lab, curl, snapshot_host, wait_until

MD = "http://169.254.169.254"
VMS = {
    "a": ("192.0.2.11", "02:00:00:00:00:0a", "2001:db8::11"),
    "b": ("192.0.2.12", "02:00:00:00:00:0b", None),
    "c": ("192.0.2.13", "02:00:00:00:00:0c", None),
}


def config(lab: Lab, extra: str = "", admin: str = "127.0.0.1:8998", manage: bool = True) -> str:
    return str(lab.config(f"""
[guest]
listen = ["169.254.169.254:80", "[fd00:ec2::254]:80"{extra}]
[admin]
listen = "{admin}"
socket = ""
token_file = "{lab.tmp / 'admin-token'}"
[store]
path = "{lab.tmp / 'store' / 'imds.db'}"
[net]
guest_interfaces = ["tap*"]
manage = {str(manage).lower()}
"""))


def record(name: str, ip: str | None, mac: str, ip6: str | None = None, tap: str | None = None) -> dict:
    rec = {"id": f"vm-{name}", "hostname": f"host-{name}", "mac": [mac], "host_interfaces": [tap or f"tap-{name}"]}
    if ip:
        rec["ipv4"] = [ip]
    if ip6:
        rec["ipv6"] = [ip6]
    return rec


def start(lab: Lab, **kw):
    vms = {name: lab.routed_vm(f"vm{name}", f"tap-{name}", ip, mac, ip6) for name, (ip, mac, ip6) in VMS.items()}
    cfg = config(lab, **kw)
    up = lab.imds("net", "up", "--config", cfg)
    daemon = lab.serve(lab.config(open(cfg).read()))
    for name, (ip, mac, ip6) in VMS.items():
        daemon.put(record(name, ip, mac, ip6))
    return vms, daemon, up


def dialects(lab: Lab, vm: str) -> list[str]:
    """The hostname as EC2 (IMDSv2), GCE and Azure tell it to this VM."""
    # Answers that must come get a long timeout: on a loaded machine the debug daemon can be slow.
    status, token = curl(lab, vm, f"{MD}/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 60", method="PUT", timeout=10)
    assert status == 200, (status, token)
    answers = [
        curl(lab, vm, f"{MD}/latest/meta-data/hostname", f"X-aws-ec2-metadata-token: {token}", timeout=10),
        curl(lab, vm, f"{MD}/computeMetadata/v1/instance/hostname", "Metadata-Flavor: Google", timeout=10),
        curl(lab, vm, f"{MD}/metadata/instance/compute/name?api-version=2021-02-01&format=text", "Metadata: true", timeout=10),
    ]
    for status, body in answers:
        assert status == 200, (status, body)
    return [body for _, body in answers]


def test_each_vm_reads_only_its_own_data_and_a_forger_gets_nothing_and_is_logged(lab):
    vms, daemon, up = start(lab)
    assert "on lo" in up.stdout and "dummy" in up.stdout, up.stdout  # this kernel has no dummy driver
    wait_until(lambda: "identity rules applied" in daemon.log(), "the identity rules")
    for name, vm in vms.items():
        for answer in wait_until(lambda: _try(lambda: dialects(lab, vm)), f"vm-{name}'s answers"):
            assert f"host-{name}" in answer
            assert all(f"host-{other}" not in answer for other in VMS if other != name)

    # vm-c takes vm-a's address and MAC.
    ip_a, mac_a, _ = VMS["a"]
    lab.ns(vms["c"], "ip", "addr", "flush", "dev", "eth0")
    lab.ns(vms["c"], "ip", "link", "set", "eth0", "address", mac_a)
    lab.ns(vms["c"], "ip", "addr", "add", f"{ip_a}/24", "dev", "eth0")
    lab.ns(vms["c"], "ip", "route", "add", "192.0.2.1/32", "dev", "eth0")
    lab.ns(vms["c"], "ip", "route", "add", "default", "via", "192.0.2.1", "dev", "eth0")
    for path, header in [("/latest/meta-data/hostname", "X-Any: 1"), ("/computeMetadata/v1/instance/hostname", "Metadata-Flavor: Google")]:
        status, body = curl(lab, vms["c"], MD + path, header)
        assert status == 0 and "host-a" not in body, (status, body)
    log = wait_until(lambda: "forged source" in daemon.log() and daemon.log(), "the forgery log line")
    forged = [line for line in log.splitlines() if "forged source" in line]
    assert any("vm-c" in line and "tap-c" in line for line in forged), forged
    # vm-a is unharmed.
    assert all("host-a" in answer for answer in dialects(lab, vms["a"]))

    # Moving an instance to another tap moves its rules before the write returns: once vm-b's
    # record names tap-b2, what arrives on tap-b is nobody's.
    daemon.put(record("b", VMS["b"][0], VMS["b"][1], tap="tap-b2"))
    status, body = curl(lab, vms["b"], f"{MD}/latest/meta-data/hostname")
    assert status == 0 and "host-b" not in body, (status, body)


def _try(fn):
    try:
        return fn()
    except AssertionError:
        return None


def test_ipv6_endpoint_and_claims_of_host_interfaces(lab):
    vms, daemon, _ = start(lab)
    wait_until(lambda: "identity rules applied" in daemon.log(), "the identity rules")
    status, body = wait_until(
        lambda: (r := curl(lab, vms["a"], "http://[fd00:ec2::254]/latest/meta-data/hostname"))[0] == 200 and r,
        "the IPv6 endpoint")
    assert "host-a" in body
    # host_interfaces are claims: a second instance cannot take tap-a.
    status, body = daemon.admin("PUT", "/v1/instances/vm-z", {"id": "vm-z", "host_interfaces": ["tap-a"]})
    assert status == 409 and "vm-a" in json.dumps(body), (status, body)
    status, body = daemon.admin("PUT", "/v1/instances/vm-y", {"id": "vm-y", "host_interfaces": ["bad name"]})
    assert status == 400 and "host_interfaces" in json.dumps(body), (status, body)
    status, _ = daemon.admin("GET", "/v1/instances/vm-y")
    assert status == 404


def test_mac_only_instance_is_found_through_the_neighbour_table_as_its_ip_changes(lab):
    vms, daemon, _ = start(lab)
    vm = lab.routed_vm("vmm", "tap-m", "203.0.113.14", "02:00:00:00:00:0d")
    lab.ns(lab.host, "ip", "route", "add", "203.0.113.24/32", "dev", "tap-m")
    daemon.put(record("m", None, "02:00:00:00:00:0d"))
    status, body = wait_until(lambda: (r := curl(lab, vm, f"{MD}/latest/meta-data/hostname"))[0] == 200 and r, "vm-m")
    assert body == "host-m", body
    lab.ns(vm, "ip", "addr", "flush", "dev", "eth0")
    lab.ns(vm, "ip", "addr", "add", "203.0.113.24/24", "dev", "eth0")
    lab.ns(vm, "ip", "route", "replace", "192.0.2.1/32", "dev", "eth0")
    lab.ns(vm, "ip", "route", "replace", "default", "via", "192.0.2.1", "dev", "eth0")
    status, body = wait_until(lambda: (r := curl(lab, vm, f"{MD}/latest/meta-data/hostname"))[0] == 200 and r, "vm-m after its address changed")
    assert body == "host-m", body
    # Another VM taking vm-m's MAC on its own tap is dropped.
    lab.ns(vms["b"], "ip", "link", "set", "eth0", "address", "02:00:00:00:00:0d")
    status, body = curl(lab, vms["b"], f"{MD}/latest/meta-data/hostname")
    assert status == 0 and "host-m" not in body


def test_hop_limit_through_an_extra_router(lab):
    vms, daemon, _ = start(lab)
    router = lab.netns("router")
    lab.veth("tap-r", router)
    lab.ns(lab.host, "ip", "addr", "add", "192.0.2.1/32", "dev", "tap-r")
    lab.ns(lab.host, "ip", "route", "add", "192.0.2.20/32", "dev", "tap-r")
    lab.ns(lab.host, "ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.20", "dev", "tap-r")
    lab.ns(router, "ip", "addr", "add", "192.0.2.20/24", "dev", "eth0")
    lab.ns(router, "ip", "route", "add", "default", "via", "192.0.2.1", "dev", "eth0")
    lab.ns(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    inner = lab.netns("behind")
    lab.veth("in0", inner, host_ns=router)
    lab.ns(router, "ip", "addr", "add", "198.51.100.1/24", "dev", "in0")
    lab.ns(inner, "ip", "addr", "add", "198.51.100.10/24", "dev", "eth0")
    lab.ns(inner, "ip", "route", "add", "default", "via", "198.51.100.1")
    rec = {"id": "vm-r", "hostname": "host-r", "ipv4": ["198.51.100.10"], "host_interfaces": ["tap-r"], "imds": {"hop_limit": 1}}
    daemon.put(rec)
    put = lambda: curl(lab, inner, f"{MD}/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 60", method="PUT", timeout=3)
    # The hostname (a GET, default TTL) comes through: the path works.
    wait_until(lambda: curl(lab, inner, f"{MD}/latest/meta-data/hostname")[0] == 200, "vm-r through the router")
    status, token = put()
    assert status == 0 and not token, (status, token)
    rec["imds"]["hop_limit"] = 2
    daemon.put(rec)
    status, token = put()
    assert status == 200 and len(token) > 20, (status, token)


def test_trusted_proxy_headers_count_only_from_the_proxy(lab):
    secret = "proxy-shared-secret-0123456789"
    (lab.tmp / "proxy-secret").write_text(secret + "\n")
    vms = {name: lab.routed_vm(f"vm{name}", f"tap-{name}", ip, mac, ip6) for name, (ip, mac, ip6) in VMS.items()}
    proxy = lab.netns("proxy")
    lab.veth("px0", proxy)
    lab.ns(lab.host, "ip", "addr", "add", "198.51.100.1/24", "dev", "px0")
    lab.ns(proxy, "ip", "addr", "add", "198.51.100.2/24", "dev", "eth0")
    cfg = config(lab, extra=', "198.51.100.1:8775"') + ""
    text = open(cfg).read() + f'proxies = ["198.51.100.2"]\nproxy_secret_file = "{lab.tmp / "proxy-secret"}"\n'
    cfg = str(lab.config(text))
    lab.imds("net", "up", "--config", cfg)
    daemon = lab.serve(lab.config(text))
    for name, (ip, mac, ip6) in VMS.items():
        daemon.put(record(name, ip, mac, ip6))
    daemon.put({"id": "vm-p", "hostname": "host-p"})
    sign = lambda id_: hmac.new(secret.encode(), id_.encode(), hashlib.sha256).hexdigest()
    url = "http://198.51.100.1:8775/latest/meta-data/hostname"
    assert curl(lab, proxy, url, "X-Instance-ID: vm-p", f"X-Instance-ID-Signature: {sign('vm-p')}") == (200, "host-p")
    status, body = curl(lab, proxy, url, "X-Instance-ID: vm-p", f"X-Instance-ID-Signature: {sign('vm-q')}")
    assert status == 403 and "host-p" not in body, (status, body)
    status, body = curl(lab, proxy, url, "X-Instance-ID: vm-p")
    assert status == 400 and "Signature" in body, (status, body)
    assert curl(lab, proxy, url, "X-Forwarded-For: 192.0.2.12") == (200, "host-b")
    # GCE refuses X-Forwarded-For, from a proxy too.
    status, body = curl(lab, proxy, "http://198.51.100.1:8775/computeMetadata/v1/instance/hostname", "Metadata-Flavor: Google", "X-Forwarded-For: 192.0.2.12")
    assert status == 403 and "host-b" not in body, (status, body)
    # From a VM the same headers are ignored: it is itself.
    wait_until(lambda: "identity rules applied" in daemon.log(), "the identity rules")
    status, body = wait_until(lambda: (r := curl(lab, vms["a"], f"{MD}/latest/meta-data/hostname", "X-Instance-ID: vm-p", f"X-Instance-ID-Signature: {sign('vm-p')}", "X-Forwarded-For: 192.0.2.12"))[0] == 200 and r, "vm-a")
    assert body == "host-a", body
    # The proxy itself, without headers, is nobody.
    status, body = curl(lab, proxy, url)
    assert status == 403 and "host-" not in body, (status, body)


def test_admin_on_all_addresses_is_refused_and_unreachable_from_guests(lab):
    vms = {name: lab.routed_vm(f"vm{name}", f"tap-{name}", ip, mac, ip6) for name, (ip, mac, ip6) in VMS.items()}
    unsafe = config(lab, admin="0.0.0.0:8998")
    refused = lab.imds("serve", "--config", unsafe, check=False)
    assert refused.returncode == 2, refused
    assert "allow_guest_reachable" in refused.stderr and "127.0.0.1" in refused.stderr, refused.stderr
    text = open(unsafe).read().replace("[admin]\n", "[admin]\nallow_guest_reachable = true\n")
    cfg = str(lab.config(text))
    lab.imds("net", "up", "--config", cfg)
    daemon = lab.serve(lab.config(text))
    daemon.put(record("a", *VMS["a"][:2]))
    for vm in vms.values():
        for target in ["192.0.2.1", "169.254.169.254"]:
            status, body = curl(lab, vm, f"http://{target}:8998/v1/instances", f"Authorization: Bearer x")
            assert status == 0 and not body, (target, status, body)
    # From the host itself it answers.
    assert daemon.admin("GET", "/v1/instances/vm-a")[0] == 200


def test_net_up_twice_is_once_down_leaves_no_trace_and_status_shows_drift(lab):
    lab.routed_vm("vma", "tap-a", *VMS["a"][:2])
    cfg = config(lab)
    before = snapshot_host(lab)
    # A guest interface that does not exist is refused, and nothing changes.
    bad = str(lab.config(open(cfg).read().replace('["tap*"]', '["tap*", "nosuch0"]')))
    refused = lab.imds("net", "up", "--config", bad, check=False)
    assert refused.returncode == 1 and "nosuch0" in refused.stderr, refused
    assert snapshot_host(lab) == before
    lab.imds("net", "up", "--config", cfg)
    once = snapshot_host(lab)
    assert "169.254.169.254/32" in once[1] and "table inet imds" in once[0]
    again = lab.imds("net", "up", "--config", cfg)
    assert snapshot_host(lab) == once, again.stdout
    status = lab.imds("net", "status", "--config", cfg, "-o", "json")
    report = json.loads(status.stdout)
    assert report["drift"] == [] and report["interface"] == "lo", report
    lab.ns(lab.host, "ip", "addr", "del", "169.254.169.254/32", "dev", "lo")
    drifted = lab.imds("net", "status", "--config", cfg, check=False)
    assert drifted.returncode == 1 and "169.254.169.254" in drifted.stdout, drifted.stdout
    lab.imds("net", "up", "--config", cfg)
    down = lab.imds("net", "down", "--config", cfg)
    assert "removed" in down.stdout
    assert snapshot_host(lab) == before
    # serve without the address says how to fix it.
    failed = lab.imds("serve", "--config", cfg, check=False)
    assert failed.returncode != 0 and "imds net up" in failed.stderr, failed.stderr


def test_store_files_are_private(lab):
    cfg = config(lab, manage=False)
    lab.imds("net", "up", "--config", cfg)
    daemon = lab.serve(lab.config(open(cfg).read()))
    daemon.put({"id": "vm-s"})
    store = lab.tmp / "store"
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o700
    for path in store.iterdir():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_a_copied_mac_on_another_tap_is_refused_without_managed_rules(lab):
    vms = {name: lab.routed_vm(f"vm{name}", f"tap-{name}", ip, mac, ip6) for name, (ip, mac, ip6) in VMS.items()}
    vm = lab.routed_vm("vmm", "tap-m", "203.0.113.14", "02:00:00:00:00:0d")
    cfg = config(lab, manage=False)
    lab.imds("net", "up", "--config", cfg)
    daemon = lab.serve(lab.config(open(cfg).read()))
    daemon.put(record("m", None, "02:00:00:00:00:0d"))
    status, body = wait_until(lambda: (r := curl(lab, vm, f"{MD}/latest/meta-data/hostname"))[0] == 200 and r, "vm-m")
    assert body == "host-m"
    # vm-b copies vm-m's MAC and calls from an address nobody holds, on its own tap.
    lab.ns(lab.host, "ip", "route", "add", "203.0.113.99/32", "dev", "tap-b")
    lab.ns(vms["b"], "ip", "link", "set", "eth0", "address", "02:00:00:00:00:0d")
    lab.ns(vms["b"], "ip", "addr", "flush", "dev", "eth0")
    lab.ns(vms["b"], "ip", "addr", "add", "203.0.113.99/24", "dev", "eth0")
    lab.ns(vms["b"], "ip", "route", "add", "192.0.2.1/32", "dev", "eth0")
    lab.ns(vms["b"], "ip", "route", "add", "default", "via", "192.0.2.1", "dev", "eth0")
    status, body = curl(lab, vms["b"], f"{MD}/latest/meta-data/hostname")
    assert status == 403 and "host-m" not in body, (status, body)
    log = wait_until(lambda: "forged source" in daemon.log() and daemon.log(), "the forgery log line")
    assert any("vm-m" in line and "tap-b" in line for line in log.splitlines() if "forged source" in line), log


def test_sighup_reloads_the_net_rules_and_log_level_and_guests_stay_answered(lab):
    vms, daemon, _ = start(lab)
    served = lab.tmp / f"imds-{lab.configs}.toml"  # the file `serve` reads, as start() wrote it
    wait_until(lambda: "identity rules applied" in daemon.log(), "the identity rules")
    assert '"fc-*"' not in lab.ns(lab.host, "nft", "list", "table", "inet", "imds").stdout
    text = served.read_text().replace('guest_interfaces = ["tap*"]', 'guest_interfaces = ["tap*", "fc-*"]')
    served.write_text(text + '[log]\nlevel = "debug"\n')
    os.kill(daemon.process.pid, signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in daemon.log(), "the reload's log line")
    line = next(l for l in daemon.log().splitlines() if "configuration reloaded" in l)
    assert "log level debug" in line and "host datapath rules" in line, line
    ruleset = lab.ns(lab.host, "nft", "list", "table", "inet", "imds").stdout
    assert 'iifname "fc-*" jump guest' in ruleset, ruleset
    # The server's identity rules were kept: every VM still reads its own data, in every dialect.
    for name, vm in vms.items():
        for answer in dialects(lab, vm):
            assert f"host-{name}" in answer
