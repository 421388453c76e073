"""Restore a logical backup into an ephemeral local PostgreSQL.

Formats: pg_dump custom, directory and tar archives (pg_restore -j N), plain SQL (`.sql`,
`.sql.gz`), and pg_dumpall cluster scripts such as Supabase's daily `.backup.gz`.
Any restore error fails the drill; only an explicit allow-list of errors that Supabase's
platform objects cause in a vanilla PostgreSQL is tolerated, and each is recorded.
"""

from __future__ import annotations

import bisect
import contextlib
import gzip
import os
import re
import secrets
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drills.local import archive
from drills.local.cluster import Cluster, pg_tool
from drills.local.dumpheader import (
    DumpVersions,
    HeaderError,
    archive_versions,
    script_versions,
    server_versions,
)
from drills.local.supabase import Kind, ScriptTrace, SkippedCopy, Verdict, unquote
from drills.pgbin import Installation, choose
from drills.record.model import BackupVersions, RestoredWith
from drills.verify.manifest import Manifest
from infra.errors import BadInput
from recovery.redact import mask_dsn

RESTORE_DB = "prism"  # where single-database backups are restored
MAX_RECORDED_ERRORS = 20
_HEAD_BYTES = 1 << 20


class BackupFormat(StrEnum):
    CUSTOM = "custom"
    DIRECTORY = "directory"
    TAR = "tar"
    PLAIN = "plain"  # one database's pg_dump SQL script
    CLUSTER = "cluster"  # pg_dumpall script: roles, then every database


@dataclass
class Backup:
    path: Path
    format: BackupFormat
    gzipped: bool = False
    supabase: bool = False
    creates_database: bool = False  # a plain `pg_dump --create` script brings its own database
    created_at: datetime | None = None  # the backup point, when the file says it
    versions: DumpVersions = field(default_factory=DumpVersions)  # what made it
    point_source: str | None = None  # where created_at was read from

    @property
    def is_archive(self) -> bool:
        return self.format in (BackupFormat.CUSTOM, BackupFormat.DIRECTORY, BackupFormat.TAR)


@dataclass
class RestoreOutcome:
    database: str  # the restored database the checks run against
    errors: list[str] = field(default_factory=list)  # blocking, the first MAX_RECORDED_ERRORS
    errors_total: int = 0  # every blocking error, also those past the cap
    ignored: list[str] = field(default_factory=list)  # traced to a missing platform extension
    warnings: list[str] = field(default_factory=list)  # application objects not restored
    ignored_copies: list[str] = field(default_factory=list)  # data skipped, with row counts
    missing_extensions: list[str] = field(default_factory=list)
    seconds: float = 0.0


# -- inspecting ------------------------------------------------------------------------------

def inspect_backup(path: Path, pg_bindir: Path | None = None) -> Backup:
    """Identify the format, creation time and versions, or raise BadInput naming the fix.

    Everything is read from the file itself: which binaries can restore it depends on it.
    (`pg_bindir` is accepted for callers of the older signature and not used.)
    """
    if not path.exists():
        raise BadInput(f"--backup {path}: no such file or directory; pass the path of a backup")
    if path.is_dir():
        if not (path / "toc.dat").exists():
            raise BadInput(
                f"--backup {path}: a directory without toc.dat is not a pg_dump directory "
                "archive; pass the archive directory or a dump file"
            )
        backup = Backup(path, BackupFormat.DIRECTORY)
    else:
        backup = _inspect_file(path)
    if backup.is_archive:
        # An unreadable header shows up as a failed restore, not as bad input.
        with contextlib.suppress(HeaderError, OSError):
            backup.versions = archive_versions(path)
        backup.created_at = backup.versions.created_at
        backup.point_source = "archive header" if backup.created_at else None
    else:
        backup.created_at = _plain_started_on(backup)
        backup.point_source = "script header (pg_dump --verbose)" if backup.created_at else None
        named = supabase_backup_time(path.name)
        if backup.created_at is None and named is not None:
            backup.created_at = named
            backup.point_source = "file name (Supabase backup, UTC)"
        # A corrupt body shows up as a failed restore.
        with contextlib.suppress(OSError, EOFError, zlib.error):
            backup.versions = script_versions(path, backup.gzipped)
    return backup


