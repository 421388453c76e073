"""Restoring every supported backup format into a real ephemeral PostgreSQL."""

from __future__ import annotations

import gzip
import itertools
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from drills.local.cluster import Cluster, EphemeralPostgres
from drills.local.restore import BackupFormat, dump_source, inspect_backup, restore
from drills.pgbin import inspect_bindir
from infra.errors import BadInput

_targets = itertools.count()

SCHEMA = """
DO $$ BEGIN CREATE ROLE prism_app NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE organizations (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);
CREATE TABLE buildings (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id bigint NOT NULL REFERENCES organizations(id),
    address text NOT NULL
);
ALTER TABLE buildings OWNER TO prism_app;
GRANT SELECT ON buildings TO prism_app;
INSERT INTO organizations (name) SELECT 'org ' || g FROM generate_series(1, 5) g;
INSERT INTO buildings (org_id, address)
    SELECT 1 + g % 5, g || ' Main St' FROM generate_series(1, 500) g;
"""


@pytest.fixture
def source_dsn(fresh_db: str) -> str:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return fresh_db


def _dbname(dsn: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]


def _pg_dump(cluster: Cluster, dsn: str, *args: str) -> None:
    subprocess.run(
        [cluster.tool("pg_dump"), *args, _dbname(dsn)],
        env={**cluster.env(), "TZ": "UTC"},
        check=True,
        capture_output=True,
    )


def _count(dsn: str, table: str = "buildings") -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _target() -> str:
    return f"restored{next(_targets)}"


@pytest.mark.parametrize(
    ("dump_args", "name", "expected_format"),
    [
        (["-Fc"], "prism.dump", BackupFormat.CUSTOM),
        (["-Fd"], "prism.dir", BackupFormat.DIRECTORY),
        (["-Ft"], "prism.tar", BackupFormat.TAR),
    ],
)
def test_archive_formats_restore_cleanly_with_their_creation_time(
    pg_cluster, source_dsn, tmp_path, dump_args, name, expected_format
):
    path = tmp_path / name
    before = datetime.now(UTC).replace(microsecond=0)
    _pg_dump(pg_cluster, source_dsn, *dump_args, f"--file={path}")

    backup = inspect_backup(path, pg_cluster.bindir)
    target = _target()
    outcome = restore(backup, pg_cluster, jobs=2, database=target)

    assert backup.format == expected_format
    assert before - timedelta(seconds=1) <= backup.created_at <= datetime.now(UTC)
    assert outcome.errors == []
    assert outcome.database == target
    assert _count(pg_cluster.dsn(target)) == 500


@pytest.mark.parametrize("gzipped", [False, True])
def test_plain_sql_restores_and_creates_the_roles_it_references(
    pg_cluster, source_dsn, tmp_path, gzipped
):
    path = tmp_path / "prism.sql"
    _pg_dump(pg_cluster, source_dsn, "--verbose", f"--file={path}")
    if gzipped:
        gz = tmp_path / "prism.sql.gz"
        gz.write_bytes(gzip.compress(path.read_bytes()))
        path = gz

    with EphemeralPostgres() as target:  # a new cluster: the role prism_app does not exist
        backup = inspect_backup(path, target.bindir)
        outcome = restore(backup, target, jobs=2)
        restored = _count(target.dsn(outcome.database))
        with psycopg.connect(target.dsn(outcome.database)) as conn:
            owner = conn.execute(
                "SELECT tableowner FROM pg_tables WHERE tablename = 'buildings'"
            ).fetchone()

    assert (backup.format, backup.gzipped) == (BackupFormat.PLAIN, gzipped)
    assert backup.created_at is not None  # from pg_dump --verbose's "Started on"
    assert outcome.errors == []
    assert restored == 500
    assert owner == ("prism_app",)


def test_plain_dump_with_create_restores_into_its_own_database(pg_cluster, source_dsn, tmp_path):
    path = tmp_path / "prism-create.sql"
    _pg_dump(pg_cluster, source_dsn, "--create", f"--file={path}")
    source_db = _dbname(source_dsn)

    with EphemeralPostgres() as target:
        backup = inspect_backup(path, target.bindir)
        outcome = restore(backup, target, jobs=2)
        restored = _count(target.dsn(outcome.database))

    assert backup.creates_database
    assert outcome.errors == []
    assert outcome.database == source_db  # the checks run where the data is
    assert restored == 500


def test_truncated_custom_archive_is_a_failed_restore(pg_cluster, source_dsn, tmp_path):
    path = tmp_path / "prism.dump"
    _pg_dump(pg_cluster, source_dsn, "-Fc", f"--file={path}")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])

    outcome = restore(inspect_backup(path, pg_cluster.bindir), pg_cluster, 2, _target())

    assert outcome.errors, "a truncated archive must not restore silently"


def test_plain_dump_without_its_footer_is_reported_truncated(pg_cluster, source_dsn, tmp_path):
    path = tmp_path / "prism.sql"
    _pg_dump(pg_cluster, source_dsn, f"--file={path}")
    text = path.read_text()
    path.write_text(text[: text.index("-- PostgreSQL database dump complete")])

    outcome = restore(inspect_backup(path, pg_cluster.bindir), pg_cluster, 2, _target())

    assert any("truncated" in error for error in outcome.errors)


