"""A drill interrupted by SIGINT, SIGTERM or SIGHUP leaves no cluster process, port or temp dir;
one killed by SIGKILL leaves nothing once `prism-dr drill reap --local --yes` has run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from drills.local.cluster import TEMP_PREFIX
from drills.local.owner import OWNER_ENV

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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_mid_drill_tears_everything_down(sample_dump, tmp_path, signum):
    # The cluster's temp dir must be reachable by the postgres OS user: not under pytest's
    # 0700 tmp root, so a dedicated world-traversable dir of our own.
    tmpdir = Path(tempfile.mkdtemp(prefix="prism-signal-test-"))
    tmpdir.chmod(0o755)
    # A `sleep` argument no other test run on this machine uses, to find the API stand-in by.
    marker = f"{30 + signum}.{os.getpid()}"
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
        # Progress lines are printed only once a drill has an outcome: watch the processes.
        # The API stand-in starts in the verify phase, after the restore.
        deadline = time.monotonic() + 120
        while not _processes_mentioning(f"^sleep {marker}"):  # not the drill, whose argv has it
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the drill never reached verify"
            time.sleep(0.1)
        assert any(TEMP_PREFIX in p.name for p in tmpdir.iterdir()), "cluster not running yet"

        proc.send_signal(signum)
        proc.wait(timeout=60)
        said = proc.stderr.read()  # what the drill printed: the diagnosis if this fails
    finally:
        _stop(proc)

    assert proc.returncode not in (0, 1), said[-3000:]  # interrupted: neither passed nor failed
    assert list(tmpdir.iterdir()) == []
    assert _processes_mentioning(str(tmpdir)) == []
    assert _processes_mentioning(f"sleep {marker}") == []
    # Torn down and not judged, yet recorded: a drill that ran always leaves its record.
    (record,) = records.glob("*.json")
    written = json.loads(record.read_text())
    assert written["result"] == "error"
    assert f"interrupted by {signal.Signals(signum).name}" in written["error"]
    assert record.with_suffix(".md").exists()
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
        psql = "ON_ERROR_STOP=0"  # on the restoring psql's command line
        while not _processes_mentioning(psql) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
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


def _slow_script(tmp_path: Path) -> Path:
    """A plain dump whose restore sits in a 60 s statement: a drill caught mid-restore."""
    script = tmp_path / "slow.sql"
    script.write_text(
        "-- PostgreSQL database dump\nCREATE TABLE t (id int);\nSELECT pg_sleep(60);\n"
        "-- PostgreSQL database dump complete\n"
    )
    return script


def _started_by(drill_pid: int, command: str) -> list[int]:
    """Processes named `command` carrying the drill's owner tag: this drill's, no one else's."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != command:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(item.startswith(f"{OWNER_ENV}={drill_pid}:".encode()) for item in environ):
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Alive, not a zombie: a killed drill's children are reparented to whatever PID 1 is here,
    which may never reap them; a zombie holds no port, file or memory."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("moment", ["mid-restore", "mid-verify"])
def test_sigkill_leftovers_are_removed_by_drill_reap_local(sample_dump, tmp_path, moment):
    """SIGKILL runs no teardown: the cluster, psql and the API live on until the reaper."""
    tmpdir = Path(tempfile.mkdtemp(prefix="prism-sigkill-test-"))
    tmpdir.chmod(0o755)
    state = tmp_path / "state"
    marker = f"41.{os.getpid()}"
    if moment == "mid-restore":
        args = ["--backup", str(_slow_script(tmp_path)), "--point", "2026-01-01T00:00:00Z"]
        leftover = "psql"  # the restoring psql
    else:
        args = ["--backup", str(sample_dump), "--api-cmd", f"sleep {marker}"]
        leftover = "sleep"  # the API process
    env = {**os.environ, "TMPDIR": str(tmpdir), "PRISM_DR_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "prism_dr", "drill", *args, "--tier", "quick",
         "--record-dir", str(tmp_path / "records")],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _started_by(proc.pid, leftover):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, f"the drill never got {moment}"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _stop(proc)
    (cluster,) = [p for p in tmpdir.iterdir() if p.name.startswith(TEMP_PREFIX)]
    port = int((cluster / "data" / "postmaster.pid").read_text().splitlines()[3])
    leftovers = _started_by(proc.pid, leftover)
    assert _port_open(port) and leftovers  # what SIGKILL leaves

    # Run from anywhere, with the default TMPDIR: the registry says where the cluster is.
    reap_env = {k: v for k, v in env.items() if k != "TMPDIR"}
    reap = subprocess.run(
        [sys.executable, "-m", "prism_dr", "drill", "reap", "--local", "--yes", "--json"],
        env=reap_env, capture_output=True, text=True, timeout=120,
    )

    assert reap.returncode == 0, reap.stderr
    assert str(cluster) in [i["path"] for i in json.loads(reap.stdout) if i["action"] == "removed"]
    assert list(tmpdir.iterdir()) == []
    assert _processes_mentioning(str(tmpdir)) == []
    assert _started_by(proc.pid, leftover) == []
    assert not any(_running(pid) for pid in leftovers)
    assert not _port_open(port)
    assert not (tmp_path / "records").exists()  # killed: nothing judged, nothing recorded
    tmpdir.rmdir()
