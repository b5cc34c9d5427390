"""`/metrics` read by a real parser, and the audit log, on the real binary:

- the exposition parses with `prometheus_client`'s strict OpenMetrics parser (the format
  Prometheus negotiates first), every family has the type and unit documented in
  docs/operations.md, and the counters move by exactly the requests this test made;
- a scrape without the bearer token is refused 401;
- with `[audit] output` set, the token mint and the user-data read are JSON lines naming the
  instance, source, dialect, path and status, and neither the token nor the user-data is in them.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as classic_families

from conftest import ADMIN_TOKEN, Imds, put_instance, running_imds

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# What Prometheus sends.
ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
USER_DATA = "#cloud-config\npassword: metrics-user-data-secret\n"


def scrape(imds: Imds) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept": ACCEPT}
    request = urllib.request.Request(f"{imds.admin_url}/metrics", headers=headers)
    with DIRECT.open(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == OPENMETRICS
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(families: dict[str, Any], family: str, name: str, **labels: str) -> float:
    matches = [s.value for s in families[family].samples if s.name == name and s.labels == labels]
    assert len(matches) == 1, f"{name}{labels}: {families[family].samples}"
    return matches[0]


def guest(imds: Imds, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"{imds.guest_url}{path}", method=method, headers=headers or {})
    try:
        with DIRECT.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_metrics_parse_and_count_exactly_and_the_audit_log_records_sensitive_reads(tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    with running_imds(tmp_path, extra_config=f"[audit]\noutput = {json.dumps(str(audit))}\n") as imds:
        put_instance(imds, "i-metrics1", {"ipv4": ["127.0.0.1"], "user_data": USER_DATA})
        before = scrape(imds)

        expected_types = {
            "imds_guest_requests": "counter",
            "imds_guest_request_duration_seconds": "histogram",
            "imds_guest_no_token_requests": "counter",
            "imds_guest_token_rejected": "counter",
            "imds_guest_tokens_minted": "counter",
            "imds_guest_unknown_callers": "counter",
            "imds_guest_throttled": "counter",
            "imds_guest_sensitive_reads": "counter",
            "imds_guest_long_polls": "gauge",
            "imds_connections_open": "gauge",
            "imds_connections_accepted": "counter",
            "imds_connections_refused": "counter",
            "imds_view_revision": "gauge",
            "imds_view_staleness_seconds": "gauge",
            "imds_store_write_duration_seconds": "histogram",
            "imds_render_cache_bytes": "gauge",
            "imds_audit_lines_dropped": "counter",
            "imds_credential_refreshes": "counter",
            "imds_credential_expiry_seconds": "gauge",
        }
        for name, kind in expected_types.items():
            assert before[name].type == kind, f"{name} is a {before[name].type}"
        assert before["imds_view_staleness_seconds"].unit == "seconds"

        status, token = guest(imds, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        assert status == 200
        status, body = guest(imds, "GET", "/latest/user-data", {"X-aws-ec2-metadata-token": token.decode()})
        assert (status, body.decode()) == (200, USER_DATA)
        assert guest(imds, "GET", "/latest/meta-data/instance-id")[0] == 200  # IMDSv1
        assert guest(imds, "GET", "/latest/meta-data/", {"X-aws-ec2-metadata-token": "forged"})[0] == 401

        after = scrape(imds)

        def moved(family: str, name: str, **labels: str) -> float:
            return sample(after, family, name, **labels) - sample(before, family, name, **labels)

        assert moved("imds_guest_requests", "imds_guest_requests_total", dialect="ec2", **{"class": "2xx"}) == 3
        assert moved("imds_guest_requests", "imds_guest_requests_total", dialect="ec2", **{"class": "4xx"}) == 1
        assert moved("imds_guest_tokens_minted", "imds_guest_tokens_minted_total", dialect="ec2") == 1
        assert moved("imds_guest_no_token_requests", "imds_guest_no_token_requests_total", dialect="ec2") == 1
        rejected = "imds_guest_token_rejected_total"
        assert moved("imds_guest_token_rejected", rejected, dialect="ec2", reason="invalid") == 1
        assert moved("imds_guest_token_rejected", rejected, dialect="ec2", reason="missing") == 0
        reads = "imds_guest_sensitive_reads_total"
        assert moved("imds_guest_sensitive_reads", reads, kind="user-data") == 1
        assert moved("imds_guest_sensitive_reads", reads, kind="token") == 1
        latency = "imds_guest_request_duration_seconds"
        assert moved(latency, f"{latency}_count", dialect="ec2") == 4
        assert moved(latency, f"{latency}_bucket", dialect="ec2", le="+Inf") == 4

        anonymous = urllib.request.Request(f"{imds.admin_url}/metrics")
        try:
            DIRECT.open(anonymous, timeout=10)
            raise AssertionError("/metrics answered without the bearer token")
        except urllib.error.HTTPError as error:
            assert error.code == 401

        deadline = time.monotonic() + 10
        while True:
            lines = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
            guest_lines = [line for line in lines if line["plane"] == "guest"]
            if len(guest_lines) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        # Only the two sensitive reads: instance-id and the listing are ordinary metadata.
        assert [(line["kind"], line["path"], line["status"]) for line in guest_lines] == [
            ("token", "/latest/api/token", 200),
            ("user-data", "/latest/user-data", 200),
        ]
        for line in guest_lines:
            assert (line["instance"], line["source"], line["dialect"]) == ("i-metrics1", "127.0.0.1", "ec2")
        assert [line["path"] for line in lines if line["plane"] == "admin"] == ["/v1/instances/i-metrics1"]
        text = audit.read_text()
        assert token.decode() not in text and "metrics-user-data-secret" not in text


def test_metrics_listen_serves_the_same_exposition_without_a_token(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with running_imds(tmp_path, extra_config=f'[metrics]\nlisten = "127.0.0.1:{port}"\n') as imds:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": ACCEPT})
        with DIRECT.open(request, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == OPENMETRICS
            families = {family.name: family for family in text_string_to_metric_families(response.read().decode())}
        own = sample(
            families,
            "imds_connections_accepted",
            "imds_connections_accepted_total",
            listener="metrics",
            address=f"127.0.0.1:{port}",
        )
        assert own == 1, "this scrape's own connection"
        assert set(families) == set(scrape(imds)), "the same families as the admin API's /metrics"

        # Without an Accept header (curl), the classic text format, read by the classic parser.
        with DIRECT.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            classic = {family.name: family for family in classic_families(response.read().decode())}
        assert set(classic) == set(families)
        for name, family in families.items():
            assert classic[name].type == family.type, f"{name}: {classic[name].type} vs {family.type}"
