"""Supabase daily backups as Supabase writes them, drilled on a vanilla PostgreSQL.

The backup is a `pg_dumpall --quote-all-identifiers` of a cluster built from Supabase's own
init scripts and migrations (tests/fixtures/supabase_cluster.py), with pg_cron jobs, Vault
secrets and an application view over cron's history. The restore side has none of Supabase's
platform extensions (nor, in the wheel's PostgreSQL 18, pgcrypto and uuid-ossp).
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from drills import pgbin
from drills.local.restore import (
    BackupFormat,
    inspect_backup,
    supabase_backup_time,
)
from drills.local.supabase import Kind, ScriptTrace
from drills.verify.model import Status
from tests.fixtures.restoring import passing_quick_drill, restored_as_the_drill_would
from tests.fixtures.supabase_cluster import CRON_JOBS, VAULT_SECRETS, dump_cluster, supabase_cluster
from tests.fixtures.uuid_app import dump_uuid_app, restore_without_contrib, wheel_without_contrib

TAKEN = datetime.now(UTC).replace(microsecond=0)  # the sample's rows are a moment old
# Supabase runs PostgreSQL 15 and 17: the machine's own major (Debian 12: 15) and the wheel's 18.
MAJORS = sorted({i.major: pgbin.for_postgres_user(i.bindir) for i in pgbin.discover()}.items())


@pytest.fixture(scope="module", params=[major for major, _ in MAJORS],
                ids=[f"pg{major}" for major, _ in MAJORS])
def supabase_backup(request, tmp_path_factory) -> Path:
    """The backup of a Supabase-shaped cluster of this major, dumped by its own pg_dumpall."""
    bindir = dict(MAJORS)[request.param]
    with supabase_cluster(bindir) as cluster:
        return dump_cluster(cluster, tmp_path_factory.mktemp("supabase"), TAKEN)


@pytest.fixture(scope="module")
def restored(supabase_backup):
    """The backup restored once by the binaries the drill picks, kept for the module's tests."""
    with restored_as_the_drill_would(supabase_backup) as restored:
        yield restored


def test_the_fixture_carries_what_a_real_supabase_dump_carries(supabase_backup):
    script = gzip.decompress(supabase_backup.read_bytes()).decode()
    for line in (
        'CREATE EXTENSION IF NOT EXISTS "pg_graphql" WITH SCHEMA "graphql";',
        "COMMENT ON EXTENSION \"pg_graphql\" IS 'pg_graphql: GraphQL support';",
        'CREATE EXTENSION IF NOT EXISTS "pg_cron" WITH SCHEMA "pg_catalog";',
        'ALTER ROLE "postgres" WITH NOSUPERUSER',
        'COPY "cron"."job" (',
        'COPY "vault"."secrets" (',
        'GRANT "anon" TO "authenticator"',  # 16+: "… WITH INHERIT FALSE GRANTED BY …"
    ):
        assert line in script, line


def test_platform_extensions_are_traced_and_the_restore_has_no_blocking_error(restored):
    backup, outcome, _ = restored
    assert (backup.format, backup.supabase) == (BackupFormat.CLUSTER, True)
    assert outcome.errors == [] and outcome.errors_total == 0
    assert {"pg_graphql", "pg_cron", "pgsodium", "supabase_vault", "pgjwt", "pg_net"} <= set(
        outcome.missing_extensions
    )
    comment = [i for i in outcome.ignored if 'extension "pg_graphql" does not exist' in i]
    assert comment and "platform extension pg_graphql" in comment[0]
    assert any('schema "net" does not exist' in i and "pg_net" in i for i in outcome.ignored)


def test_platform_data_blocks_are_skipped_and_listed_with_row_counts(restored):
    _, outcome, _ = restored
    copies = "\n".join(outcome.ignored_copies)
    assert f"COPY cron.job in database postgres: {CRON_JOBS} row(s)" in copies
    assert f"COPY vault.secrets in database postgres: {VAULT_SECRETS} row(s)" in copies
    # psql never ran a data row as SQL
    assert not any("syntax error" in line for line in outcome.ignored + outcome.errors)


def test_an_application_view_over_pg_cron_is_a_warning_naming_it(restored):
    _, outcome, _ = restored
    assert outcome.warnings == [
        "application view public.cron_job_health depends on platform extension pg_cron, "
        "not installed here: not restored"
    ]


