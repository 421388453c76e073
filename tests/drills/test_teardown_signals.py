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


def _stop(proc: subprocess.Popen) -> None:
    """On a failed test: SIGTERM first, so the drill can still tear its cluster down."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stderr.close()


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
        _stop(proc)

    assert proc.returncode not in (0, 1)  # interrupted: neither passed nor failed
    assert list(tmpdir.iterdir()) == []
    assert _processes_mentioning(str(tmpdir)) == []
    assert _processes_mentioning(f"sleep {marker}") == []
    assert not records.exists()
    tmpdir.rmdir()


def test_sigterm_during_a_plain_script_restore_does_not_wait_for_psql(tmp_path):
    # psql sits in a 60 s statement while the feeder blocks on a full pipe behind it: the
    # interrupt lands mid-feed, and teardown must kill psql rather than wait for it.
    script = tmp_path / "slow.sql"
    script.write_text(
        "-- PostgreSQL database dump\nCREATE TABLE t (id int);\nSELECT pg_sleep(60);\n"
        + "-- filler that keeps the pipe to psql full\n" * 50_000
        + "-- PostgreSQL database dump complete\n"
    )
    tmpdir = Path(tempfile.mkdtemp(prefix="prism-signal-test-"))
    tmpdir.chmod(0o755)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "prism_dr", "drill", "--backup", str(script),
            "--point", "2026-01-01T00:00:00Z", "--record-dir", str(tmp_path / "records"),
        ],
        env={**os.environ, "TMPDIR": str(tmpdir)},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "stand up done" not in proc.stderr.readline():
            assert time.monotonic() < deadline, "drill never stood up its cluster"
        psql = "ON_ERROR_STOP=0"  # on the restoring psql's command line
        while not _processes_mentioning(psql) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_mentioning(psql), "the restore never started psql"
        time.sleep(1)  # into the 60 s statement

        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        waited = time.monotonic() - signalled
    finally:
        _stop(proc)

    assert waited < 20  # far less than the 60 s statement psql was running
    assert _processes_mentioning(psql) == []
    assert list(tmpdir.iterdir()) == []
    assert _processes_mentioning(str(tmpdir)) == []
    tmpdir.rmdir()
