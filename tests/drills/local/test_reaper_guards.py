"""The local reaper's guards, one test each: what it must spare, and what it must still stop.

tests/drills/local/test_reaper.py runs whole stand-in drills; here the markers are written
directly (as `drills.local.owner.mark` writes them) with an owner that is gone, and the
processes are plain `sleep`s carrying a drill's tag in their environment, which is all the
reaper reads of them (/proc/<pid>/environ, /proc/<pid>/cwd). Such a process is fair game for
any reaper: another session's `drill reap --yes` running at the same moment on this machine
could stop one mid-test (test_reaper.py's killed drills share that exposure).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drills.local import owner, reaper
from drills.local.reaper import reap_local


@pytest.fixture
def processes():
    """Starts tagged `sleep`s; every one is killed when the test ends, whatever happened."""
    started: list[subprocess.Popen] = []

    def start(tag: str | None, cwd: Path | None = None, argv: list[str] | None = None):
        env = {k: v for k, v in os.environ.items() if k != owner.OWNER_ENV}
        if tag is not None:
            env[owner.OWNER_ENV] = tag
        proc = subprocess.Popen(argv or ["sleep", "300"], env=env, cwd=cwd,
                                stdout=subprocess.PIPE if argv else None, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


def gone_owner(n: int = 1) -> owner.Owner:
    """An owner that no longer runs: this process's pid with another start time."""
    me = owner.current_owner()
    return owner.Owner(me.pid, str(int(me.started) + n), me.boot_id)


