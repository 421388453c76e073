"""pg_dump archives (-Fc, -Fd) of a Supabase project restored on a vanilla PostgreSQL: every
pg_restore error placed in its table-of-contents entry and judged as a plain script's are.

The archives are `pg_dump -Fc` of the Supabase-shaped cluster of
tests/fixtures/supabase_cluster.py (Supabase's own init scripts and migrations, pg_cron jobs,
Vault secrets, a view over cron's history), made by each major's own pg_dump: what
`pg_dump "$SUPABASE_DB_URL" -Fc` gives a Supabase user.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from drills import pgbin
from drills.local import archive
from drills.local.cluster import EphemeralPostgres
from drills.local.restore import BackupFormat, inspect_backup, restore
from drills.verify.model import Status
from tests.fixtures.restoring import passing_quick_drill, restored_as_the_drill_would
from tests.fixtures.supabase_cluster import CRON_JOBS, VAULT_SECRETS, supabase_cluster
from tests.fixtures.uuid_app import dump_uuid_app, restore_without_contrib, wheel_without_contrib

MAJORS = sorted({i.major: pgbin.for_postgres_user(i.bindir) for i in pgbin.discover()}.items())
# (major, format): a custom archive of every major here (directory and tar archives take the
# same path: pg_restore --list and --verbose read them alike).
CASES = [(major, "c") for major, _ in MAJORS]

# A real `pg_restore --list` of such an archive (PostgreSQL 18.6), abridged.
LISTING = """\
;
; Archive created at 2026-12-02 11:03:24 UTC
;     dbname: postgres
;
; Selected TOC Entries:
;
16; 2615 16421 SCHEMA - auth supabase_admin
8; 3079 16651 EXTENSION - pg_cron 
2948; 0 0 COMMENT - EXTENSION pg_cron 
2961; 0 0 COMMENT - EXTENSION "uuid-ossp" 
2972; 0 0 ACL extensions FUNCTION grant_pg_cron_access() postgres
273; 1259 16962 VIEW public cron_job_health supabase_admin
2611; 0 16654 TABLE DATA cron job supabase_admin
2746; 2606 16507 FK CONSTRAINT storage objects objects_bucketId_fkey supabase_storage_admin
3001; 0 0 DEFAULT ACL extensions DEFAULT PRIVILEGES FOR TABLES postgres
2940; 0 0 SEQUENCE SET public invoice_number_seq postgres
"""  # noqa: W291 - pg_restore ends an entry without owner with a space


def test_the_listing_is_read_entry_by_entry() -> None:
    items = {i.dump_id: i for i in archive.parse_toc(LISTING)}
    assert len(items) == 10  # the comment lines are not entries
    assert (items[8].type, items[8].schema, items[8].tag, items[8].owner) == (
        "EXTENSION", "-", "pg_cron", "")  # fmt: skip
    assert (items[2948].type, items[2948].tag) == ("COMMENT", "EXTENSION pg_cron")
    assert items[2961].tag == 'EXTENSION "uuid-ossp"'
    assert (items[2972].type, items[2972].schema, items[2972].tag) == (
        "ACL", "extensions", "FUNCTION grant_pg_cron_access()")  # fmt: skip
    assert (items[2611].type, items[2611].entry.label) == ("TABLE DATA", "cron.job")
    assert (items[2746].type, items[2746].tag, items[2746].owner) == (
        "FK CONSTRAINT", "objects objects_bucketId_fkey", "supabase_storage_admin")  # fmt: skip
    assert (items[3001].type, items[3001].tag) == ("DEFAULT ACL", "DEFAULT PRIVILEGES FOR TABLES")
    assert items[2940].type == "SEQUENCE SET"
    assert items[273].line == "273; 1259 16962 VIEW public cron_job_health supabase_admin"


def test_errors_are_placed_in_the_entry_named_last_even_mid_line() -> None:
    # pg_restore --verbose --jobs=2 as it wrote it: two workers' lines run into each other.
    stderr = """\
