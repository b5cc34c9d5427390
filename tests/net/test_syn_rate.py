"""The per-source connection rate `imds net up` puts in chain `guest`: a VM opening connections
in a tight loop has its SYNs over `[net] syn_per_second` (and the burst) dropped by the kernel,
per source address and per IP family, while another VM connecting at the same time, a VM under
the rate and connections already established are answered at once."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from netlab import Lab, wait_until

PER_SECOND, BURST = 10, 20
VMS = {
    "a": ("192.0.2.11", "02:00:00:00:00:0a", "2001:db8::11"),
    "b": ("192.0.2.12", "02:00:00:00:00:0b", None),
}

# Run inside a VM's namespace. `flood HOST PORT COUNT SECONDS`: non-blocking connects as fast as
# they go (at most 256 pending, each given up after 0.5 s, shorter than the kernel's first SYN
# retransmission at 1 s), every connected socket closed at once: the reconnect loop. Before it,
# one keep-alive connection is opened and answered; after it, that connection must answer again.
# `steady HOST PORT COUNT INTERVAL`: one connection and one request every INTERVAL seconds, each
# connect given 0.9 s (a dropped SYN would only be sent again after 1 s).
CLIENT = r'''
import json, select, socket, sys, time

def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def request(sock, host):
    sock.sendall(f"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return ""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(l.split(b":", 1)[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head.split(b"\r\n")[0].decode() + " " + body.decode(errors="replace")

mode, host, port, count, arg = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
if mode == "steady":
    results = []
    for _ in range(count):
        began = time.monotonic()
        sock = socket.socket(family(host), socket.SOCK_STREAM)
        sock.settimeout(0.9)
        try:
            sock.connect((host, port))
            connected = time.monotonic() - began
            sock.settimeout(5)
            answer = request(sock, host)
        except OSError as error:
            connected, answer = None, repr(error)
        sock.close()
        results.append({"connect": connected, "answer": answer})
        time.sleep(max(0.0, arg - (time.monotonic() - began)))
    print(json.dumps(results))
    sys.exit(0)

kept = socket.create_connection((host, port), timeout=5)
first = request(kept, host)
poller, pending = select.poll(), {}
attempts = connected = failed = 0

def reap(wait_ms):
    global connected, failed
    for fd, _ in poller.poll(wait_ms):
        sock, _ = pending.pop(fd)
        poller.unregister(fd)
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            connected += 1
        else:
            failed += 1
        sock.close()
    now = time.monotonic()
    for fd, (sock, began) in list(pending.items()):
        if now - began > 0.5:
            pending.pop(fd)
            poller.unregister(fd)
            sock.close()
            failed += 1

began = time.monotonic()
while attempts < count and time.monotonic() - began < arg:
    while len(pending) >= 256:
        reap(10)
    sock = socket.socket(family(host), socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.connect_ex((host, port))
    pending[sock.fileno()] = (sock, time.monotonic())
    poller.register(sock, select.POLLOUT)
    attempts += 1
    if attempts % 16 == 0:
        reap(0)
elapsed = time.monotonic() - began
while pending:
    reap(20)
kept.settimeout(5)
again = request(kept, host)
print(json.dumps({"attempts": attempts, "connected": connected, "failed": failed, "elapsed": elapsed,
                  "first": first, "again": again}))
'''


def config(lab: Lab) -> str:
    return str(lab.config(f"""
[guest]
listen = ["169.254.169.254:80", "[fd00:ec2::254]:80"]
[admin]
listen = "127.0.0.1:8998"
socket = ""
token_file = "{lab.tmp / 'admin-token'}"
[store]
path = "{lab.tmp / 'store' / 'imds.db'}"
[net]
guest_interfaces = ["tap*"]
syn_per_second = {PER_SECOND}
syn_burst = {BURST}
"""))


def client(lab: Lab, vm: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", vm, sys.executable, "-c", CLIENT, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen):
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return json.loads(out)


def dropped(lab: Lab) -> int:
    """SYNs the rate rules have dropped, from the rules' own counters."""
    table = json.loads(lab.ns(lab.host, "nft", "-j", "list", "table", "inet", "imds").stdout)
    rules = [item["rule"] for item in table["nftables"] if "rule" in item]
    limited = [rule for rule in rules if rule.get("comment") == "imds connection rate"]
    assert len(limited) == 2, rules  # one per IP family
    return sum(expr["counter"]["packets"] for rule in limited for expr in rule["expr"] if "counter" in expr)