def plant(path: Path, *, of: owner.Owner, kind: str = "workdir", kept: bool = False,
          created_at: str | None = None, register: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    marker = {
        "tool": owner.TOOL, "kind": kind, "owner_tag": of.tag, "path": str(path),
        "created_at": created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        "kept": kept,
    }
    (path / owner.MARKER_NAME).write_text(json.dumps(marker))
    if register:
        owner.registry_dir().mkdir(parents=True, exist_ok=True)
        (owner.registry_dir() / f"{path.name}.json").write_text(json.dumps(marker))
    return path


def running(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def directories(found) -> list[Path]:
    # The machine is shared: strays of other sessions' killed drills may be listed too.
    return [i.path for i in found if i.kind != "processes"]


def action_of(found, path: Path) -> str:
    [item] = [i for i in found if i.path == path]
    return item.action


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat(timespec="seconds")


# -- kept on purpose (--keep) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "action"),
    [(timedelta(hours=1, minutes=59), "kept (--keep)"),
     (timedelta(hours=2, minutes=1), "removed")],
)
def test_a_kept_cluster_goes_only_once_older_than_asked(isolated, age, action):
    path = plant(isolated / "prism-drill-pg-kept", of=gone_owner(), kind="cluster", kept=True,
                 created_at=ago(seconds=age.total_seconds()))
    found = reap_local(yes=True, kept_older_than=timedelta(hours=2))
    assert action_of(found, path) == action
    assert path.is_dir() is (action != "removed")


def test_a_kept_cluster_stays_however_old_without_an_age(isolated):
    path = plant(isolated / "prism-drill-pg-kept", of=gone_owner(), kind="cluster", kept=True,
                 created_at=ago(days=400))
    assert action_of(reap_local(yes=True), path) == "kept (--keep)"
    assert path.is_dir()


def test_a_kept_cluster_with_an_unreadable_time_counts_as_old(isolated):
    path = plant(isolated / "prism-drill-pg-kept", of=gone_owner(), kind="cluster", kept=True,
                 created_at="yesterday")
    assert action_of(reap_local(yes=True), path) == "kept (--keep)"
    assert action_of(reap_local(yes=True, kept_older_than=timedelta(days=30)), path) == "removed"


def test_a_kept_clusters_processes_are_spared_wherever_they_work(isolated, tmp_path, processes):
    # Its API runs from elsewhere; only the tag ties it to the kept cluster.
    drill = gone_owner()
    path = plant(isolated / "prism-drill-pg-kept", of=drill, kind="cluster", kept=True)
    api = processes(drill.tag, cwd=tmp_path)
    found = reap_local(yes=True)
    assert action_of(found, path) == "kept (--keep)"
    assert running(api)
    assert not [i for i in found if api.pid in i.processes]


def test_a_server_working_inside_a_kept_cluster_is_spared_without_its_registry(
    isolated, tmp_path, processes
):
    # The kept cluster lives outside this TMPDIR and its registry entry is gone; the server
    # (started by another, equally dead drill) works two levels down in it.
    kept = plant(tmp_path / "elsewhere" / "prism-drill-pg-kept", of=gone_owner(1),
                 kind="cluster", kept=True, register=False)
    (kept / "data" / "pg_wal").mkdir(parents=True)
    server = processes(gone_owner(2).tag, cwd=kept / "data" / "pg_wal")
    found = reap_local(yes=True)
    assert running(server)
    assert not [i for i in found if server.pid in i.processes]


# -- what belongs to someone else --------------------------------------------------------------


def test_a_live_drills_directory_and_processes_are_in_use(isolated, processes):
    me = owner.current_owner()  # this test process runs: the drill is alive
    path = plant(isolated / "prism-drill-live", of=me)
    server = processes(me.tag, cwd=path)
    found = reap_local(yes=True)
    assert action_of(found, path) == "in use"
    assert path.is_dir() and running(server)
    assert not [i for i in found if server.pid in i.processes]


def test_a_server_named_in_postmaster_pid_but_not_the_drills_is_not_signalled(
    isolated, processes
):
    # The pid in postmaster.pid was reused by a process the drill never started.
    path = plant(isolated / "prism-drill-pg-dead", of=gone_owner(), kind="cluster")
    stranger = processes(None)
    (path / "data").mkdir()
    (path / "data" / "postmaster.pid").write_text(f"{stranger.pid}\n/some/data\n")
    assert action_of(reap_local(yes=True), path) == "removed"
    assert not path.exists()
    assert running(stranger)


@pytest.mark.parametrize("content", ["", "not-a-pid\n"])
def test_an_unreadable_postmaster_pid_does_not_stop_the_removal(isolated, content):
    path = plant(isolated / "prism-drill-pg-dead", of=gone_owner(), kind="cluster")
    (path / "data").mkdir()
    (path / "data" / "postmaster.pid").write_text(content)
    assert action_of(reap_local(yes=True), path) == "removed"
    assert not path.exists()


def test_only_drill_names_are_scanned_in_tmpdir(isolated):
    # A marked directory neither registered nor named like a drill's is not looked at; a file
    # named like one is skipped.
    other = plant(isolated / "someone-else", of=gone_owner(), register=False)
    (isolated / "prism-drill-pg-file").write_text("not a directory")
    found = reap_local(yes=True)
    assert other.is_dir() and (isolated / "prism-drill-pg-file").is_file()
    assert directories(found) == []


def test_a_registered_directory_that_is_gone_is_forgotten(isolated, tmp_path):
    gone = plant(tmp_path / "elsewhere" / "prism-drill-x", of=gone_owner())
    for entry in gone.iterdir():
        entry.unlink()
    gone.rmdir()
    assert owner.registered_paths() == [gone]
    assert directories(reap_local(yes=False)) == []
    assert owner.registered_paths() == []


# -- what must still go ------------------------------------------------------------------------


def test_without_yes_nothing_is_removed_or_stopped(isolated, processes):
    drill = gone_owner()
    path = plant(isolated / "prism-drill-pg-dead", of=drill, kind="cluster")
    server = processes(drill.tag, cwd=path)
    stray = processes(gone_owner(2).tag)
    found = reap_local(yes=False)
    [item] = [i for i in found if i.path == path]
    assert (item.action, item.processes) == ("would remove", [server.pid])
    [strays] = [i for i in found if i.kind == "processes"]
    assert strays.action == "would remove" and stray.pid in strays.processes
    assert server.pid not in strays.processes  # listed once, with its directory
    assert path.is_dir() and running(server) and running(stray)
    listed = strays.as_dict()
    assert (listed["path"], listed["owner_pid"], listed["created_at"]) == ("-", None, "")


def test_with_yes_a_dead_drills_directory_processes_and_registry_entry_go(isolated, processes):
    drill = gone_owner()
    path = plant(isolated / "prism-drill-pg-dead", of=drill, kind="cluster",
                 created_at="2026-12-01T10:00:00+00:00")
    server = processes(drill.tag, cwd=path)
    stray = processes(gone_owner(2).tag)
    found = reap_local(yes=True)
    [item] = [i for i in found if i.path == path]
    assert item.as_dict() == {
        "path": str(path), "kind": "cluster", "owner_pid": drill.pid,
        "created_at": "2026-12-01T10:00:00+00:00", "action": "removed",
        "processes": [server.pid],
    }
    [strays] = [i for i in found if i.kind == "processes"]
    assert strays.action == "removed" and stray.pid in strays.processes
    assert not path.exists() and owner.registered_paths() == []
    assert server.wait(timeout=5) is not None and stray.wait(timeout=5) is not None


def test_a_process_that_ignores_sigterm_is_killed(isolated, processes, monkeypatch):
    monkeypatch.setattr(reaper, "_STOP_WAIT_SECONDS", 0.3)  # the wait before SIGKILL
    stubborn = processes(gone_owner().tag, argv=[
        sys.executable, "-c",
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(flush=True); time.sleep(300)",
    ])
    stubborn.stdout.readline()  # its handler is in place
    reap_local(yes=True)
    # Gone within the timeout, not after its 300 s: only SIGKILL could do that. (Its exit
    # status went to the reaper, which reaps the zombies of its own children.)
    stubborn.wait(timeout=5)
    assert not Path(f"/proc/{stubborn.pid}").exists()


def test_the_reaper_never_lists_itself_when_it_carries_a_dead_drills_tag(
    isolated, processes, monkeypatch
):
    # `prism-dr drill reap` run from a shell a killed drill left behind inherits its tag. The
    # reaper's own process is played by a tagged sleep: os.getpid() names it.
    me = processes(gone_owner(1).tag)
    other = processes(gone_owner(2).tag)
    with monkeypatch.context() as patched:
        patched.setattr(os, "getpid", lambda: me.pid)
        found = reap_local(yes=False)
    [strays] = [i for i in found if i.kind == "processes"]
    assert other.pid in strays.processes
    assert me.pid not in strays.processes


# -- how it stops what must go -----------------------------------------------------------------

# A stand-in postmaster: like PostgreSQL's, SIGTERM asks for a smart shutdown that waits for
# every client to leave (here: forever), and SIGQUIT is the immediate shutdown
# (https://www.postgresql.org/docs/current/server-shutdown.html). It notes which it got.
POSTMASTER = """
import pathlib, signal, sys, time
note = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGTERM, signal.SIG_IGN)
def immediate(signum, frame):
    note.write_text("SIGQUIT")
    sys.exit(0)
signal.signal(signal.SIGQUIT, immediate)
print(flush=True)
time.sleep(300)
"""


def test_a_dead_drills_server_gets_postgresqls_immediate_shutdown(isolated, processes,
                                                                   monkeypatch, tmp_path):
    monkeypatch.setattr(reaper, "_STOP_WAIT_SECONDS", 0.3)
    drill = gone_owner()
    path = plant(isolated / "prism-drill-pg-dead", of=drill, kind="cluster")
    (path / "data").mkdir()
    note = tmp_path / "signal"
    server = processes(drill.tag, cwd=path / "data",
                       argv=[sys.executable, "-c", POSTMASTER, str(note)])
    server.stdout.readline()
    (path / "data" / "postmaster.pid").write_text(f"{server.pid}\n{path / 'data'}\n")
    assert action_of(reap_local(yes=True), path) == "removed"
    assert note.read_text() == "SIGQUIT"


def test_a_workdir_has_no_server_to_shut_down(isolated, processes, monkeypatch, tmp_path):
    # Only a cluster's data directory holds a postmaster.pid worth reading.
    monkeypatch.setattr(reaper, "_STOP_WAIT_SECONDS", 0.3)
    drill = gone_owner()
    path = plant(isolated / "prism-drill-work", of=drill, kind="workdir")
    (path / "data").mkdir()
    note = tmp_path / "signal"
    server = processes(drill.tag, argv=[sys.executable, "-c", POSTMASTER, str(note)])
    server.stdout.readline()
    (path / "data" / "postmaster.pid").write_text(f"{server.pid}\n")
    assert action_of(reap_local(yes=True), path) == "removed"
    assert not note.exists()  # stopped by SIGKILL after SIGTERM, as any tagged process


ORPHAN = """
import os, signal, sys, time
if os.fork():
    sys.exit(0)  # the parent leaves: the child is nobody's child of ours
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[1] == "stubborn" else signal.SIG_DFL)
with open("/proc/self/comm", "w") as comm:
    comm.write(sys.argv[2])  # a command name may hold parentheses and spaces
print(os.getpid(), flush=True)
time.sleep(300)
"""


def orphan(tag: str, mode: str, name: str = "sleeper") -> int:
    env = {**os.environ, owner.OWNER_ENV: tag}
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN, mode, name], env=env,
                              stdout=subprocess.PIPE, text=True)
    with parent.stdout:
        pid = int(parent.stdout.readline())  # the orphan's, once its handler is in place
    parent.wait()
    return pid


