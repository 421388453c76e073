"""The sample Prism database: consistent, org-scoped, recent, deterministic, scalable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from drills.local.sample import HISTORY_DAYS, MIGRATION_HEAD, build_sample

NOW = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC)
ORG_SCOPED = ["memberships", "buildings", "comps", "tims", "reports", "exports", "audit_logs"]
TABLES = ["organizations", *ORG_SCOPED]


def _make_db(pg_cluster, name: str) -> str:
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_cluster.dsn(name)


@pytest.fixture(scope="module")
def sample(pg_cluster):
    """One build shared by the tests that only read it: (dsn, counts)."""
    dsn = _make_db(pg_cluster, "sample_shared")
    counts = build_sample(dsn, scale=0.2, now=NOW)
    yield dsn, counts
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "sample_shared" WITH (FORCE)')


@pytest.fixture
def own_sample(fresh_db):
    """A build of its own, for a test that changes it."""
    return fresh_db, build_sample(fresh_db, scale=0.2, now=NOW)


def test_counts_are_what_populate_reports(sample):
    dsn, counts = sample
    assert set(counts) == set(TABLES)
    with psycopg.connect(dsn) as conn:
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == counts[table]
    assert counts["organizations"] >= 3


def test_every_org_has_rows_in_every_org_scoped_table(sample):
    dsn, counts = sample
    with psycopg.connect(dsn) as conn:
        for table in ORG_SCOPED:
            orgs = conn.execute(f"SELECT count(DISTINCT org_id) FROM {table}").fetchone()[0]
            assert orgs == counts["organizations"], table


def test_every_foreign_key_holds(own_sample):
    dsn, _ = own_sample
    with psycopg.connect(dsn) as conn:
        fks = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f'").fetchall()
        assert len(fks) >= 12
        # Re-adding a constraint validates every row (the build skipped the FK triggers).
        for table, name, definition in fks:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")


@pytest.mark.parametrize(
    ("child", "parent", "column"),
    [("comps", "buildings", "building_id"), ("tims", "buildings", "building_id"),
     ("tims", "comps", "comp_id"), ("reports", "buildings", "building_id"),
     ("exports", "reports", "report_id")],
)
def test_references_stay_within_the_org(sample, child, parent, column):
    dsn, _ = sample
    with psycopg.connect(dsn) as conn:
        crossing = conn.execute(
            f"SELECT count(*) FROM {child} c JOIN {parent} p ON p.id = c.{column} "
            "WHERE p.org_id <> c.org_id").fetchone()[0]
        linked = conn.execute(f"SELECT count({column}) FROM {child}").fetchone()[0]
    assert crossing == 0 and linked > 0


def test_timestamps_span_the_history_and_audit_logs_reach_now(sample):
    dsn, _ = sample
    earliest = NOW - timedelta(days=HISTORY_DAYS)
    with psycopg.connect(dsn) as conn:
        for table in ORG_SCOPED:
            low, high = conn.execute(f"SELECT min(created_at), max(created_at) FROM {table}"
                                     ).fetchone()
            assert earliest <= low < earliest + timedelta(days=10), table
            assert NOW - timedelta(days=5) < high <= NOW, table
        newest = conn.execute("SELECT max(created_at) FROM audit_logs").fetchone()[0]
        updated_early = conn.execute(
            "SELECT count(*) FROM buildings WHERE updated_at < created_at").fetchone()[0]
    assert NOW - timedelta(minutes=5) <= newest <= NOW
    assert updated_early == 0


def test_migration_head_and_sequences_are_ready_for_new_rows(own_sample):
    dsn, _ = own_sample
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT version, dirty FROM schema_migrations").fetchall() == [
            (MIGRATION_HEAD, False)]
        sequences = conn.execute(
            "SELECT count(*) FROM pg_depend WHERE deptype IN ('a', 'i') "
            "AND classid = 'pg_class'::regclass AND objid IN "
            "(SELECT oid FROM pg_class WHERE relkind = 'S')").fetchone()[0]
        assert sequences == 7
        # A row inserted the way the API does it gets a fresh id, no collision.
        conn.execute("INSERT INTO buildings (org_id, name, address, city, state, submarket, "
                     "building_class, rentable_sf, year_built) "
                     "VALUES (1, 'N', 'A', 'C', 'NY', 'S', 'A', 1, 2000)")
        conn.execute("INSERT INTO audit_logs (action, entity_type) VALUES ('create', 'building')")


def _fingerprint(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(f"SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) "
                                f"FROM {t} x").fetchone()[0] for t in TABLES}


def test_same_seed_same_database_other_seed_other_data(pg_cluster):
    first, second, other = (_make_db(pg_cluster, n) for n in ("sample_a", "sample_b", "sample_c"))
    try:
        build_sample(first, scale=0.1, now=NOW)
        build_sample(second, scale=0.1, now=NOW)
        build_sample(other, scale=0.1, now=NOW, seed=8)
        assert _fingerprint(first) == _fingerprint(second)
        differing = {t for t, digest in _fingerprint(other).items()
                     if digest != _fingerprint(first)[t]}
        assert differing >= {"buildings", "comps", "tims", "reports", "exports", "audit_logs"}
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            for name in ("sample_a", "sample_b", "sample_c"):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_rows_grow_with_scale(fresh_db):
    counts = build_sample(fresh_db, scale=0.4, now=NOW)
    assert counts["comps"] == 3200 and counts["audit_logs"] == 8000
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM comps").fetchone()[0] == 3200


def test_scale_must_be_positive(fresh_db):
    with pytest.raises(ValueError, match="scale must be positive"):
        build_sample(fresh_db, scale=0)
