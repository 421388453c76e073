"""Restore a logical backup into an ephemeral local PostgreSQL.

Formats: pg_dump custom, directory and tar archives (pg_restore -j N), plain SQL (`.sql`,
`.sql.gz`), and pg_dumpall cluster scripts such as Supabase's daily `.backup.gz`.
Any restore error fails the drill; only an explicit allow-list of errors that Supabase's
platform objects cause in a vanilla PostgreSQL is tolerated, and each is recorded.
"""

from __future__ import annotations

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

from drills.cluster import Cluster, pg_tool
from drills.dumpheader import (
    DumpVersions,
    HeaderError,
    archive_versions,
    script_versions,
    server_versions,
)
from drills.errors import BadInput
from drills.pgbin import Installation, choose
from drills.redact import mask_dsn

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

    @property
    def is_archive(self) -> bool:
        return self.format in (BackupFormat.CUSTOM, BackupFormat.DIRECTORY, BackupFormat.TAR)


@dataclass
class RestoreOutcome:
    database: str  # the restored database the checks run against
    errors: list[str] = field(default_factory=list)  # blocking, the first MAX_RECORDED_ERRORS
    errors_total: int = 0  # every blocking error, also those past the cap
    ignored: list[str] = field(default_factory=list)  # allow-listed, with the reason
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
    else:
        backup.created_at = _plain_started_on(backup)
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
    return Backup(dest, BackupFormat.CUSTOM, created_at=started)


# -- restoring --------------------------------------------------------------------------------

def restore(
    backup: Backup, cluster: Cluster, jobs: int, database: str = RESTORE_DB
) -> RestoreOutcome:
    """Restore into the cluster and return what went wrong; never raises for a bad backup.

    Single-database backups go into a new `database`; a cluster script brings its own.
    """
    started = time.monotonic()
    become_drill_superuser(cluster)
    if backup.is_archive:
        outcome = _restore_archive(backup, cluster, jobs, database)
    else:
        outcome = _restore_script(backup, cluster, database)
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


def _restore_archive(backup: Backup, cluster: Cluster, jobs: int, database: str) -> RestoreOutcome:
    _create_database(cluster, database)
    argv = [
        cluster.tool("pg_restore"),
        f"--dbname={database}",
        # Roles are cluster-wide and not in a pg_dump archive, though its owners and grants
        # name them. The drill verifies data, so ownership and ACLs are not restored here
        # rather than failing on roles this cluster lacks (plain scripts create them instead).
        "--no-owner",
        "--no-privileges",
    ]
    if backup.format != BackupFormat.TAR and jobs > 1:
        argv.append(f"--jobs={jobs}")  # pg_restore cannot run tar archives in parallel
    argv.append(str(backup.path))
    result = subprocess.run(argv, capture_output=True, text=True, env=cluster.env())
    errors = [
        line.removeprefix("pg_restore: error: ").strip()
        for line in result.stderr.splitlines()
        if line.startswith("pg_restore: error:")
    ]
    if result.returncode != 0 and not errors:
        errors.append(f"pg_restore exited with status {result.returncode}")
    return RestoreOutcome(database=database, errors=errors)


def _create_database(cluster: Cluster, name: str) -> None:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# Supabase's platform roles: its dumps grant to them and its role dumps alter them.
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
SUPABASE_EXTENSIONS = (
    "pg_graphql", "pg_net", "pgsodium", "supabase_vault", "pg_stat_monitor", "pgjwt", "pg_cron",
    "pgaudit", "plv8", "pg_hashids", "pg_tle", "wrappers", "http", "pg_jsonschema", "pgroonga",
    "pg_stat_statements", "index_advisor", "supautils", "pgmq", "pg_repack", "hypopg",
    "timescaledb", "postgis", "vector",
)  # fmt: skip
SUPABASE_SCHEMAS = (
    "auth", "storage", "graphql", "graphql_public", "realtime", "_realtime", "supabase_functions",
    "supabase_migrations", "vault", "pgsodium", "pgsodium_masks", "net", "extensions",
    "_analytics", "pgbouncer", "cron",
)  # fmt: skip


def _any_of(names) -> str:
    return "(?:" + "|".join(re.escape(name) for name in names) + ")"


# Each entry: (pattern over the ERROR text, why it is harmless). Anything else fails the drill.
_SUPABASE_ALLOWED = [
    (
        re.compile(rf'role "{_any_of(["postgres", *SUPABASE_ROLES])}" already exists'),
        "Supabase platform role pre-created for the restore",
    ),
    (
        re.compile(
            rf'extension "{_any_of(SUPABASE_EXTENSIONS)}" is not available'
            rf'|could not open extension control file ".*/{_any_of(SUPABASE_EXTENSIONS)}\.control"'
        ),
        "Supabase platform extension not installed in a vanilla PostgreSQL",
    ),
    (
        re.compile(
            rf'(?:schema|function|relation|type|publication|event trigger) '
            rf'"?{_any_of(SUPABASE_SCHEMAS)}[".]'
        ),
        "object in a Supabase platform schema, not Prism data",
    ),
    (
        re.compile(r"(?:publication|event trigger) .*(?:supabase|pgrst|graphql|pg_cron|pg_net)"),
        "Supabase platform publication or event trigger",
    ),
]