@pytest.fixture
def orphans():
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def test_a_stubborn_stray_we_did_not_start_is_killed(isolated, orphans, monkeypatch):
    monkeypatch.setattr(reaper, "_STOP_WAIT_SECONDS", 0.3)
    pid = orphan(gone_owner().tag, "stubborn", "x) Z (y")
    orphans.append(pid)
    reap_local(yes=True)
    assert not Path(f"/proc/{pid}").exists() or _state(pid) == "Z"


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]


def test_a_stray_that_exits_on_sigterm_does_not_wait_out_the_grace_period(isolated, orphans):
    pid = orphan(gone_owner().tag, "plain")
    orphans.append(pid)
    started = time.monotonic()
    reap_local(yes=True)
    assert time.monotonic() - started < reaper._STOP_WAIT_SECONDS / 2
    assert not Path(f"/proc/{pid}").exists() or _state(pid) == "Z"


def test_our_own_killed_children_are_not_left_as_zombies(isolated, processes, monkeypatch):
    monkeypatch.setattr(reaper, "_STOP_WAIT_SECONDS", 0.3)
    stubborn = processes(gone_owner().tag, argv=[
        sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(flush=True); time.sleep(300)",
    ])
    stubborn.stdout.readline()
    reap_local(yes=True)
    assert not Path(f"/proc/{stubborn.pid}").exists()  # reaped by the reaper, not by us


def test_stopping_a_process_that_already_exited_is_not_an_error():
    done = subprocess.Popen(["true"])
    assert done.wait() == 0
    reaper._kill([done.pid])  # gone between the listing and the signal


def test_a_process_with_a_tag_that_names_no_owner_is_never_a_stray(isolated, processes):
    odd = processes("not-an-owner-tag")
    found = reap_local(yes=False)
    assert not [i for i in found if odd.pid in i.processes]
    assert running(odd)


def test_a_missing_tmpdir_still_leaves_the_registry_to_scan(isolated, tmp_path, monkeypatch):
    path = plant(tmp_path / "elsewhere" / "prism-drill-x", of=gone_owner())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))
    assert action_of(reap_local(yes=True), path) == "removed"