def choose_installation(
    backup: Backup | None, source_dsn: str | None, pg_bindir: Path | None = None
) -> Installation:
    """The PostgreSQL to restore with: a major at least the backup's (or the live source's)."""
    if backup is not None:
        return choose(backup.versions.needed_major, pg_bindir)
    needed = None
    if source_dsn:
        try:
            needed = server_versions(source_dsn).server_major
        except psycopg.Error as err:
            reason = mask_dsn(str(err).strip().splitlines()[0] if str(err).strip() else "")
            raise BadInput(
                f"--source-dsn {mask_dsn(source_dsn)}: cannot connect ({reason}); check the "
                "DSN, the password and that the server is reachable"
            ) from err
    return choose(needed, pg_bindir)


def _inspect_file(path: Path) -> Backup:
    with path.open("rb") as raw:
        magic = raw.read(512)
    if magic.startswith(b"PGDMP"):
        return Backup(path, BackupFormat.CUSTOM)
    if len(magic) >= 262 and magic[257:262] == b"ustar":
        return Backup(path, BackupFormat.TAR)
    gzipped = magic.startswith(b"\x1f\x8b")
    try:
        head = _read_head(path, gzipped)
    except (OSError, EOFError) as err:
        raise BadInput(
            f"--backup {path}: not a readable backup ({err}); pass a pg_dump archive, "
            "a .sql/.sql.gz script or a Supabase .backup.gz"
        ) from err
    if head.startswith(b"PGDMP"):
        raise BadInput(
            f"--backup {path}: a gzip-compressed custom archive; decompress it first "
            "(gunzip) — pg_restore reads custom archives uncompressed"
        )
    supabase = path.name.endswith(".backup.gz") or b"supabase_admin" in head
    if b"PostgreSQL database cluster dump" in head:
        return Backup(path, BackupFormat.CLUSTER, gzipped, supabase)
    if b"PostgreSQL database dump" in head or _looks_like_sql(head):
        creates = re.search(rb"^CREATE DATABASE ", head, re.M) is not None
        return Backup(path, BackupFormat.PLAIN, gzipped, supabase, creates_database=creates)
    raise BadInput(
        f"--backup {path}: unknown backup format; pass a pg_dump archive (-Fc/-Fd/-Ft), "
        "a .sql/.sql.gz script or a Supabase .backup.gz"
    )


def _looks_like_sql(head: bytes) -> bool:
    return b"\0" not in head and bool(
        re.search(rb"^\s*(CREATE|SET|INSERT|COPY|BEGIN)\b", head, re.M | re.I)
    )


def _open_bytes(path: Path, gzipped: bool) -> IO[bytes]:
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def _read_head(path: Path, gzipped: bool) -> bytes:
    with _open_bytes(path, gzipped) as stream:
        return stream.read(_HEAD_BYTES)


_SUPABASE_NAME = re.compile(
    r"^db_cluster-(\d\d)-(\d\d)-(\d{4})@(\d\d)-(\d\d)-(\d\d)\.backup(?:\.gz)?$"
)


