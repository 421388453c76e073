"""The CPU watch tells our processes (descendants, or marked PostgreSQL servers) from others'."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.cpuwatch import CpuWatch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A fixed amount of CPU, however loaded the machine: a loop on the process's own CPU clock,
# then a pause so that the watch samples the process once more before it exits.
# Its command name (prctl PR_SET_NAME) tells it from everything else the machine runs.
BURN = (
    "import ctypes, sys, time\n"
    "ctypes.CDLL(None).prctl(15, b\"prism-burn\", 0, 0, 0)\n"
    "while time.process_time() < 0.6: pass\n"
    "open(sys.argv[1], \"w\").close()\n"
    "time.sleep(0.6)\n"
)


def test_splits_cpu_between_ours_and_others(tmp_path):
    marker = str(tmp_path / "marker")
    done = [tmp_path / "nobodys.done", tmp_path / "ours.done"]
    burn = f"{sys.executable} -c '{BURN}'"
    with CpuWatch(marker) as watch:
        # Both loops are orphaned by the subshell, as a daemonised postmaster is: one is
        # nobody's, the other carries the marker in its command line, as our servers' do.
        subprocess.run(["sh", "-c", f"({burn} {done[0]} &); ({burn} {done[1]} {marker} &)"],
                       check=True)
        deadline = time.monotonic() + 60
        while not all(path.exists() for path in done) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(path.exists() for path in done), "the CPU burners did not finish"
        time.sleep(0.4)  # the watch's next sample, while both still live
    figures = watch.figures()
    assert figures["ours_cpu_seconds"] >= 0.3
    assert figures["others_cpu_seconds"] >= 0.3
    assert watch.others_by_name.get("prism-burn", 0) > 0
    assert figures["capacity_cpu_seconds"] >= figures["machine_busy_cpu_seconds"] - 0.2