_ROLE_REFERENCE = re.compile(
    rb"^(?:ALTER .* OWNER TO|GRANT .* TO|REVOKE .* FROM|ALTER DEFAULT PRIVILEGES FOR ROLE)"
    rb" ([A-Za-z_][\w$]*|\"[^\"]+\")"
)
_COPY_START = re.compile(rb"^COPY .* FROM stdin;\r?$")


def _restore_script(backup: Backup, cluster: Cluster, database: str) -> RestoreOutcome:
    # A cluster script or a `--create` dump makes and \connects to its own databases.
    own_databases = backup.format == BackupFormat.CLUSTER or backup.creates_database
    target = "postgres" if own_databases else database
    if not own_databases:
        _create_database(cluster, database)
    if backup.supabase:
        _create_supabase_roles(cluster)
    proc = subprocess.Popen(
        [
            cluster.tool("psql"),
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=0",
            f"--dbname={target}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cluster.env(),
    )
    stderr_lines: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True)
    reader.start()
    feed_error = None
    complete = False
    try:
        complete = _feed(backup, cluster.user, proc.stdin)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        feed_error = f"reading {backup.path.name} failed: {err}"
    except BaseException:
        proc.kill()  # interrupted: do not wait for a long statement to finish
        raise
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        proc.wait()
        reader.join()

    outcome = RestoreOutcome(database=target)
    if feed_error:
        outcome.errors.append(feed_error)
    elif not complete:
        outcome.errors.append(
            f"{backup.path.name} ends before pg_dump's completion footer: the backup is truncated"
        )
    for message in _psql_errors(b"".join(stderr_lines).decode(errors="replace")):
        reason = _allowed_reason(message) if backup.supabase else None
        if reason:
            outcome.ignored.append(f"{message} (ignored: {reason})")
        else:
            outcome.errors.append(message)
    if proc.returncode not in (0, None) and not outcome.errors:
        outcome.errors.append(f"psql exited with status {proc.returncode}")
    if own_databases:
        outcome.database = _database_with_prism_tables(cluster) or target
    return outcome


def _feed(backup: Backup, own_role: str, sink: IO[bytes]) -> bool:
    """Stream the script into psql; returns whether pg_dump's completion footer was seen.

    Bytes throughout, so a dump in any server encoding streams unchanged. Creates each role
    the script references before its first use (roles live outside a database dump). The role
    we connect as is the drill's own (`become_drill_superuser`): no script can name it.
    """
    footer = (
        b"-- PostgreSQL database cluster dump complete"
        if backup.format == BackupFormat.CLUSTER
        else b"-- PostgreSQL database dump complete"
    )
    known_roles = {own_role, "public", "current_user", "session_user", *SUPABASE_ROLES}
    complete = False
    in_copy = False
    with _open_bytes(backup.path, backup.gzipped) as stream:
        for line in stream:
            if in_copy:
                in_copy = line.rstrip(b"\r\n") != b"\\."
            elif _COPY_START.match(line):
                in_copy = True
            else:
                match = _ROLE_REFERENCE.match(line)
                if match:
                    role = match.group(1).decode(errors="replace").strip('"')
                    if role not in known_roles:
                        known_roles.add(role)
                        sink.write(_create_role_sql(role))
                if line.startswith(footer):
                    complete = True
            sink.write(line)
    return complete


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


def _psql_errors(stderr: str) -> list[str]:
    errors = []
    for line in stderr.splitlines():
        match = re.search(r"(?:ERROR|FATAL):\s+(.*)$", line)
        if match:
            errors.append(match.group(1).strip())
        elif line.startswith("psql: error:"):
            errors.append(line.removeprefix("psql: error:").strip())
    return errors


def _allowed_reason(message: str) -> str | None:
    for pattern, reason in _SUPABASE_ALLOWED:
        if pattern.search(message):
            return reason
    return None


def _database_with_prism_tables(cluster: Cluster) -> str | None:
    """After a cluster restore, the database that holds Prism's tables (Supabase: postgres)."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
                "ORDER BY datname = 'postgres' DESC, datname"
            )
        ]
    for name in names:
        with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
            if conn.execute("SELECT to_regclass('public.organizations')").fetchone()[0]:
                return name
    return None
