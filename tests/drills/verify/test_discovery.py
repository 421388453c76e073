"""Discovery from the catalog: Prism's tables with other column names still verify."""

from __future__ import annotations

import psycopg
import pytest

from drills.verify import Manifest, Status, Tier
from drills.verify.catalog import discover
from tests.drills.verify.conftest import NOW, assert_only, run_checks, run_sql

# Same tables, different conventions: uuid and composite keys, a differently named org foreign
# key, an org column with no foreign key at all, timestamps without time zone.
OTHER_SCHEMA = """
CREATE TABLE organizations (org_uuid uuid PRIMARY KEY, title text NOT NULL);
CREATE TABLE buildings (
    building_key uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    inserted_at timestamp NOT NULL
);
CREATE TABLE comps (
    owner uuid NOT NULL REFERENCES organizations (org_uuid),
    building_key uuid NOT NULL REFERENCES buildings (building_key),
    seq int NOT NULL,
    PRIMARY KEY (building_key, seq)
);
CREATE TABLE audit_logs (
    event_id bigserial PRIMARY KEY,
    tenant uuid REFERENCES organizations (org_uuid),
    occurred_at timestamptz NOT NULL
);
CREATE INDEX ON audit_logs (occurred_at);
"""

POPULATE = f"""
INSERT INTO organizations SELECT md5('o' || g)::uuid, 'Org ' || g FROM generate_series(1, 3) g;
INSERT INTO buildings
SELECT md5('b' || g)::uuid, md5('o' || (1 + g % 3))::uuid,
       '{NOW:%Y-%m-%d %H:%M:%S}'::timestamp - g * interval '1 hour'
FROM generate_series(1, 300) g;
INSERT INTO comps SELECT md5('o' || (1 + g % 3))::uuid, md5('b' || g)::uuid, s
FROM generate_series(1, 300) g, generate_series(1, 3) s;
INSERT INTO audit_logs (tenant, occurred_at)
SELECT md5('o' || (1 + g % 3))::uuid, '{NOW.isoformat()}'::timestamptz - g * interval '1 minute'
FROM generate_series(1, 2000) g;
ANALYZE;
"""


@pytest.fixture
def other_db(fresh_db):
    run_sql(fresh_db, OTHER_SCHEMA, POPULATE)
    return fresh_db


@pytest.fixture
def other_manifest() -> Manifest:
    return Manifest(tables={name: {} for name in ("organizations", "buildings", "comps",
                                                   "audit_logs")})


def test_catalog_finds_keys_org_columns_and_timestamps(other_db, other_manifest):
    with psycopg.connect(other_db) as conn:
        catalog = discover(conn, other_manifest)
    buildings, comps, audit = (catalog.find(n) for n in ("buildings", "comps", "audit_logs"))
    assert catalog.org_table.key == ("org_uuid",)
    assert buildings.key == ("building_key",) and comps.key == ("building_key", "seq")
    assert [(o.column, o.org_key, o.how) for o in buildings.org_columns] == [
        ("organization_id", "org_uuid", "by name")]
    assert [(o.column, o.how) for o in comps.org_columns] == [
        ("owner", "foreign key comps_owner_fkey")]
    assert buildings.created_column == "inserted_at"
    assert audit.newest_column == "occurred_at" and "occurred_at" in audit.leading_index_columns
    assert [(s.table.name, s.column) for s in catalog.sequences] == [("audit_logs", "event_id")]


@pytest.mark.parametrize("tier", [Tier.QUICK, Tier.STANDARD])
def test_a_database_with_other_column_names_verifies_clean(other_db, other_manifest, tier):
    results = run_checks(other_db, other_manifest, tier)
    assert_only(results, set(), skips=frozenset(
        {"migrations", "org_counts", "app_health", "app_ready", "degraded_mode"}))
    assert results["migrations"].status == Status.SKIP
    assert "audit_logs.occurred_at" in results["freshness"].detail


def test_orphans_are_found_through_discovered_org_columns(other_db, other_manifest):
    with psycopg.connect(other_db) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE comps SET owner = md5('gone')::uuid WHERE seq = 1")
        conn.execute("UPDATE buildings SET organization_id = md5('gone')::uuid "
                     "WHERE building_key = md5('b1')::uuid")
    detail = run_checks(other_db, other_manifest)["org_scoping"].detail
    assert detail.startswith("buildings.organization_id: 1 row(s) reference a missing "
                             "organization")
    assert detail.endswith("1 more column(s)")


def test_lost_rows_are_found_per_org_through_a_foreign_key_named_otherwise(
    other_db, other_manifest, pg_cluster
):
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        name = psycopg.conninfo.conninfo_to_dict(other_db)["dbname"]
        conn.execute(f'CREATE DATABASE "{name}_copy" TEMPLATE "{name}"')
    copy = pg_cluster.dsn(f"{name}_copy")
    try:
        run_sql(copy, "DELETE FROM comps WHERE owner = md5('o2')::uuid AND seq = 3")
        results = run_checks(copy, other_manifest, source_dsn=other_db)
        # comps has no timestamp: the difference cannot be dated, so it warns.
        assert results["org_counts"].status == Status.WARN
        assert results["org_counts"].detail.startswith("comps: org ")
        with psycopg.connect(copy) as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute("DELETE FROM buildings WHERE organization_id = md5('o1')::uuid")
        detail = run_checks(copy, other_manifest, source_dsn=other_db)["org_counts"].detail
        assert detail.startswith("buildings: org ")
        assert "has 0 row(s) created before the backup point, the source 100" in detail
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}_copy" WITH (FORCE)')


def test_quick_freshness_without_an_index_warns_instead_of_scanning(other_db, other_manifest):
    run_sql(other_db, "DROP INDEX audit_logs_occurred_at_idx")
    results = run_checks(other_db, other_manifest, Tier.QUICK)
    assert results["freshness"].status == Status.WARN
    assert "has no index" in results["freshness"].detail
    assert run_checks(other_db, other_manifest, Tier.STANDARD)["freshness"].status == Status.PASS
