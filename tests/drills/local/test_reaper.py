"""The local reaper removes what a killed drill left, and nothing it did not create."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drills.local import owner
from drills.local.reaper import reap_local

# A stand-in drill: marks a directory as `kind`, starts a long-lived child working in it in a
# session of its own (as the drill starts its server), prints both and waits to be killed.
DRILL = """
import pathlib, subprocess, sys, tempfile, time
from drills.local import owner
path = pathlib.Path(tempfile.mkdtemp(prefix=sys.argv[1]))
owner.mark(path, sys.argv[2])
child = subprocess.Popen(["sleep", "300"], start_new_session=True, cwd=path)
print(path, child.pid, flush=True)
time.sleep(300)
"""


def start_drill(prefix: str = "prism-drill-pg-", kind: str = "cluster", env=None):
    proc = subprocess.Popen(
        [sys.executable, "-c", DRILL, prefix, kind],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    path, child = proc.stdout.readline().split()
    return proc, Path(path), int(child)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def cleanup():
    """Children a failed test would leave: stopped whatever happens."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_drills_directory_and_processes_are_removed_only_with_yes(isolated, cleanup):
    proc, path, child = start_drill()
    cleanup.append(child)
    kill(proc)
    assert path.is_dir() and running(child)  # what SIGKILL leaves behind

    listed = reap_local(yes=False)
    (item,) = [i for i in listed if i.path == path]
    assert (item.action, item.kind, item.owner_pid) == ("would remove", "cluster", proc.pid)
    assert child in item.processes
    assert path.is_dir() and running(child)  # only listed

    removed = reap_local(yes=True)
    assert [i.action for i in removed if i.path == path] == ["removed"]
    assert not path.exists()
    assert not running(child)
    assert list(owner.registry_dir().iterdir()) == []


def test_a_running_drill_is_left_alone(isolated, cleanup):
    proc, path, child = start_drill()
    cleanup += [child, proc.pid]
    try:
        found = reap_local(yes=True)
        assert [i.action for i in found if i.path == path] == ["in use"]
        assert path.is_dir() and running(child)
    finally:
        kill(proc)
    reap_local(yes=True)
    assert not path.exists()


def test_what_this_tool_did_not_create_is_never_touched(isolated, cleanup, tmp_path):
    # Named like a drill cluster, but without a marker.
    unmarked = isolated / "prism-drill-pg-someone-elses"
    (unmarked / "data").mkdir(parents=True)
    # A marker of another tool, and a marker copied from elsewhere (its path is not here).
    other_tool = isolated / "prism-drill-pg-other-tool"
    other_tool.mkdir()
    proc, path, child = start_drill()
    cleanup.append(child)
    kill(proc)
    marker = json.loads((path / owner.MARKER_NAME).read_text())
    (other_tool / owner.MARKER_NAME).write_text(json.dumps({**marker, "tool": "other",
                                                            "path": str(other_tool)}))
    copied = isolated / "prism-drill-pg-copied"
    copied.mkdir()
    (copied / owner.MARKER_NAME).write_text(json.dumps(marker))
    # A process without the tag, even one started next to a drill.
    untagged = subprocess.Popen(
        ["sleep", "300"], env={k: v for k, v in os.environ.items() if k != owner.OWNER_ENV}
    )
    cleanup.append(untagged.pid)

    found = reap_local(yes=True)

    assert {i.path for i in found if i.action == "removed"} == {path}
    assert unmarked.is_dir() and other_tool.is_dir() and copied.is_dir()
    assert running(untagged.pid)
    untagged.kill()
    untagged.wait()


def test_a_reused_pid_is_not_mistaken_for_the_owner(isolated):
    # The owner's pid now belongs to another process (this one): its start time differs.
    directory = Path(tempfile.mkdtemp(prefix="prism-drill-"))
    me = owner.current_owner()
    impostor = owner.Owner(me.pid, str(int(me.started) + 1), me.boot_id)
    assert me.alive() and not impostor.alive()
    marker = {
        "tool": owner.TOOL, "kind": "workdir", "owner_tag": impostor.tag,
        "created_at": datetime.now(UTC).isoformat(), "path": str(directory),
    }
    (directory / owner.MARKER_NAME).write_text(json.dumps(marker))
    assert [i.action for i in reap_local(yes=True) if i.path == directory] == ["removed"]
    assert not directory.exists()


def test_a_kept_cluster_stays_until_older_than_asked(isolated, cleanup):
    proc, path, child = start_drill()
    cleanup.append(child)
    owner.mark_kept(path)
    kill(proc)

    assert [i.action for i in reap_local(yes=True) if i.path == path] == ["kept (--keep)"]
    assert path.is_dir() and running(child)  # the kept server's processes too
    found = reap_local(yes=True, kept_older_than=timedelta(hours=6))
    assert [i.action for i in found if i.path == path] == ["kept (--keep)"]

    time.sleep(1.1)
    found = reap_local(yes=True, kept_older_than=timedelta(seconds=1))
    assert [i.action for i in found if i.path == path] == ["removed"]
    assert not path.exists() and not running(child)


def test_the_registry_finds_a_drill_that_ran_under_another_tmpdir(isolated, tmp_path, cleanup):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc, path, child = start_drill(env={**os.environ, "TMPDIR": str(elsewhere)})
    cleanup.append(child)
    kill(proc)
    assert path.parent == elsewhere

    assert [i.action for i in reap_local(yes=True) if i.path == path] == ["removed"]
    assert not path.exists() and not running(child)


def test_processes_of_a_killed_drill_whose_directory_is_gone_are_stopped(isolated, cleanup):
    proc, path, child = start_drill(prefix="prism-drill-", kind="workdir")
    cleanup.append(child)
    kill(proc)
    for entry in path.iterdir():
        entry.unlink()
    path.rmdir()

    found = reap_local(yes=True)

    strays = [i for i in found if i.kind == "processes"]
    assert strays and child in strays[0].processes
    assert not running(child)


def test_a_kept_server_is_spared_even_where_no_registry_points(isolated, tmp_path, cleanup):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc, path, child = start_drill(env={**os.environ, "TMPDIR": str(elsewhere)})
    cleanup.append(child)
    owner.mark_kept(path)
    kill(proc)
    owner.unregister(path)  # e.g. reaped under another HOME: only the server itself is seen

    found = reap_local(yes=True)

    assert not [i for i in found if child in i.processes]
    assert running(child) and path.is_dir()
