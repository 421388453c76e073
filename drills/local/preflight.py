"""Every input of a local drill checked before anything is created.

A drill that fails on its input half an hour in, or leaves a cluster behind because a URL
only turned out malformed once the API was probed, costs more than the check. Each check
raises BadInput with one line naming the option, the value and the fix.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import subprocess
import tempfile
import urllib.parse
import zlib
from dataclasses import dataclass
from pathlib import Path

from drills.local.plan import LocalDrillPlan, check_plan
from drills.local.restore import Backup, choose_installation, inspect_backup
from drills.pgbin import Installation
from drills.verify import load_manifest
from drills.verify.manifest import Manifest
from infra.errors import BadInput
from recovery.redact import mask_dsn, shown

SOURCE_CONNECT_TIMEOUT = 10  # seconds; a firewalled host would otherwise hang for minutes


def check_path_length(option: str, path: Path) -> None:
    """The kernel's limits: 255 bytes a name (NAME_MAX), 4,095 bytes a path (PATH_MAX)."""
    raw = os.fsencode(path)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > 255:
        raise BadInput(
            f"{option} {shown(path)}: a name in this path is {longest} bytes, more than the "
            "255 the file system allows; pass a shorter path"
        )
    if len(os.fsencode(path.absolute())) >= 4096 or len(raw) >= 4096:
        raise BadInput(
            f"{option} {shown(path)}: the path is longer than the 4,095 bytes the system "
            "allows; pass a shorter path"
        )


def check_backup_path(path: Path) -> None:
    """A regular, readable, non-empty file or a directory; never a FIFO or a device."""
    check_path_length("--backup", path)
    try:
        info = path.stat()
    except OSError as err:
        raise BadInput(f"--backup {shown(path)}: {_why(err)}; pass the path of a backup") from err
    if stat.S_ISDIR(info.st_mode):
        return
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(
            f"--backup {shown(path)} is a {_kind(info.st_mode)}, not a file: pass a pg_dump "
            "archive or directory, or a .sql/.sql.gz/.backup.gz file"
        )
    if info.st_size == 0:
        raise BadInput(f"--backup {shown(path)} is empty; pass the backup file itself")
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as err:
        raise BadInput(f"--backup {shown(path)}: {_why(err)}; pass a file you can read") from err


def inspect(path: Path, bindir: Path | None = None) -> Backup:
    """The backup's format and time; a file that cannot even be read that far is bad input."""
    try:
        return inspect_backup(path, bindir)
    except (OSError, EOFError, zlib.error, UnicodeError) as err:
        raise BadInput(
            f"--backup {shown(path)}: not a readable backup ({shown(err)}); pass an intact "
            "pg_dump archive, .sql/.sql.gz script or Supabase .backup.gz"
        ) from err


def check_record_dir(path: Path) -> None:
    """The record is written after the drill: a directory that cannot take it must fail now."""
    check_path_length("--record-dir", path)
    try:
        if path.exists() and not path.is_dir():
            raise BadInput(f"--record-dir {shown(path)} is a file; pass a directory")
    except OSError as err:
        raise BadInput(f"--record-dir {shown(path)}: {_why(err)}; pass a directory") from err
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BadInput(
            f"--record-dir {shown(path)}: {shown(existing)} is a file, not a directory; "
            "pass a directory"
        )
    try:  # a real probe: permission bits say nothing to root or about read-only mounts
        os.rmdir(tempfile.mkdtemp(prefix=".prism-dr-probe-", dir=existing))
    except OSError as err:
        raise BadInput(
            f"--record-dir {shown(path)}: cannot create it under {shown(existing)} "
            f"({_why(err)}); pass a directory you can write to"
        ) from err


def check_regular_file(option: str, path: Path) -> None:
    """A file that can be read to its end: a FIFO or a device would hang or never end."""
    check_path_length(option, path)
    try:
        info = path.stat()
    except OSError as err:
        raise BadInput(f"{option} {shown(path)}: {_why(err)}; pass an existing file") from err
    if not stat.S_ISREG(info.st_mode):
        what = "directory" if stat.S_ISDIR(info.st_mode) else _kind(info.st_mode)
        raise BadInput(f"{option} {shown(path)} is a {what}, not a file; pass a YAML file")


