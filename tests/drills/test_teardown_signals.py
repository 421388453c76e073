"""A drill interrupted by SIGINT or SIGTERM leaves no cluster process, port or temp dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from drills.cluster import TEMP_PREFIX

pytestmark = pytest.mark.slow


def _processes_mentioning(text: str) -> list[str]:
    result = subprocess.run(["pgrep", "-af", text], capture_output=True, text=True)
    return [line for line in result.stdout.splitlines() if "pgrep" not in line]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_drill_tears_everything_down(sample_dump, tmp_path, signum):
    # The cluster's temp dir must be reachable by the postgres OS user: not under pytest's
    # 0700 tmp root, so a dedicated world-traversable dir of our own.
    tmpdir = Path(tempfile.mkdtemp(prefix="prism-signal-test-"))
    tmpdir.chmod(0o755)
    marker = f"{30 + signum}.25"  # a unique `sleep` argument to find the API stand-in by
    records = tmp_path / "records"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "prism_dr", "drill",
            "--backup", str(sample_dump),
            "--record-dir", str(records),
            "--tier", "quick",
            "--api-cmd", f"sleep {marker}",
        ],
        env={**os.environ, "TMPDIR": str(tmpdir)},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen.append(line)
            if "restore done" in line:
                break
        else:
            pytest.fail(f"drill never reached verify: {''.join(seen)}")
        # Wait until the API stand-in has started, so its teardown is exercised too.
        while not _processes_mentioning(f"sleep {marker}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(TEMP_PREFIX in p.name for p in tmpdir.iterdir()), "cluster not running yet"

        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()

    assert proc.returncode not in (0, 1)  # interrupted: neither passed nor failed
    assert list(tmpdir.iterdir()) == []
    assert _processes_mentioning(str(tmpdir)) == []
    assert _processes_mentioning(f"sleep {marker}") == []
    assert not records.exists()
    tmpdir.rmdir()
