"""Each defect of a restored database fails the check that names it, and only that check."""

from __future__ import annotations

import os
from datetime import timedelta

import psycopg
import pytest

from drills.ports import free_port
from drills.verify import Status, Tier, verify
from drills.verify.catalog import discover
from tests.drills.verify.conftest import (
    BACKUP_POINT,
    NO_INPUT_SKIPS,
    assert_only,
    make_target,
    run_checks,
    run_sql,
)


def test_missing_table_fails_tables(restored, manifest):
    run_sql(restored, "DROP TABLE exports")
    results = run_checks(restored, manifest)
    assert_only(results, {"tables"})
    assert "exports" in results["tables"].detail
    assert "7 of 8" in results["tables"].detail


@pytest.mark.parametrize("tier", [Tier.QUICK, Tier.STANDARD])
def test_empty_table_fails_row_counts(restored, manifest, tier):
    run_sql(restored, "DELETE FROM tims")
    results = run_checks(restored, manifest, tier)
    assert_only(results, {"row_counts"})
    assert results["row_counts"].detail == "tims is empty"


def test_table_below_its_manifest_minimum_fails_row_counts(restored, manifest):
    with psycopg.connect(restored) as conn:
        orgs = conn.execute("SELECT count(*) FROM organizations").fetchone()[0]
    tables = {**manifest.tables, "organizations": {"min_rows": orgs + 1}}
    strict = manifest.model_validate({**manifest.model_dump(), "tables": tables})
    for tier in (Tier.QUICK, Tier.STANDARD):
        results = run_checks(restored, strict, tier)
        assert_only(results, {"row_counts"})
        assert f"fewer than the expected {orgs + 1}" in results["row_counts"].detail


@pytest.mark.parametrize("tier", [Tier.QUICK, Tier.STANDARD])
def test_stale_audit_logs_fail_freshness(restored, manifest, tier):
    run_sql(restored, "UPDATE audit_logs SET created_at = created_at - interval '3 days'")
    results = run_checks(restored, manifest, tier)
    assert_only(results, {"freshness"})
    detail = results["freshness"].detail
    assert detail.startswith("stale: newest audit_logs.created_at 3d before the backup point")
    assert "max 1d" in detail


def test_freshness_measures_against_the_manifest_staleness(restored, manifest):
    run_sql(restored, "UPDATE audit_logs SET created_at = created_at - interval '2 hours'")
    assert run_checks(restored, manifest)["freshness"].status == Status.PASS
    strict = manifest.model_copy(
        update={"freshness": manifest.freshness.model_copy(
            update={"max_staleness": timedelta(hours=1)})})
    results = run_checks(restored, strict)
    assert_only(results, {"freshness"})


def test_missed_rpo_target_fails_freshness(restored, manifest):
    results = run_checks(restored, manifest, drill_started=BACKUP_POINT + timedelta(hours=30))
    assert_only(results, {"freshness"})
    assert "achieved RPO 1d 6h vs target 24h" in results["freshness"].detail


def test_orphans_behind_a_not_valid_foreign_key_fail_org_scoping(restored, manifest):
    run_sql(
        restored,
        "ALTER TABLE buildings DROP CONSTRAINT buildings_org_id_fkey",
        "UPDATE buildings SET org_id = 999 WHERE id IN (5, 6, 7)",
        "ALTER TABLE buildings ADD CONSTRAINT buildings_org_id_fkey FOREIGN KEY (org_id) "
        "REFERENCES organizations (id) NOT VALID",
    )
    results = run_checks(restored, manifest)
    # The NOT VALID constraint is a finding of its own; the orphans are org scoping's.
    assert_only(results, {"org_scoping", "constraints"})
    assert results["org_scoping"].detail.startswith(
        "buildings.org_id: 3 row(s) reference a missing organization (e.g. 999")
    assert "buildings.buildings_org_id_fkey" in results["constraints"].detail


def test_orphans_behind_a_valid_but_bypassed_foreign_key_fail_org_scoping(restored, manifest):
    # Replica mode skips foreign key triggers, as a careless data load might.
    with psycopg.connect(restored) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE comps SET org_id = 4242 WHERE id = 10")
    results = run_checks(restored, manifest)
    assert_only(results, {"org_scoping"})
    assert "comps.org_id: 1 row(s)" in results["org_scoping"].detail
    assert "foreign key comps_org_id_fkey" in results["org_scoping"].detail