def supabase_backup_time(name: str) -> datetime | None:
    """`db_cluster-23-11-2026@02-00-00.backup.gz` → 2026-11-23 02:00:00 UTC (Supabase names
    its daily backups by their UTC start, day first)."""
    match = _SUPABASE_NAME.match(name)
    if not match:
        return None
    day, month, year, hour, minute, second = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def _plain_started_on(backup: Backup) -> datetime | None:
    # `pg_dump --verbose` writes "-- Started on <time> <zone>"; plain dumps otherwise carry none.
    head = _read_head(backup.path, backup.gzipped)
    match = re.search(rb"^-- Started on (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (UTC|GMT)$", head, re.M)
    if not match:
        return None
    return datetime.strptime(match.group(1).decode(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


# -- dumping a live source --------------------------------------------------------------------

def dump_source(source_dsn: str, dest: Path, pg_bindir: Path) -> Backup:
    """Take a fresh `pg_dump -Fc` of a live database; its backup point is the dump's start."""
    try:
        params = conninfo_to_dict(source_dsn)
    except psycopg.ProgrammingError as err:
        raise BadInput(
            f"--source-dsn: not a valid connection string ({err}); use postgresql://user@host/db"
        ) from err
    password = params.pop("password", None)
    env = {**os.environ, "TZ": "UTC"}
    if password:
        env["PGPASSWORD"] = str(password)  # kept out of argv, which other users can read
    started = datetime.now(UTC)
    result = subprocess.run(
        [
            pg_tool(pg_bindir, "pg_dump"),
            "--format=custom",
            "--no-password",
            f"--file={dest}",
            f"--dbname={make_conninfo(**params)}",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        reason = mask_dsn(result.stderr.strip().splitlines()[-1] if result.stderr else "")
        dest.unlink(missing_ok=True)
        raise BadInput(
            f"--source-dsn {mask_dsn(source_dsn)}: pg_dump failed ({reason}); "
            "check the DSN, the password and that the server is reachable"
        )
    backup = Backup(dest, BackupFormat.CUSTOM, created_at=started, point_source="dump start")
    with contextlib.suppress(HeaderError, OSError):
        backup.versions = archive_versions(dest)  # the record names what made it
    return backup


# -- restoring --------------------------------------------------------------------------------

def restore(
    backup: Backup,
    cluster: Cluster,
    jobs: int,
    database: str = RESTORE_DB,
    manifest: Manifest | None = None,
) -> RestoreOutcome:
    """Restore into the cluster and return what went wrong; never raises for a bad backup.

    Single-database backups go into a new `database`; a cluster script brings its own, and the
    checks then run in the one `manifest` names or the one holding its tables.
    """
    started = time.monotonic()
    become_drill_superuser(cluster)
    if backup.is_archive:
        outcome = _restore_archive(backup, cluster, jobs, database)
    else:
        outcome = _restore_script(backup, cluster, database, manifest or Manifest())
    outcome.seconds = time.monotonic() - started
    outcome.errors_total = len(outcome.errors)
    del outcome.errors[MAX_RECORDED_ERRORS:]
    return outcome


DRILL_ROLE_PREFIX = "prism_drill_"


def become_drill_superuser(cluster: Cluster) -> None:
    """From here on, reach the cluster as a superuser of the drill's own that no dump can name.

    A cluster script sets the attributes and passwords of the roles it dumps, `postgres`
    included however it is quoted (`ALTER ROLE "postgres" WITH NOSUPERUSER … PASSWORD …` on
    Supabase). So the drill connects as `prism_drill_<random>` and renames the bootstrap
    superuser out of the way: the script's `postgres` is then an ordinary role of its own.
    `cluster` is updated in place, so everything after the restore connects the same way.
    """
    if cluster.user.startswith(DRILL_ROLE_PREFIX):
        return
    role = DRILL_ROLE_PREFIX + secrets.token_hex(6)
    password = secrets.token_urlsafe(24)
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    bootstrap = cluster.user
    cluster.user, cluster.password = role, password
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} RENAME TO {}").format(
                sql.Identifier(bootstrap),
                sql.Identifier(DRILL_ROLE_PREFIX + "bootstrap_" + secrets.token_hex(6)),
            )
        )


def _restore_archive(
    backup: Backup, cluster: Cluster, jobs: int, database: str
) -> RestoreOutcome:
    _create_database(cluster, database)
    pg_restore = cluster.tool("pg_restore")
    env = cluster.env()
    toc = archive.list_toc(pg_restore, backup.path, env)
    available = _available_extensions(cluster)
    lacking = {i.tag for i in toc if i.type == "EXTENSION"} - available
    argv = [
        pg_restore,
        "--verbose",  # names the entry before its first error (drills/local/archive.py)
        f"--dbname={database}",
        # Roles are cluster-wide and not in a pg_dump archive, though its owners and grants
        # name them. The drill verifies data, so ownership and ACLs are not restored here
        # rather than failing on roles this cluster lacks (plain scripts create them instead).
        "--no-owner",
        "--no-privileges",
    ]
    # pg_restore cannot run tar archives in parallel. An archive needing extensions this
    # PostgreSQL lacks will have errors to judge, and parallel workers write their messages
    # into one another's lines: such a restore runs in one process, each error by its entry.
    if backup.format != BackupFormat.TAR and jobs > 1 and not lacking:
        argv.append(f"--jobs={jobs}")
    argv.append(str(backup.path))
    result = subprocess.run(argv, capture_output=True, text=True, errors="replace", env=env)
    outcome = RestoreOutcome(database=database)
    failures = archive.entry_errors(result.stderr)
    if failures:
        _judge_archive_errors(backup, pg_restore, env, toc, available, lacking, failures, outcome)
    if result.returncode != 0 and not failures:
        # pg_restore exits 1 after errors it reported (each judged above); without any, the
        # status is all there is to say.
        outcome.errors.append(f"pg_restore exited with status {result.returncode}")
    return outcome


def _judge_archive_errors(
    backup: Backup,
    pg_restore: str,
    env: dict[str, str],
    toc: list[archive.TocItem],
    available: frozenset[str],
    lacking: set[str],
    failures: list[tuple[int | None, str]],
    outcome: RestoreOutcome,
) -> None:
    """Each pg_restore error judged by its entry: a platform extension's, an application
    object built on one, or blocking (drills/local/supabase.py has the rules)."""
    by_id = {item.dump_id: item for item in toc}
    platform = backup.supabase or any(i.owner in archive.SUPABASE_OWNERS for i in toc)
    trace = ScriptTrace(available, platform=platform)
    if lacking:
        extensions = [i for i in toc if i.type == "EXTENSION"]
        schemas = archive.extension_schemas(pg_restore, backup.path, extensions, env)
        for name, schema in schemas.items():
            trace.add_extension(name, schema)
    for position, item in enumerate(toc):
        trace.add_entry(position, item.entry)
    lost_data: list[tuple[archive.TocItem, str, Verdict | None]] = []
    for dump_id, text in failures:
        item = by_id.get(dump_id) if dump_id is not None else None
        verdict = trace.judge_entry(item.entry if item else None, archive.server_message(text))
        if item is not None and item.type == "TABLE DATA":
            lost_data.append((item, text, verdict))  # reported with its row count, below
            continue
        where = f"{_entry_name(item)}: " if item is not None else ""
        _record_verdict(outcome, where, text, verdict)
    if lost_data:
        rows = archive.count_rows(pg_restore, backup.path, [i for i, _, _ in lost_data], env)
        for item, text, verdict in lost_data:
            skipped = SkippedCopy(None, item.entry.label, rows.get(item.dump_id, 0))
            if verdict is None:  # not a missing extension's doing: the error says why
                outcome.errors.append(f"{skipped.describe().removesuffix(' ()')}: {text}")
            elif trace.judge_copy(skipped) == Kind.BLOCKING:
                outcome.errors.append(f"{skipped.describe()}: {text}")
            else:
                outcome.ignored_copies.append(skipped.describe())
    outcome.missing_extensions = sorted(
        {name for by_name in trace.missing.values() for name in by_name}
    )


def _entry_name(item: archive.TocItem) -> str:
    """`TABLE DATA cron.job`, `COMMENT EXTENSION pg_cron`: the entry as a reader finds it."""
    if item.type in ("COMMENT", "ACL", "DEFAULT ACL"):  # the tag names what it is about
        return f"{item.type} {item.tag}"
    return f"{item.type} {item.entry.label}"


def _record_verdict(
    outcome: RestoreOutcome, where: str, message: str, verdict: Verdict | None
) -> None:
    if verdict is None:
        outcome.errors.append(f"{where}{message}")
    elif verdict.kind == Kind.BLOCKING:
        outcome.errors.append(f"{where}{message} ({verdict.reason})")
    elif verdict.kind == Kind.WARNING:
        outcome.warnings.append(verdict.reason)
        outcome.ignored.append(f"{where}{message} (ignored: {verdict.reason})")
    else:
        outcome.ignored.append(f"{where}{message} (ignored: {verdict.reason})")


def _create_database(cluster: Cluster, name: str) -> None:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# Supabase's platform roles: its single-database dumps grant to them (a cluster dump creates them).
SUPABASE_ROLES = {
    "anon": "NOLOGIN NOINHERIT",
    "authenticated": "NOLOGIN NOINHERIT",
    "service_role": "NOLOGIN NOINHERIT BYPASSRLS",
    "authenticator": "LOGIN NOINHERIT",
    "supabase_admin": "LOGIN SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS",
    "supabase_auth_admin": "LOGIN NOINHERIT CREATEROLE",
    "supabase_storage_admin": "LOGIN NOINHERIT CREATEROLE",
    "supabase_functions_admin": "LOGIN NOINHERIT CREATEROLE",
    "supabase_realtime_admin": "NOLOGIN NOINHERIT",
    "supabase_replication_admin": "LOGIN REPLICATION",
    "supabase_read_only_user": "LOGIN BYPASSRLS",
    "dashboard_user": "NOLOGIN CREATEDB CREATEROLE REPLICATION",
    "pgbouncer": "LOGIN",
    "pgsodium_keyholder": "NOLOGIN",
    "pgsodium_keyiduser": "NOLOGIN",
    "pgsodium_keymaker": "NOLOGIN",
}

_ROLE_REFERENCE = re.compile(
    rb"^(?:ALTER .* OWNER TO|GRANT .* TO|REVOKE .* FROM|ALTER DEFAULT PRIVILEGES FOR ROLE)"
    rb" ([A-Za-z_][\w$]*|\"[^\"]+\")"
)
_COPY_START = re.compile(rb"^COPY (.*?) (?:\(.*\) )?FROM stdin;\r?$")
_COPY_TARGET = re.compile(rb'^("(?:[^"]|"")+"|[^".\s]+)\.("(?:[^"]|"")+"|[^".\s]+)$')
# pg_dumpall (16+) names the grantor of each role membership: the source's bootstrap
# superuser, which is not a superuser of its own here (the drill's is), so the grant would fail.
_GRANTED_BY = re.compile(rb" GRANTED BY (?:\"(?:[^\"]|\"\")+\"|[\w$]+);(\r?\n)$")
_SYNC_PREFIX = "prism-drill-sync-"


class _Psql:
    """psql reading a script from stdin (`-f -`, so errors carry the script line), with a way
    to wait until it has run everything sent so far."""

    def __init__(self, cluster: Cluster, database: str):
        self.proc = subprocess.Popen(
            [
                cluster.tool("psql"),
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=0",
                "--file=-",
                f"--dbname={database}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=cluster.env(),
        )
        self.stderr: list[bytes] = []
        self._synced = threading.Condition()
        self._last_sync = -1
        self._syncs = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            marker = line.find(_SYNC_PREFIX.encode())
            if marker >= 0 and b"WARNING:" in line:
                with self._synced:
                    self._last_sync = int(line[marker + len(_SYNC_PREFIX):])
                    self._synced.notify_all()
            else:
                self.stderr.append(line)
        with self._synced:
            self._last_sync = 1 << 62  # psql is gone: nobody waits for it any more
            self._synced.notify_all()

    def sync_line(self) -> bytes:
        """A line to send; `wait()` returns once psql has reached it.

        SQL, not `\\warn`: pg_dump's `\\restrict` forbids meta-commands in the script.
        """
        self._syncs += 1
        return (
            f"DO $prism$ BEGIN RAISE WARNING '{_SYNC_PREFIX}{self._syncs}'; END $prism$;\n"
        ).encode()

    def wait(self) -> None:
        self.proc.stdin.flush()
        with self._synced:
            self._synced.wait_for(lambda: self._last_sync >= self._syncs)

    def finish(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        self.proc.wait()
        self._reader.join()


def _restore_script(
    backup: Backup, cluster: Cluster, database: str, manifest: Manifest
) -> RestoreOutcome:
    # A cluster script or a `--create` dump makes and \connects to its own databases.
    own_databases = backup.format == BackupFormat.CLUSTER or backup.creates_database
    target = "postgres" if own_databases else database
    if not own_databases:
        _create_database(cluster, database)
    if backup.supabase and backup.format == BackupFormat.PLAIN:
        _create_supabase_roles(cluster)
    trace = ScriptTrace(_available_extensions(cluster), platform=backup.supabase,
                        database=target)
    psql = _Psql(cluster, target)
    feed = _Feed(backup, cluster, psql, trace)
    feed_error = None
    try:
        feed.run()
    except (OSError, EOFError, zlib.error) as err:
        feed_error = f"reading {backup.path.name} failed: {err}"
    except BaseException:
        psql.proc.kill()  # interrupted: do not wait for a long statement to finish
        raise
    finally:
        feed.close()
        psql.finish()

    outcome = RestoreOutcome(database=target)
    if feed_error:
        outcome.errors.append(feed_error)
    elif not feed.complete:
        outcome.errors.append(
            f"{backup.path.name} ends before pg_dump's completion footer: the backup is truncated"
        )
    for line_no, message in _psql_errors(b"".join(psql.stderr).decode(errors="replace")):
        where = f"line {feed.backup_line(line_no)}: " if line_no else ""
        _record_verdict(outcome, where, message, trace.judge(line_no, message))
    for skipped in feed.skipped:
        if trace.judge_copy(skipped) == Kind.BLOCKING:
            outcome.errors.append(skipped.describe())
        else:
            outcome.ignored_copies.append(skipped.describe())
    if psql.proc.returncode not in (0, None) and not outcome.errors:
        outcome.errors.append(f"psql exited with status {psql.proc.returncode}")
    outcome.missing_extensions = sorted(
        {name for by_name in trace.missing.values() for name in by_name}
    )
    if own_databases:
        chosen, problem = _database_holding(cluster, manifest)
        outcome.database = chosen or target
        if problem:
            outcome.errors.append(problem)
    return outcome


class _Feed:
    """Streams the script into psql, line by line, in bytes (any server encoding passes).

    Creates each role the script references before its first use (roles live outside a
    database dump) and drops the grantor from role memberships (see _GRANTED_BY). Where an
    extension of the current database is missing, it waits for psql before each COPY and skips
    the data of a table that does not exist, instead of letting psql run its rows as SQL.
    """

    def __init__(self, backup: Backup, cluster: Cluster, psql: _Psql, trace: ScriptTrace):
        self.backup = backup
        self.cluster = cluster
        self.psql = psql
        self.trace = trace
        self.sink = psql.proc.stdin
        self.line_no = 0
        self.complete = False
        self.skipped: list[SkippedCopy] = []
        self.injected: list[int] = []  # stream line numbers of the drill's own lines
        self.known_roles = {cluster.user, "public", "current_user", "session_user",
                            *(SUPABASE_ROLES if backup.supabase else ())}
        self._conns: dict[str, psycopg.Connection] = {}
        self.footer = (
            b"-- PostgreSQL database cluster dump complete"
            if backup.format == BackupFormat.CLUSTER
            else b"-- PostgreSQL database dump complete"
        )

    def write(self, line: bytes) -> None:
        self.sink.write(line)
        self.line_no += line.count(b"\n")

    def inject(self, line: bytes) -> None:
        """A line of the drill's own, not the backup's (psql counts it; the record must not)."""
        self.write(line)
        self.injected.append(self.line_no)

    def backup_line(self, fed_line: int) -> int:
        return fed_line - bisect.bisect_right(self.injected, fed_line)

    def run(self) -> None:
        skipping: SkippedCopy | None = None
        in_copy = False
        roles_section = self.backup.format == BackupFormat.CLUSTER
        with _open_bytes(self.backup.path, self.backup.gzipped) as stream:
            for line in stream:
                if skipping is not None:
                    if line.rstrip(b"\r\n") == b"\\.":
                        self.skipped.append(skipping)
                        skipping = None
                    else:
                        skipping.rows += 1
                    continue
                if in_copy:
                    in_copy = line.rstrip(b"\r\n") != b"\\."
                    self.write(line)
                    continue
                copy = _COPY_START.match(line)
                if copy:
                    skipping = self._skip_copy(copy.group(1))
                    if skipping is None:
                        in_copy = True
                        self.write(line)
                    continue
                if line.startswith(b"\\connect"):
                    roles_section = False
                elif roles_section and line.startswith(b"GRANT "):
                    line = _GRANTED_BY.sub(rb";\1", line)
                match = _ROLE_REFERENCE.match(line)
                if match:
                    role = match.group(1).decode(errors="replace").strip('"')
                    if role not in self.known_roles:
                        self.known_roles.add(role)
                        self.inject(_create_role_sql(role))
                if line.startswith(self.footer):
                    self.complete = True
                self.trace.note(self.line_no + 1, line)
                self.write(line)

    def _skip_copy(self, target: bytes) -> SkippedCopy | None:
        """A SkippedCopy to fill when the COPY's table does not exist here, else None."""
        if not self.trace.has_missing():
            return None  # every extension is here: the table exists unless the dump is broken
        match = _COPY_TARGET.match(target.strip())
        if not match:
            return None
        schema, table = (unquote(g.decode(errors="replace")) for g in match.groups())
        self.inject(self.psql.sync_line())
        self.psql.wait()
        database = self.trace.database or "postgres"
        conn = self._conns.get(database)
        if conn is None:
            conn = self._conns[database] = psycopg.connect(
                self.cluster.dsn(database), autocommit=True
            )
        exists = conn.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            [schema, table],
        ).fetchone()
        if exists:
            return None
        return SkippedCopy(self.trace.database, f"{schema}.{table}", 0,
                           causes=self.trace.copy_cause(schema))

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()


def _create_role_sql(role: str) -> bytes:
    quoted = '"' + role.replace('"', '""') + '"'
    return (
        f"DO $prism$ BEGIN CREATE ROLE {quoted} NOLOGIN; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $prism$;\n"
    ).encode()


def _create_supabase_roles(cluster: Cluster) -> None:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        for role, attributes in SUPABASE_ROLES.items():
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
            if not exists:
                conn.execute(
                    sql.SQL("CREATE ROLE {} " + attributes).format(sql.Identifier(role))
                )
        conn.execute("GRANT anon, authenticated, service_role TO authenticator")


_ERROR_LINE = re.compile(r"^psql:[^:]*:(\d+): (?:ERROR|FATAL):\s+(.*)$")


def _psql_errors(stderr: str) -> list[tuple[int | None, str]]:
    """psql's errors with the script line each came from (None when it names none)."""
    errors: list[tuple[int | None, str]] = []
    for line in stderr.splitlines():
        located = _ERROR_LINE.match(line)
        if located:
            errors.append((int(located.group(1)), located.group(2).strip()))
            continue
        match = re.search(r"(?:ERROR|FATAL):\s+(.*)$", line)
        if match:
            errors.append((None, match.group(1).strip()))
        elif line.startswith("psql: error:"):
            errors.append((None, line.removeprefix("psql: error:").strip()))
    return errors


def _available_extensions(cluster: Cluster) -> frozenset[str]:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        return frozenset(
            row[0] for row in conn.execute("SELECT name FROM pg_available_extensions")
        )


def _database_holding(cluster: Cluster, manifest: Manifest) -> tuple[str | None, str | None]:
    """After a cluster restore: the database to check, and a blocking error when the manifest
    names one the backup does not have.

    The manifest's `database`, else the database holding the most of its expected tables
    (ties: `postgres` first — Supabase's — then by name).
    """
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
                "ORDER BY datname = 'postgres' DESC, datname"
            )
        ]
    if manifest.database:
        if manifest.database in names:
            return manifest.database, None
        return None, (f"the manifest's database {manifest.database!r} is not in the backup "
                      f"(it has: {', '.join(names)})")
    wanted = list(manifest.tables) or ["organizations"]
    best, best_count = None, 0
    for name in names:
        with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
            found = conn.execute(
                "SELECT count(DISTINCT c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s) AND c.relname = ANY(%s)",
                [manifest.schemas, wanted],
            ).fetchone()[0]
        if found > best_count:
            best, best_count = name, found
    return best, None


def restore_facts(
    point_flag: bool, backup: Backup, installation: Installation, outcome: RestoreOutcome
) -> dict:
    """The record's fields about the backup and its restore (see drills.record.model)."""
    return dict(
        point_source="--point" if point_flag else backup.point_source,
        backup_versions=BackupVersions(
            server=backup.versions.server,
            dumper=backup.versions.dumper,
            needed_major=backup.versions.needed_major,
        ),
        restored_with=RestoredWith(
            version=installation.version,
            bindir=str(installation.bindir),
            source=installation.source,
        ),
        database=outcome.database,
        restore_errors=outcome.errors,
        restore_errors_total=outcome.errors_total,
        restore_warnings=outcome.warnings,
        restore_ignored_copies=outcome.ignored_copies,
        missing_extensions=outcome.missing_extensions,
    )