def test_unknown_or_missing_backups_are_bad_input(pg_cluster, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(BadInput, match=r"junk\.bin: (unknown backup format|not a readable backup)"):
        inspect_backup(junk, pg_cluster.bindir)
    with pytest.raises(BadInput, match="no such file"):
        inspect_backup(tmp_path / "absent.dump", pg_cluster.bindir)
    empty_dir = tmp_path / "dir"
    empty_dir.mkdir()
    with pytest.raises(BadInput, match=r"toc\.dat"):
        inspect_backup(empty_dir, pg_cluster.bindir)


def test_gzipped_custom_archive_asks_to_decompress(pg_cluster, source_dsn, tmp_path):
    path = tmp_path / "prism.dump"
    _pg_dump(pg_cluster, source_dsn, "-Fc", f"--file={path}")
    gz = tmp_path / "prism.dump.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(BadInput, match="decompress"):
        inspect_backup(gz, pg_cluster.bindir)


def test_dump_source_takes_a_custom_archive_timed_at_its_start(pg_cluster, source_dsn, tmp_path):
    before = datetime.now(UTC)
    backup = dump_source(source_dsn, tmp_path / "source.dump", pg_cluster.bindir)
    assert backup.format == BackupFormat.CUSTOM
    assert before <= backup.created_at <= datetime.now(UTC)
    assert backup.point_source == "dump start"
    major = inspect_bindir(pg_cluster.bindir, "test").major
    assert backup.versions.dumper_major == backup.versions.server_major == major
    assert inspect_backup(backup.path, pg_cluster.bindir).format == BackupFormat.CUSTOM


def test_dump_source_failure_names_the_flag_and_hides_the_password(pg_cluster, tmp_path):
    dsn = f"postgresql://postgres:hunter2secret@127.0.0.1:{pg_cluster.port}/no_such_db"
    with pytest.raises(BadInput) as err:
        dump_source(dsn, tmp_path / "x.dump", pg_cluster.bindir)
    assert str(err.value).startswith("--source-dsn")
    assert "hunter2secret" not in str(err.value)
    assert not (tmp_path / "x.dump").exists()


# -- Supabase-style cluster backups -------------------------------------------------------------

SUPABASE_SOURCE = """
CREATE ROLE anon NOLOGIN; CREATE ROLE authenticated NOLOGIN; CREATE ROLE service_role NOLOGIN;
CREATE ROLE authenticator LOGIN NOINHERIT; CREATE ROLE supabase_admin LOGIN SUPERUSER;
GRANT anon, authenticated, service_role TO authenticator;
"""
SUPABASE_DATA = """
CREATE SCHEMA auth;
CREATE TABLE auth.users (id uuid PRIMARY KEY, email text);
CREATE TABLE public.organizations (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);
INSERT INTO public.organizations (name) SELECT 'org ' || g FROM generate_series(1, 7) g;
GRANT SELECT ON public.organizations TO anon, authenticated;
GRANT ALL ON public.organizations TO service_role;
"""


def _supabase_backup(tmp_path: Path, extra_sql: str = "") -> Path:
    """A pg_dumpall script of a cluster shaped like Supabase's, gzipped as `.backup.gz`."""
    with EphemeralPostgres() as source:
        with psycopg.connect(source.dsn(), autocommit=True) as conn:
            conn.execute(SUPABASE_SOURCE)
            conn.execute(SUPABASE_DATA)
        result = subprocess.run(
            [source.tool("pg_dumpall")], env=source.env(), check=True, capture_output=True,
            text=True,
        )
    footer = "--\n-- PostgreSQL database cluster dump complete"
    script = result.stdout.replace(footer, extra_sql + "\n" + footer)
    path = tmp_path / "db_cluster-23-11-2026@02-00-00.backup.gz"
    path.write_bytes(gzip.compress(script.encode()))
    return path


# A platform extension as pg_dump writes it: its TOC entries, CREATE EXTENSION and the comment.
PLATFORM_EXTENSION = f"""\\connect postgres
--
-- Name: pg_graphql; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS "pg_graphql" WITH SCHEMA "graphql";


--
-- Name: EXTENSION "pg_graphql"; Type: COMMENT; Schema: -; Owner:{' '}
--

COMMENT ON EXTENSION "pg_graphql" IS 'pg_graphql: GraphQL support';
"""


def test_supabase_backup_with_a_platform_extension_restores_with_it_traced(tmp_path):
    path = _supabase_backup(tmp_path, PLATFORM_EXTENSION)
    with EphemeralPostgres() as target:
        outcome = restore(inspect_backup(path), target, jobs=2)
    assert outcome.errors == []
    assert outcome.missing_extensions == ["pg_graphql"]
    assert [line.split(" (ignored")[0] for line in outcome.ignored] == [
        line for line in (
            f"line {n}: {m}" for n, m in (
                (_line_of(path, 'CREATE EXTENSION IF NOT EXISTS "pg_graphql"'),
                 'extension "pg_graphql" is not available'),
                (_line_of(path, 'COMMENT ON EXTENSION "pg_graphql"'),
                 'extension "pg_graphql" does not exist'),
            )
        )
    ]


def _line_of(path: Path, text: str) -> int:
    """The backup's line holding `text` (the record names lines of the backup, not of the
    stream the drill feeds psql, which has lines of its own)."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if line.startswith(text))


def test_supabase_backup_with_an_error_no_missing_extension_explains_fails(tmp_path):
    broken = (
        "\\connect postgres\nCREATE TABLE public.reports (org_id bigint REFERENCES nope(id));\n"
    )
    path = _supabase_backup(tmp_path, broken)
    with EphemeralPostgres() as target:
        outcome = restore(inspect_backup(path, target.bindir), target, jobs=2)

    assert any('relation "nope" does not exist' in error for error in outcome.errors)