def test_orphans_in_an_org_column_without_foreign_key_are_found_by_name(restored, manifest):
    run_sql(restored, "ALTER TABLE exports DROP CONSTRAINT exports_org_id_fkey",
            "UPDATE exports SET org_id = 77 WHERE id <= 4")
    results = run_checks(restored, manifest)
    assert_only(results, {"org_scoping"})
    assert "exports.org_id: 4 row(s)" in results["org_scoping"].detail
    assert "by name" in results["org_scoping"].detail


def test_a_dropped_organizations_table_fails_org_scoping_as_well_as_tables(restored, manifest):
    run_sql(restored, "DROP TABLE organizations CASCADE")  # the foreign keys to it go too
    results = run_checks(restored, manifest)
    assert_only(results, {"tables", "org_scoping"})
    assert results["org_scoping"].detail == (
        "organizations table organizations missing: org scoping cannot hold")


def test_without_an_expected_organizations_table_org_scoping_is_skipped(restored, manifest):
    # A database the manifest expects no organizations table in is not multi-tenant.
    run_sql(restored, "DROP TABLE organizations CASCADE")
    dumped = manifest.model_dump()
    tables = {name: spec for name, spec in dumped["tables"].items() if name != "organizations"}
    unscoped = manifest.model_validate({**dumped, "tables": tables})
    results = run_checks(restored, unscoped)
    org_scoping = results["org_scoping"]
    assert (org_scoping.status, org_scoping.detail) == (
        Status.SKIP, "no organizations table, so nothing is org-scoped")
    assert_only(results, set(), skips=NO_INPUT_SKIPS | {"org_scoping"})


def test_not_valid_constraint_alone_fails_constraints(restored, manifest):
    run_sql(restored, "ALTER TABLE comps ADD CONSTRAINT comps_sf_positive "
                      "CHECK (square_feet > 0) NOT VALID")
    results = run_checks(restored, manifest, Tier.QUICK)
    assert_only(results, {"constraints"})
    assert "comps.comps_sf_positive" in results["constraints"].detail


def test_invalid_index_from_a_failed_concurrent_build_fails_indexes(restored, manifest):
    with (psycopg.connect(restored, autocommit=True) as conn,
          pytest.raises(psycopg.errors.UniqueViolation)):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY buildings_city_key ON buildings (city)")
    results = run_checks(restored, manifest, Tier.QUICK)
    assert_only(results, {"indexes"})
    assert results["indexes"].detail == "1 invalid index(es): buildings_city_key on buildings"


@pytest.mark.parametrize("tier", [Tier.QUICK, Tier.STANDARD])
def test_sequence_behind_its_column_fails_sequences(restored, manifest, tier):
    run_sql(restored, "SELECT setval('buildings_id_seq', 100)")
    results = run_checks(restored, manifest, tier)
    assert_only(results, {"sequences"})
    assert results["sequences"].detail.startswith(
        "1 sequence(s) behind their column: buildings.id next value 101 but max(id) is 1000")


def test_identity_sequence_never_called_is_checked_too(restored, manifest):
    run_sql(restored, "ALTER TABLE audit_logs ALTER COLUMN id RESTART WITH 5")
    results = run_checks(restored, manifest, Tier.QUICK)
    assert_only(results, {"sequences"})
    assert "audit_logs.id next value 5" in results["sequences"].detail


def test_a_sequence_used_only_by_a_column_default_is_checked(restored, manifest):
    # Hand-written DDL: the sequence is not OWNED BY the column, only named by its DEFAULT.
    run_sql(
        restored,
        "CREATE SEQUENCE invoice_no",
        "CREATE TABLE invoices (no bigint PRIMARY KEY DEFAULT nextval('invoice_no'), "
        "org_id bigint REFERENCES organizations (id))",
        "INSERT INTO invoices (org_id) SELECT id FROM organizations",
        "SELECT setval('invoice_no', 1)",  # a dump that lost its setval
    )
    results = run_checks(restored, manifest, Tier.QUICK)
    assert_only(results, {"sequences"})
    assert "invoices.no next value 2" in results["sequences"].detail


def test_a_serial_column_is_listed_once_though_its_default_names_it_too(restored, manifest):
    with psycopg.connect(restored) as conn:
        catalog = discover(conn, manifest)
    labels = [seq.label for seq in catalog.sequences]
    assert "buildings.id" in labels
    assert len(labels) == len(set(labels))


