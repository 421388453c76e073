"""Remove what killed local drills left behind: clusters, dumps, processes whose owner is gone.

Only directories carrying this tool's marker (`drills.local.owner`) and processes carrying its tag
are considered, and only when their owner process no longer runs. A directory or process this
tool did not create is never touched, whatever its name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drills.local import owner
from drills.local.cluster import TEMP_PREFIX, WORKDIR_PREFIX

_STOP_WAIT_SECONDS = 10.0


@dataclass
class Found:
    """One directory the reaper looked at, and what it did or would do."""

    path: Path
    kind: str
    owner_pid: int | None
    created_at: str
    action: str  # "removed", "would remove", "kept (--keep)", "in use"
    processes: list[int] = field(default_factory=list)  # stopped (or that would be)

    def as_dict(self) -> dict:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "owner_pid": self.owner_pid,
            "created_at": self.created_at,
            "action": self.action,
            "processes": self.processes,
        }


def reap_local(*, yes: bool, kept_older_than: timedelta | None = None) -> list[Found]:
    """Find (and with `yes` remove) drill directories and processes whose owner is dead.

    A cluster left running on purpose (--keep) is only removed once older than
    `kept_older_than`; without it, kept clusters are left alone.
    """
    found: list[Found] = []
    orphan_tags: set[str] = set()
    spared_tags: set[str] = set()  # drills still running, and clusters kept on purpose
    for path in _candidate_dirs():
        marker = owner.read_marker(path)
        if marker is None:
            continue  # not ours: no marker of this tool
        dead = not marker.owner.alive()
        item = Found(path, marker.kind, marker.owner.pid, marker.created_at, "in use")
        if not dead:
            spared_tags.add(marker.owner_tag)
        elif marker.kept and not _older_than(marker.created_at, kept_older_than):
            spared_tags.add(marker.owner_tag)
            item.action = "kept (--keep)"
        else:
            orphan_tags.add(marker.owner_tag)
            item.processes = _tagged_processes({marker.owner_tag})
            item.action = "would remove"
            if yes:
                _remove(path, marker)
                item.action = "removed"
        found.append(item)
    # Processes whose drill died and whose directory is already gone (an API, a pg_restore).
    strays = [
        pid
        for pid, tag in _tagged_process_table().items()
        if tag not in orphan_tags | spared_tags and _tag_dead(tag) and not _in_kept_dir(pid)
    ]
    if strays:
        item = Found(Path("-"), "processes", None, "", "would remove", strays)
        if yes:
            _kill(strays)
            item.action = "removed"
        found.append(item)
    return found


def _candidate_dirs() -> list[Path]:
    """Registered drill directories, and marked ones in TMPDIR (a registry may be missing)."""
    paths = set(owner.registered_paths())
    temp = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for path in temp.iterdir():
            if path.name.startswith((TEMP_PREFIX, WORKDIR_PREFIX)) and path.is_dir():
                paths.add(path)
    for path in list(paths):
        if not path.is_dir():
            owner.unregister(path)  # removed by its own drill or by hand: forget it
            paths.discard(path)
    return sorted(paths)


def _remove(path: Path, marker: owner.Marker) -> None:
    tag = marker.owner_tag
    if marker.kind == "cluster":
        _stop_postmaster(path / "data", tag)
    _kill(_tagged_processes({tag}))
    shutil.rmtree(path, ignore_errors=True)
    owner.unregister(path)


def _stop_postmaster(data: Path, tag: str) -> None:
    """Immediate shutdown of the cluster's server, if it runs and carries the drill's tag."""
    try:
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    if owner.process_tag(pid) != tag:
        return  # a reused pid, or a server not started by that drill
    _signal_and_wait([pid], signal.SIGQUIT)  # PostgreSQL's immediate shutdown


def _kill(pids: list[int]) -> None:
    _signal_and_wait(pids, signal.SIGTERM)
    _signal_and_wait([pid for pid in pids if _running(pid)], signal.SIGKILL)


def _signal_and_wait(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
    deadline = time.monotonic() + _STOP_WAIT_SECONDS
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    if signum != signal.SIGKILL:
        return
    for pid in pids:  # reap our own zombies, if any were our children
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _tagged_process_table() -> dict[int, str]:
    table = {}
    me = os.getpid()
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != me:
                tag = owner.process_tag(int(entry.name))
                if tag:
                    table[int(entry.name)] = tag
    return table


def _tagged_processes(tags: set[str]) -> list[int]:
    return sorted(pid for pid, tag in _tagged_process_table().items() if tag in tags)


def _in_kept_dir(pid: int) -> bool:
    """Whether the process works in a cluster kept on purpose (a kept server, found even when
    its directory is neither registered nor in this TMPDIR)."""
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    for directory in (cwd, *list(cwd.parents)[:2]):
        marker = owner.read_marker(directory)
        if marker is not None:
            return marker.kept
    return False


def _tag_dead(tag: str) -> bool:
    parsed = owner.Owner.from_tag(tag)
    return parsed is not None and not parsed.alive()


def _older_than(created_at: str, age: timedelta | None) -> bool:
    if age is None:
        return False
    try:
        created = datetime.fromisoformat(created_at)
    except ValueError:
        return True  # a marker without a readable time: as old as it gets
    return datetime.now(UTC) - created > age
