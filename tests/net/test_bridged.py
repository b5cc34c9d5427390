"""A bridged host (libvirt/QEMU's and VMAN's model): VMs' veths enslaved to a Linux bridge that
holds 192.0.2.1 and, after `imds net up`, 169.254.169.254. The per-port rules of `bridge imds`
drop frames that carry another instance's MAC or IP."""

from __future__ import annotations

import json

from netlab import Lab, curl, run, snapshot_host, wait_until

MD = "http://169.254.169.254"
VMS = {"a": ("192.0.2.11", "02:00:00:00:01:0a"), "b": ("192.0.2.12", "02:00:00:00:01:0b"), "c": ("192.0.2.13", "02:00:00:00:01:0c")}


def bridged(lab: Lab) -> dict[str, str]:
    run("ip", "-n", lab.host, "link", "add", "br-imds", "type", "bridge")
    run("ip", "-n", lab.host, "addr", "add", "192.0.2.1/24", "dev", "br-imds")
    run("ip", "-n", lab.host, "link", "set", "br-imds", "up")
    vms = {}
    for name, (ip, mac) in VMS.items():
        vm = lab.netns(f"vm{name}")
        lab.veth(f"vp-{name}", vm, mac)
        run("ip", "-n", lab.host, "link", "set", f"vp-{name}", "master", "br-imds")
        run("ip", "-n", vm, "addr", "add", f"{ip}/24", "dev", "eth0")
        run("ip", "-n", vm, "route", "add", "default", "via", "192.0.2.1")
        vms[name] = vm
    return vms


def test_bridge_ports_drop_a_forged_mac_and_ip(lab):
    vms = bridged(lab)
    cfg = lab.config(f"""
[guest]
listen = ["169.254.169.254:80"]
[admin]
listen = "127.0.0.1:8998"
socket = ""
token_file = "{lab.tmp / 'admin-token'}"
[store]
path = "{lab.tmp / 'store' / 'imds.db'}"
[net]
guest_interfaces = ["br-imds"]
interface = "br-imds"
manage = true
""")
    # `ip link add ... type bridge` makes a bridge whose MAC follows its lowest port's: `up` says so.
    up = lab.imds("net", "up", "--config", str(cfg))
    assert "bridge imds" in up.stdout, up.stdout
    assert "bridge br-imds has no MAC of its own" in up.stdout, up.stdout
    status = json.loads(lab.imds("net", "status", "--config", str(cfg), "-o", "json").stdout)
    assert {"what": "bridge br-imds MAC", "state": "from ports"} in [{k: i[k] for k in ("what", "state")} for i in status["items"]], status
    lab.imds("net", "down", "--config", str(cfg))
    # With a MAC of its own (as libvirt and systemd-networkd give theirs) a VM joining later, as
    # vm-d does below, leaves the gateway's MAC in the other VMs' ARP caches true.
    run("ip", "-n", lab.host, "link", "set", "br-imds", "address", "02:00:00:00:01:01")
    before = snapshot_host(lab)
    up = lab.imds("net", "up", "--config", str(cfg))
    assert "bridge imds" in up.stdout and "no MAC of its own" not in up.stdout, up.stdout
    daemon = lab.serve(cfg)
    for name, (ip, mac) in VMS.items():
        daemon.put({"id": f"vm-{name}", "hostname": f"host-{name}", "ipv4": [ip], "mac": [mac], "host_interfaces": [f"vp-{name}"]})
    wait_until(lambda: "identity rules applied" in daemon.log(), "the identity rules")
    for name, vm in vms.items():
        status, body = wait_until(lambda: (r := curl(lab, vm, f"{MD}/latest/meta-data/hostname"))[0] == 200 and r, f"vm-{name}")
        assert body == f"host-{name}"
        status, body = curl(lab, vm, f"{MD}/computeMetadata/v1/instance/hostname", "Metadata-Flavor: Google")
        assert status == 200 and body.startswith(f"host-{name}."), (status, body)

    # A VM registered by MAC only (its address from DHCP) is found through the neighbour table.
    vm_d = lab.netns("vmd")
    lab.veth("vp-d", vm_d, "02:00:00:00:01:0d")
    run("ip", "-n", lab.host, "link", "set", "vp-d", "master", "br-imds")
    run("ip", "-n", vm_d, "addr", "add", "192.0.2.44/24", "dev", "eth0")
    run("ip", "-n", vm_d, "route", "add", "default", "via", "192.0.2.1")
    daemon.put({"id": "vm-d", "hostname": "host-d", "mac": ["02:00:00:00:01:0d"], "host_interfaces": ["vp-d"]})
    assert curl(lab, vm_d, f"{MD}/latest/meta-data/hostname") == (200, "host-d")

    # vm-c forges vm-a's MAC and IP on its port.
    ip_a, mac_a = VMS["a"]
    lab.ns(vms["c"], "ip", "addr", "flush", "dev", "eth0")
    lab.ns(vms["c"], "ip", "link", "set", "eth0", "address", mac_a)
    lab.ns(vms["c"], "ip", "addr", "add", f"{ip_a}/24", "dev", "eth0")
    lab.ns(vms["c"], "ip", "route", "add", "default", "via", "192.0.2.1")
    for _ in range(2):
        status, body = curl(lab, vms["c"], f"{MD}/latest/user-data")
        assert status == 0 and not body, (status, body)
        status, body = curl(lab, vms["c"], f"{MD}/latest/meta-data/hostname")
        assert status == 0 and "host-a" not in body, (status, body)
    log = wait_until(lambda: "forged source" in daemon.log() and daemon.log(), "the forgery log line")
    assert any("vm-c" in line and "vp-c" in line for line in log.splitlines() if "forged source" in line)
    # vm-a is unharmed (a longer timeout: on a loaded machine the debug daemon can be slow).
    status, body = curl(lab, vms["a"], f"{MD}/latest/meta-data/hostname", timeout=10)
    assert (status, body) == (200, "host-a")
    # Only its own IP, with its own MAC: vm-b claiming vm-a's IP alone is dropped too.
    lab.ns(vms["b"], "ip", "addr", "flush", "dev", "eth0")
    lab.ns(vms["b"], "ip", "addr", "add", f"{ip_a}/24", "dev", "eth0")
    lab.ns(vms["b"], "ip", "route", "add", "default", "via", "192.0.2.1")
    status, body = curl(lab, vms["b"], f"{MD}/latest/meta-data/hostname")
    assert status == 0 and "host-a" not in body, (status, body)

    status = json.loads(lab.imds("net", "status", "--config", str(cfg), "-o", "json").stdout)
    assert status["interface_kind"] == "bridge" and status["drift"] == [], status
    assert {"what": "bridge br-imds MAC", "state": "fixed", "detail": ""} in status["items"], status
    run("ip", "-n", lab.host, "link", "del", "vp-d")  # added after `before` was taken
    daemon.process.terminate()
    daemon.process.wait(timeout=10)
    lab.imds("net", "down", "--config", str(cfg))
    assert snapshot_host(lab) == before