def test_the_dumps_own_postgres_role_cannot_lock_the_drill_out(restored):
    _, outcome, target = restored
    assert target.user.startswith("prism_drill_")
    with psycopg.connect(target.dsn(outcome.database)) as conn:
        postgres = conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'"
        ).fetchone()
        anon_reads = conn.execute(
            "SELECT has_table_privilege('anon', 'public.organizations', 'SELECT')"
        ).fetchone()[0]
        members = conn.execute(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member "
            "WHERE r.rolname = 'anon' AND u.rolname = 'authenticator'"
        ).fetchone()[0]
        orgs = conn.execute("SELECT count(*) FROM public.organizations").fetchone()[0]
    assert postgres == (False,)  # the dump's ALTER ROLE "postgres" WITH NOSUPERUSER ran
    assert anon_reads and members == 1 and orgs > 0


def test_the_supabase_file_name_gives_the_backup_point(supabase_backup):
    backup = inspect_backup(supabase_backup)
    assert backup.created_at == TAKEN
    assert backup.point_source == "file name (Supabase backup, UTC)"
    assert supabase_backup_time("db_cluster-31-02-2026@02-00-00.backup.gz") is None
    assert supabase_backup_time("db_cluster-23-11-2026@02-00-00.sql") is None


def test_a_supabase_backup_drill_passes_with_a_warning_and_no_point_flag(supabase_backup, tmp_path):
    outcome, checks = passing_quick_drill(supabase_backup, tmp_path / "r")
    assert checks["restore"].status == Status.WARN
    assert "public.cron_job_health" in checks["restore"].detail
    assert outcome.record.backup_point == TAKEN


# -- a missing extension that is not the platform's, and application tables ---------------------

@pytest.fixture(scope="module")
def uuid_dump(tmp_path_factory) -> Path:
    """A vanilla pg_dump script of a database using uuid-ossp, which the wheel lacks."""
    wheel_without_contrib()
    return dump_uuid_app(tmp_path_factory.mktemp("uuid") / "app.sql")


def test_a_missing_non_platform_extension_blocks_and_says_how_to_get_it(uuid_dump):
    outcome, notes = restore_without_contrib(uuid_dump)
    assert notes == 1
    text = "\n".join(outcome.errors)
    assert "needs extension uuid-ossp" in text and "--pg-bindir" in text
    assert "COPY public.api_keys" in text and "2 row(s) not restored" in text
    assert not any("syntax error" in e or "invalid input syntax" in e for e in outcome.errors)


def _trace(platform: bool) -> ScriptTrace:
    trace = ScriptTrace(frozenset({"plpgsql"}), platform=platform, database="postgres")
    lines = [
        b"-- Name: pg_cron; Type: EXTENSION; Schema: -; Owner: -",
        b'CREATE EXTENSION IF NOT EXISTS "pg_cron" WITH SCHEMA "pg_catalog";',
        b"-- Name: jobs; Type: TABLE; Schema: public; Owner: postgres",
        b"CREATE TABLE public.jobs (id bigint DEFAULT cron.schedule('x', 'y', 'z'));",
        b"-- Name: TABLE jobs; Type: ACL; Schema: public; Owner: postgres",
        b"GRANT ALL ON TABLE public.jobs TO anon;",
        b"-- Name: widgets; Type: TABLE; Schema: public; Owner: postgres",
        b"CREATE TABLE public.widgets (id int REFERENCES nowhere(id));",
    ]
    for number, line in enumerate(lines, start=1):
        trace.note(number, line)
    return trace


def test_an_application_table_on_a_platform_extension_blocks_and_its_dependents_follow():
    trace = _trace(platform=True)
    table = trace.judge(4, "function cron.schedule(unknown, unknown, unknown) does not exist")
    acl = trace.judge(6, 'relation "public.jobs" does not exist')
    other = trace.judge(8, 'relation "nowhere" does not exist')
    assert table.kind == Kind.BLOCKING and "public.jobs" in table.reason
    assert "rows are not restored" in table.reason
    assert acl.kind == Kind.IGNORED and "public.jobs" in acl.reason  # reported once, above
    assert other is None  # not explained by a missing extension: blocking as it is


def test_without_the_platform_flag_a_missing_pg_cron_is_not_waved_through():
    trace = _trace(platform=False)
    verdict = trace.judge(2, 'extension "pg_cron" is not available')
    assert verdict.kind == Kind.BLOCKING and "needs extension pg_cron" in verdict.reason


def test_point_from_file_name_is_not_used_when_the_script_has_its_own(tmp_path):
    path = tmp_path / "db_cluster-23-11-2026@02-00-00.backup.gz"
    script = ("--\n-- PostgreSQL database cluster dump\n--\n-- Started on 2026-11-23 01:59:58 UTC\n"
              "SET client_encoding = 'UTF8';\n")
    path.write_bytes(gzip.compress(script.encode()))
    backup = inspect_backup(path)
    assert backup.created_at == datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC) - timedelta(seconds=2)
    assert backup.point_source.startswith("script header")