pg_restore: connecting to database for restore
pg_restore: creating EXTENSION "pg_cron"
pg_restore: while PROCESSING TOC:
pg_restore: from TOC entry 8; 3079 16651 EXTENSION pg_cron (no owner)
pg_restore: error: could not execute query: ERROR:  extension "pg_cron" is not available
HINT:  The extension must first be installed on the system where PostgreSQL is running.
Command was: CREATE EXTENSION IF NOT EXISTS pg_cron WITH SCHEMA pg_catalog;
pg_restore: processing data for table "public.buildings"
pg_restore: pg_restore: from TOC entry 2689; 1259 16517 INDEX bucketid_objname supabase_storage_admin
pg_restore: error: could not execute query: ERROR:  relation "storage.objects" does not exist
pg_restore: warning: errors ignored on restore: 2
"""  # noqa: E501 - pg_restore's lines as they were
    assert archive.entry_errors(stderr) == [
        (8, 'could not execute query: ERROR:  extension "pg_cron" is not available'),
        (2689, 'could not execute query: ERROR:  relation "storage.objects" does not exist'),
    ]
    # Another worker's line between "error: " and its message (seen in a -j2 restore).
    garbled = """\
pg_restore: from TOC entry 2689; 1259 16517 INDEX bucketid_objname supabase_storage_admin
pg_restore: error: pg_restore: from TOC entry 2690; 1259 16518 INDEX name_prefix_search x
could not execute query: ERROR:  relation "storage.objects" does not exist
Command was: CREATE INDEX name_prefix_search ON storage.objects USING btree (name);
"""
    assert archive.entry_errors(garbled) == [
        (2690, 'could not execute query: ERROR:  relation "storage.objects" does not exist')
    ]
    assert archive.entry_errors("pg_restore: error: could not open input file") == [
        (None, "could not open input file")
    ]
    assert archive.server_message(
        'could not execute query: ERROR:  relation "x.y" does not exist'
    ) == 'relation "x.y" does not exist'


@pytest.fixture(scope="module", params=CASES, ids=[f"pg{m}-F{f}" for m, f in CASES])
def supabase_archive(request, tmp_path_factory) -> Path:
    major, fmt = request.param
    bindir = dict(MAJORS)[major]
    path = tmp_path_factory.mktemp("archive") / ("supabase.dump" if fmt == "c" else "supabase")
    with supabase_cluster(bindir) as cluster:
        subprocess.run(
            [cluster.tool("pg_dump"), f"-F{fmt}", f"--file={path}", "postgres"],
            env=cluster.env(), check=True, capture_output=True,
        )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def restored(supabase_archive):
    with restored_as_the_drill_would(supabase_archive) as restored:
        yield restored


def test_platform_extensions_are_traced_and_nothing_blocks(restored) -> None:
    backup, outcome, _ = restored
    assert backup.format in (BackupFormat.CUSTOM, BackupFormat.DIRECTORY)
    assert outcome.errors == [] and outcome.errors_total == 0
    assert {"pg_graphql", "pg_cron", "pgsodium", "supabase_vault", "pgjwt", "pg_net"} <= set(
        outcome.missing_extensions
    )
    ignored = "\n".join(outcome.ignored)
    assert 'EXTENSION pg_graphql: could not execute query: ERROR:  extension "pg_graphql"' in (
        ignored
    )
    assert "COMMENT EXTENSION pg_graphql:" in ignored and "platform extension pg_graphql" in (
        ignored
    )


def test_platform_data_is_listed_with_its_row_counts(restored) -> None:
    _, outcome, _ = restored
    copies = "\n".join(outcome.ignored_copies)
    assert f"COPY cron.job: {CRON_JOBS} row(s) not restored" in copies
    assert f"COPY vault.secrets: {VAULT_SECRETS} row(s) not restored" in copies
    assert "platform extension pg_cron" in copies


def test_an_application_view_over_pg_cron_is_a_warning_naming_it(restored) -> None:
    _, outcome, _ = restored
    assert outcome.warnings == [
        "application view public.cron_job_health depends on platform extension pg_cron, "
        "not installed here: not restored"
    ]


def test_the_application_data_is_restored(restored) -> None:
    _, outcome, target = restored
    with psycopg.connect(target.dsn(outcome.database)) as conn:
        orgs = conn.execute("SELECT count(*) FROM public.organizations").fetchone()[0]
        invoices = conn.execute("SELECT count(*) FROM public.invoices").fetchone()[0]
    assert orgs > 0 and invoices == orgs


def test_a_drill_of_a_supabase_archive_passes_with_a_warning(supabase_archive, tmp_path) -> None:
    _, checks = passing_quick_drill(supabase_archive, tmp_path / "r")
    assert checks["restore"].status == Status.WARN
    assert "public.cron_job_health" in checks["restore"].detail


def test_a_missing_non_platform_extension_in_an_archive_blocks_with_the_rows_lost(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sample_dump: Path
) -> None:
    wheel_without_contrib()
    needs_uuid = dump_uuid_app(tmp_path / "app.dump", "-Fc")
    seen = _restore_argv(monkeypatch)
    outcome, notes = restore_without_contrib(needs_uuid)
    assert notes == 1
    text = "\n".join(outcome.errors)
    assert "EXTENSION uuid-ossp" in text and "needs extension uuid-ossp" in text
    assert "--pg-bindir" in text
    assert "COPY public.api_keys: 2 row(s) not restored" in text
    assert outcome.ignored_copies == []
    # Parallel workers write into one another's lines: errors to judge need one process,
    # while a clean archive keeps its parallel restore.
    with EphemeralPostgres() as target:
        restore(inspect_backup(sample_dump), target, jobs=2)
    restores = [argv for argv in seen if "--list" not in argv]
    assert len(restores) == 2
    assert not any(a.startswith("--jobs") for a in restores[0])
    assert "--jobs=2" in restores[1]


def test_an_archive_error_no_extension_explains_blocks_naming_its_entry(tmp_path, pg_cluster):
    # `pg_dump -n app` of a schema whose view reads a table outside it: a partial dump.
    path = tmp_path / "app-only.dump"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE archive_src")
    try:
        with psycopg.connect(pg_cluster.dsn("archive_src"), autocommit=True) as conn:
            conn.execute("CREATE TABLE public.t (id int PRIMARY KEY)")
            conn.execute("CREATE SCHEMA app")
            conn.execute("CREATE TABLE app.kept (id int PRIMARY KEY)")
            conn.execute("INSERT INTO app.kept VALUES (1), (2)")
            conn.execute("CREATE VIEW app.v AS SELECT id FROM public.t")
        subprocess.run(
            [pg_cluster.tool("pg_dump"), "-Fc", "-n", "app", f"--file={path}", "archive_src"],
            env=pg_cluster.env(), check=True,
        )  # fmt: skip
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            conn.execute("DROP DATABASE archive_src")
    with EphemeralPostgres(bindir=pg_cluster.bindir) as target:
        outcome = restore(inspect_backup(path), target, jobs=2)
    assert outcome.errors == [
        'VIEW app.v: could not execute query: ERROR:  relation "public.t" does not exist'
    ]
    assert outcome.ignored == [] and outcome.warnings == [] and outcome.missing_extensions == []


def _restore_argv(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the argv of every pg_restore the drill runs."""
    import drills.local.restore

    seen: list[list[str]] = []
    real = drills.local.restore.subprocess.run

    def run(argv, *args, **kwargs):
        if Path(argv[0]).name == "pg_restore":
            seen.append(list(argv))
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(drills.local.restore.subprocess, "run", run)
    return seen

