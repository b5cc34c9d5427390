"""Fixtures of the VM boot tests: the image, the accelerator, and every selected dialect's boot,
run in parallel (`IMDS_VM_PARALLEL`, default 3) as soon as the session starts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

import harness
from scenarios import SCENARIOS

PARALLEL = int(os.environ.get("IMDS_VM_PARALLEL", "3"))
BOOTS: dict[str, harness.Boot] = {}
ACCEL: list[str] = []


@pytest.fixture(scope="session")
def boots(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[harness.Boot]]]:
    """One future per selected scenario; the tests wait on their own."""
    harness.ensure_tools()
    image = harness.build_image()
    accel, why = harness.detect_accel(image, harness.RUNS)
    ACCEL.append(f"{accel} ({why})")
    print(f"accelerator: {accel}: {why}")
    wanted = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("name") if callspec else None
        if name and name not in wanted:
            wanted.append(name)
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures: dict[str, Future[harness.Boot]] = {}
        for name in wanted:
            futures[name] = pool.submit(harness.boot, SCENARIOS[name], image, accel)
            futures[name].add_done_callback(lambda f, n=name: BOOTS.__setitem__(n, f.result()))
        yield futures


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Boot time and outcome per dialect, whatever the verbosity."""
    if not BOOTS:
        return
    summary = {
        name: {
            "accelerator": boot.accel,
            "boot_seconds": round(boot.boot_seconds, 1) if boot.boot_seconds is not None else None,
            "guest_uptime_seconds": float(boot.guest_uptime) if boot.guest_uptime else None,
            "finished": boot.finished_line,
            "failures": boot.failures(),
        }
        for name, boot in BOOTS.items()
    }
    (harness.RUNS / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    write = terminalreporter.write_line
    write("")
    write(f"VM boots (QEMU accelerator: {ACCEL[0] if ACCEL else '?'}; logs and summary.json under {harness.RUNS}):")
    for name in SCENARIOS:
        boot = BOOTS.get(name)
        if boot is None:
            continue
        took = f"{boot.boot_seconds:6.1f} s" if boot.boot_seconds is not None else "   -    "
        failures = boot.failures()
        state = "ok" if not failures else f"FAILED ({len(failures)})"
        write(f"  {name:<13} {took}  guest up {boot.guest_uptime or '-':>7} s  {state}  {boot.finished_line[-90:]}")
