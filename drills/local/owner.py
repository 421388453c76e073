"""Who owns an ephemeral drill resource, so that one whose owner died can be found and reaped.

A drill killed by SIGKILL, the OOM killer or a power cut runs no `finally`: its cluster, its
pg_restore and its API process live on. Every directory a drill creates therefore carries a
marker naming its owner (pid, the process's start time and the boot, so a reused pid is not
mistaken for the owner), and every process it starts inherits the same tag in its
environment. `drills.local.reaper` removes what belongs to an owner that is gone, and nothing
else: a directory without a marker of this tool, or a process without its tag, is never
touched.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

TOOL = "prism-dr"
OWNER_ENV = "PRISM_DR_DRILL_OWNER"  # inherited by every process a drill starts
MARKER_NAME = ".prism-drill-owner.json"
STATE_DIR_ENV = "PRISM_DR_STATE_DIR"


@dataclass(frozen=True)
class Owner:
    pid: int
    started: str  # the process's start time in clock ticks since boot (/proc/<pid>/stat)
    boot_id: str

    @property
    def tag(self) -> str:
        return f"{self.pid}:{self.started}:{self.boot_id}"

    @classmethod
    def from_tag(cls, tag: str) -> Owner | None:
        parts = tag.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        return cls(int(parts[0]), parts[1], parts[2])

    def alive(self) -> bool:
        """Whether the very process that created the resource still runs."""
        if self.boot_id != _boot_id():
            return False  # the machine rebooted since: every process of then is gone
        started = _process_start(self.pid)
        if started is not None:
            return started == self.started
        try:  # no /proc entry: gone, or a system without /proc where a live pid must do
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass(frozen=True)
class Marker:
    """What a drill directory says about itself."""

    tool: str
    kind: str  # "cluster" (an ephemeral PostgreSQL) or "workdir" (a fresh dump of a source)
    owner_tag: str
    created_at: str
    path: str
    kept: bool = False  # --keep: left running on purpose

    @property
    def owner(self) -> Owner | None:
        return Owner.from_tag(self.owner_tag)


def current_owner() -> Owner:
    pid = os.getpid()
    return Owner(pid, _process_start(pid) or "", _boot_id())


def tag_this_process() -> str:
    """Put this process's owner tag into its environment, for every process it starts."""
    tag = current_owner().tag
    os.environ[OWNER_ENV] = tag
    return tag


def mark(directory: Path, kind: str) -> Marker:
    """Write the marker into `directory` and register it, so a reaper finds it anywhere."""
    marker = Marker(
        tool=TOOL,
        kind=kind,
        owner_tag=tag_this_process(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        path=str(directory),
    )
    _write_json(directory / MARKER_NAME, asdict(marker))
    with contextlib.suppress(OSError):  # the marker in the directory suffices for TMPDIR scans
        registry = registry_dir()
        registry.mkdir(parents=True, exist_ok=True)
        _write_json(registry / _entry_name(directory), asdict(marker))
    return marker


def mark_kept(directory: Path) -> None:
    marker = read_marker(directory)
    if marker is None:
        return
    kept = Marker(**{**asdict(marker), "kept": True})
    _write_json(directory / MARKER_NAME, asdict(kept))
    with contextlib.suppress(OSError):
        _write_json(registry_dir() / _entry_name(directory), asdict(kept))


def unregister(directory: Path) -> None:
    with contextlib.suppress(OSError):
        (registry_dir() / _entry_name(directory)).unlink(missing_ok=True)


def read_marker(directory: Path) -> Marker | None:
    """The marker of `directory` when this tool wrote it; None for anything else."""
    try:
        data = json.loads((directory / MARKER_NAME).read_text(encoding="utf-8"))
        marker = Marker(**data)
    except (OSError, ValueError, TypeError):
        return None
    if marker.tool != TOOL or Path(marker.path) != directory or marker.owner is None:
        return None
    return marker


def registered_paths() -> list[Path]:
    """Directories drills registered, wherever their TMPDIR was."""
    paths = []
    with contextlib.suppress(OSError):
        for entry in sorted(registry_dir().glob("*.json")):
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                paths.append(Path(json.loads(entry.read_text(encoding="utf-8"))["path"]))
    return paths


def registry_dir() -> Path:
    """Per user: $PRISM_DR_STATE_DIR, else $XDG_STATE_HOME/prism-dr, else ~/.local/state/…"""
    base = os.environ.get(STATE_DIR_ENV)
    if base:
        return Path(base) / "drill-dirs"
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "prism-dr" / "drill-dirs"


def process_tag(pid: int) -> str | None:
    """The owner tag in a process's environment, if it has one and it may be read."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = OWNER_ENV.encode() + b"="
    for item in environ.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None


def _entry_name(directory: Path) -> str:
    return f"{directory.name}.json"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _process_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name in field 2 may hold spaces and parentheses.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"
