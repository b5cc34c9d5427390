"""A stock Debian 12 image boots under QEMU in every dialect, picks its datasource from the
SMBIOS values imds prints, reaches 169.254.169.254 over its NIC and configures itself: the
datasource, host name, SSH key, user-data and one dialect-specific value, read from the serial
console. See harness.py for the namespace, and docs/vm.md for the same steps by hand."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from harness import Boot, holds
from scenarios import SCENARIOS


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_boot(name: str, boots: dict[str, Future[Boot]]) -> None:
    boot = boots[name].result()
    took = f"{boot.boot_seconds:.0f} s" if boot.boot_seconds is not None else "no finish"
    print(f"{name}: accel {boot.accel}, cloud-init finished after {took} (guest uptime {boot.guest_uptime or '-'} s)")
    for what, want, seen in ([] if boot.error else boot.checks()):
        print(f"  {'ok ' if holds(want, seen) else 'BAD'} {what}: {seen}")
    failures = boot.failures()
    assert not failures, f"{name} (logs: {boot.run_dir}):\n  " + "\n  ".join(failures)