def assert_all_answered_at_once(results: list[dict], who: str) -> None:
    for result in results:
        assert result["connect"] is not None and result["connect"] < 0.9, (who, result)
        assert result["answer"].startswith("HTTP/1.1 200") and "vm-" in result["answer"], (who, result)


def assert_flood_was_slowed(flood: dict) -> None:
    assert flood["attempts"] >= 200, flood  # a flood, not a trickle
    assert flood["connected"] + flood["failed"] == flood["attempts"], flood
    # The burst, the rate over the time connects were made, and the SYNs retransmitted meanwhile.
    allowed = BURST + PER_SECOND * (flood["elapsed"] + 1)
    assert flood["connected"] <= allowed, (allowed, flood)
    assert flood["failed"] > flood["attempts"] / 2, flood
    # The connection made before the flood was answered before and after it: established
    # connections are never limited.
    assert flood["first"].startswith("HTTP/1.1 200") and flood["again"] == flood["first"], flood


def test_a_connection_flood_is_dropped_per_source_and_others_are_answered_at_once(lab):
    vms = {name: lab.routed_vm(f"vm{name}", f"tap-{name}", ip, mac, ip6) for name, (ip, mac, ip6) in VMS.items()}
    cfg = config(lab)
    lab.imds("net", "up", "--config", cfg)
    daemon = lab.serve(lab.config(open(cfg).read()))
    for name, (ip, _, ip6) in VMS.items():
        daemon.put({"id": f"vm-{name}", "ipv4": [ip]} | ({"ipv6": [ip6]} if ip6 else {}))
    wait_until(lambda: finish(client(lab, vms["b"], "steady", "169.254.169.254", 80, 1, 0))[0]["connect"], "imds")
    assert dropped(lab) == 0

    # A guest under the rate (5 a second) is never dropped.
    assert_all_answered_at_once(finish(client(lab, vms["b"], "steady", "169.254.169.254", 80, 15, 0.2)), "vm-b alone")
    assert dropped(lab) == 0

    # vm-a floods; vm-b, from its own address, connects meanwhile and is answered at once.
    flood = client(lab, vms["a"], "flood", "169.254.169.254", 80, 2000, 4)
    time.sleep(1)
    beside = finish(client(lab, vms["b"], "steady", "169.254.169.254", 80, 10, 0.2))
    flood = finish(flood)
    assert_flood_was_slowed(flood)
    assert_all_answered_at_once(beside, "vm-b beside the flood")
    after_v4 = dropped(lab)
    assert after_v4 >= flood["failed"], (after_v4, flood)

    # IPv6 has its own buckets: vm-a, out of IPv4 tokens, connects over IPv6 at once; then its
    # IPv6 flood is slowed the same way.
    assert_all_answered_at_once(finish(client(lab, vms["a"], "steady", "fd00:ec2::254", 80, 3, 0.2)), "vm-a over IPv6")
    flood6 = finish(client(lab, vms["a"], "flood", "fd00:ec2::254", 80, 2000, 3))
    assert_flood_was_slowed(flood6)
    total = dropped(lab)
    assert total >= after_v4 + flood6["failed"], (total, after_v4, flood6)
    # `imds net status` shows the drops, and the rules are as configured.
    report = json.loads(lab.imds("net", "status", "--config", cfg, "-o", "json").stdout)
    assert report["drift"] == [], report
    shown = [item for item in report["items"] if item["what"] == "SYNs over a source's rate (inet)"]
    assert shown and int(shown[0]["detail"]) >= total, report
    daemon.process.terminate()
    daemon.process.wait(timeout=10)
