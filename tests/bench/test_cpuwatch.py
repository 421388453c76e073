"""The CPU watch tells our processes (descendants, or marked PostgreSQL servers) from others'."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.cpuwatch import CpuWatch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

BUSY = "timeout 1.2 sh -c 'while :; do :; done'"


def test_splits_cpu_between_ours_and_others(tmp_path):
    marker = str(tmp_path / "marker")
    with CpuWatch(marker) as watch:
        # Both loops are orphaned by the subshell, as a daemonised postmaster is: one is
        # nobody's, the other carries the marker in its command line, as our servers' do.
        subprocess.run(["sh", "-c", f"({BUSY} &); ({BUSY} {marker} &)"], check=True)
        time.sleep(1.4)
    figures = watch.figures()
    assert figures["ours_cpu_seconds"] >= 0.3
    assert figures["others_cpu_seconds"] >= 0.3
    assert watch.others_by_name.get("sh", 0) > 0
    assert figures["capacity_cpu_seconds"] >= figures["machine_busy_cpu_seconds"] - 0.2