def test_restore_errors_fail_restore_without_leaking_a_password(restored, manifest):
    password = psycopg.conninfo.conninfo_to_dict(restored)["password"]
    errors = [f"pg_restore: error: could not execute query (connection {restored})",
              "pg_restore: error: relation \"x\" does not exist"]
    results = run_checks(restored, manifest, restore_errors=errors)
    assert_only(results, {"restore"})
    detail = results["restore"].detail
    assert detail.startswith("2 restore errors; first: pg_restore: error: could not execute")
    assert password not in detail


def test_dirty_migration_fails_migrations(restored, manifest):
    run_sql(restored, "UPDATE schema_migrations SET dirty = true")
    results = run_checks(restored, manifest, Tier.QUICK)
    assert_only(results, {"migrations"})
    assert "migration 42 is dirty" in results["migrations"].detail


def test_migration_head_below_the_minimum_fails_migrations(restored, manifest):
    newer = manifest.model_copy(
        update={"migrations": manifest.migrations.model_copy(update={"min_version": 43})})
    results = run_checks(restored, newer, Tier.QUICK)
    assert_only(results, {"migrations"})
    assert results["migrations"].detail == "schema_migrations head 42 is below the expected 43"


def test_migrations_skip_without_a_table_and_fail_when_one_is_configured(restored, manifest):
    run_sql(restored, "DROP TABLE schema_migrations")
    assert run_checks(restored, manifest, Tier.QUICK)["migrations"].detail == (
        "migration table schema_migrations missing")
    unconfigured = manifest.model_copy(
        update={"migrations": manifest.migrations.model_copy(
            update={"table": None, "column": None, "min_version": None})})
    results = run_checks(restored, unconfigured, Tier.QUICK)
    assert results["migrations"].status == Status.SKIP
    assert_only(results, set(), skips=frozenset({"migrations", "app_health", "app_ready",
                                                 "degraded_mode"}))


def test_unreachable_database_fails_every_database_check_without_raising(restored, manifest):
    port = psycopg.conninfo.conninfo_to_dict(restored)["port"]
    wrong = restored.replace(f":{port}/", f":{free_port()}/")  # nothing listens there
    password = psycopg.conninfo.conninfo_to_dict(restored)["password"]
    results = verify(make_target(wrong), manifest, Tier.STANDARD)
    by = {r.name: r for r in results}
    assert by["restore"].status == Status.PASS
    for name in ("tables", "migrations", "indexes", "constraints", "sequences", "row_counts",
                 "spot_checks", "org_scoping", "freshness"):
        assert by[name].status == Status.FAIL, name
        assert by[name].detail.startswith("cannot connect to the restored database"), name
        assert password not in by[name].detail


def test_a_configured_migration_column_that_does_not_exist_fails_naming_it(restored, manifest):
    # Another column's maximum (here `version`) would be a guess at the migration head.
    misnamed = manifest.model_copy(
        update={"migrations": manifest.migrations.model_copy(update={"column": "version_id"})})
    results = run_checks(restored, misnamed, Tier.QUICK)
    assert_only(results, {"migrations"})
    assert results["migrations"].detail == (
        "schema_migrations has no column version_id, the migrations.column configured in the "
        "manifest")


def test_an_unconfigured_migration_column_is_still_found_by_name(restored, manifest):
    unconfigured = manifest.model_copy(
        update={"migrations": manifest.migrations.model_copy(update={"column": None})})
    results = run_checks(restored, unconfigured, Tier.QUICK)
    assert results["migrations"].detail == "schema_migrations head 42 >= expected 1"


def test_a_table_the_drills_role_cannot_read_fails_the_check_naming_the_error(
    restored, manifest
):
    """A restore whose grants did not come back (pg_restore --no-acl, another owner): the
    check that reads the table fails with the server's words; the others still run."""
    role = f"drill_reader_{os.getpid()}"
    run_sql(restored, f"CREATE ROLE {role} LOGIN PASSWORD 'reader-pw'",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
            f"REVOKE SELECT ON buildings FROM {role}")
    params = psycopg.conninfo.conninfo_to_dict(restored)
    reader = psycopg.conninfo.make_conninfo(**{**params, "user": role, "password": "reader-pw"})
    try:
        results = run_checks(reader, manifest, Tier.QUICK)
    finally:
        run_sql(restored, f"DROP OWNED BY {role}", f"DROP ROLE {role}")
    row_counts = results["row_counts"]
    assert (row_counts.status, row_counts.detail) == (
        Status.FAIL, "query failed: permission denied for table buildings")
    assert results["tables"].status is Status.PASS