def check_source(dsn: str) -> None:
    """--source-dsn parses and answers a query: an unusable source is refused, not warned about.

    A drill that cannot compare with its source would otherwise pass on the backup alone
    while the user asked for the comparison.
    """
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    masked = shown(dsn)
    fix = "check the host, port, user, password and database"
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as err:
        raise BadInput(
            f"--source-dsn {masked}: not a valid connection string ({_first_line(err)}); use "
            "postgresql://user:password@host:port/dbname"
        ) from err
    params.setdefault("connect_timeout", SOURCE_CONNECT_TIMEOUT)
    try:
        with psycopg.connect(**params) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as err:
        reason = _first_line(err)
        raise BadInput(f"--source-dsn {masked}: cannot connect ({reason}); {fix}") from err


def check_api_url(url: str) -> None:
    """An http(s) URL with a host and, when given, a port in 1-65535."""
    fix = "pass e.g. --api-url http://127.0.0.1:8080"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise BadInput(f"--api-url {shown(url)} is not a valid URL ({err}); {fix}") from err
    if parts.scheme not in ("http", "https"):
        raise BadInput(f"--api-url {shown(url)} is not an http(s) URL; {fix}")
    if not parts.hostname:
        raise BadInput(f"--api-url {shown(url)} names no host; {fix}")
    if port == 0:
        raise BadInput(f"--api-url {shown(url)}: port 0 cannot be reached; {fix}")


def check_api_cmd(command: str) -> None:
    if not command.strip():
        raise BadInput("--api-cmd is empty; pass the command that starts the API, or drop it")
    if "\0" in command:
        raise BadInput("--api-cmd holds a NUL byte; pass a shell command line")


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return shown(lines[0] if lines else type(err).__name__)


def _why(err: OSError) -> str:
    reasons = {
        errno.ENOENT: "no such file or directory",
        errno.ENAMETOOLONG: "the path is too long for the file system",
        errno.ENOTDIR: "a part of the path is not a directory",
        errno.ELOOP: "too many symbolic links",
        errno.EACCES: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left on the device",
    }
    return reasons.get(err.errno, mask_dsn(err.strerror or type(err).__name__).lower())


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


@dataclass
class LocalInputs:
    """What the checks before the drill found out: nothing of it exists on disk yet."""

    manifest: Manifest
    installation: Installation
    backup: Backup | None
    source_dsn: str | None

    @property
    def bindir(self) -> Path:
        return self.installation.bindir


def check_temp_dir() -> None:
    """As root the ephemeral cluster runs as the `postgres` OS user, in a directory under
    TMPDIR (made by root, then handed to that user): that user must be able to traverse
    TMPDIR (a TMPDIR under /root, or one made with mkdtemp, is 0700)."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return  # the cluster refuses with its own message (no postgres user to run as)
    where = tempfile.gettempdir()
    probe = subprocess.run(
        ["test", "-d", where, "-a", "-x", where],
        user="postgres",
        check=False,
        capture_output=True,
    )
    if probe.returncode != 0:
        raise BadInput(
            f"TMPDIR {where}: the postgres OS user, which runs the ephemeral cluster when the "
            "drill runs as root, cannot traverse it; set TMPDIR to a directory every user can "
            "traverse (e.g. /tmp)"
        )


def check_inputs(plan: LocalDrillPlan, *, probe: bool = True) -> LocalInputs:
    """Every input checked, before any cluster, temp dir or record is created.

    `probe`: connect to --source-dsn to prove it usable (off for the demo's own source, which
    only exists once the inputs have passed)."""
    check_record_dir(plan.record_dir)
    check_temp_dir()
    check_plan(plan)
    if plan.api_url:
        check_api_url(plan.api_url)
    if plan.api_cmd is not None:
        check_api_cmd(plan.api_cmd)
    if plan.backup is not None:
        check_backup_path(plan.backup)
    if plan.manifest is not None:
        check_regular_file("--manifest", plan.manifest)
    manifest = load_manifest(plan.manifest)
    backup = inspect(plan.backup, None) if plan.backup else None
    if backup and not backup.is_archive and plan.point is None and backup.created_at is None:
        raise BadInput(
            f"--backup {shown(plan.backup)}: a plain SQL dump records no creation "
            "time; pass --point ISO-TIME (when the dump was taken)"
        )
    source_dsn = plan.source_dsn.get_secret_value() if plan.source_dsn else None
    if source_dsn is not None and probe:
        check_source(source_dsn)
    # Without the probe the source does not exist yet (the demo's): its major is then unknown.
    installation = choose_installation(backup, source_dsn if probe else None, plan.pg_bindir)
    return LocalInputs(manifest, installation, backup, source_dsn)
