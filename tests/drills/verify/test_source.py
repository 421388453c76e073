"""Comparisons with the live source: lost rows fail; rows that moved on since the backup don't."""

from __future__ import annotations

import time

import psycopg
import pytest

from drills.ports import free_port
from drills.verify import Status, Tier, context
from drills.verify.context import connect_source
from tests.drills.verify.conftest import BACKUP_POINT, assert_only, failing, run_checks, run_sql

APP_SKIPS = frozenset({"app_health", "app_ready", "degraded_mode"})


@pytest.fixture
def pair(samples):
    """(source, restored): two identical copies of the sample."""
    return samples.copy(), samples.copy()


def test_one_orgs_lost_buildings_fail_org_counts(pair, manifest):
    source, restored = pair
    # A lossy restore drops rows without running cascades, hence replica mode.
    with psycopg.connect(restored) as conn:
        conn.execute("SET session_replication_role = replica")
        lost = conn.execute("DELETE FROM buildings WHERE org_id = 3").rowcount
    assert lost > 0
    results = run_checks(restored, manifest, Tier.STANDARD, source_dsn=source)
    assert_only(results, {"org_counts"}, skips=APP_SKIPS)
    assert results["org_counts"].detail == (
        f"buildings: org 3 has 0 row(s) created before the backup point, the source {lost}")


def test_org_counts_skip_without_a_source_and_are_not_in_the_quick_tier(restored, manifest):
    org_counts = run_checks(restored, manifest, Tier.STANDARD)["org_counts"]
    assert (org_counts.status, org_counts.detail) == (Status.SKIP,
                                                      "no source database to compare with")
    assert "org_counts" not in run_checks(restored, manifest, Tier.QUICK, source_dsn=restored)


def test_rows_created_after_the_backup_point_do_not_count(pair, manifest):
    source, restored = pair
    run_sql(source, "INSERT INTO buildings (org_id, name, address, city, state, submarket, "
                    "building_class, rentable_sf, year_built) "
                    "VALUES (3, 'New Tower', '1 New St', 'Austin', 'TX', 'Domain', 'A', 1, 2024)")
    results = run_checks(restored, manifest, Tier.STANDARD, source_dsn=source)
    assert_only(results, set(), skips=APP_SKIPS)


def test_rows_deleted_from_the_source_since_the_backup_warn(pair, manifest):
    source, restored = pair
    run_sql(source, "DELETE FROM exports WHERE org_id = 2 AND id < 100")
    results = run_checks(restored, manifest, Tier.STANDARD, source_dsn=source)
    assert results["org_counts"].status == Status.WARN
    assert "deleted from the source since the backup?" in results["org_counts"].detail


def test_restored_rows_differing_from_the_source_fail_spot_checks(pair, manifest):
    source, restored = pair
    # Silent corruption: the restored rows changed, their timestamps did not.
    run_sql(restored, "UPDATE buildings SET rentable_sf = rentable_sf + 1")
    results = run_checks(restored, manifest, Tier.QUICK, source_dsn=source)
    assert_only(results, {"spot_checks"}, skips=APP_SKIPS)
    assert "differs from the source although it predates the backup point" in (
        results["spot_checks"].detail)


def test_rows_updated_in_the_source_after_the_backup_point_pass_spot_checks(pair, manifest):
    source, restored = pair
    run_sql(source, "UPDATE buildings SET rentable_sf = rentable_sf + 1, "
                    f"updated_at = '{BACKUP_POINT.isoformat()}'::timestamptz + interval '1 hour'")
    results = run_checks(restored, manifest, Tier.QUICK, source_dsn=source)
    assert_only(results, set(), skips=APP_SKIPS)
    assert "5 changed since the backup" in results["spot_checks"].detail


def test_an_unreachable_source_warns_instead_of_failing_the_restore(restored, manifest):
    port = psycopg.conninfo.conninfo_to_dict(restored)["port"]
    gone = restored.replace(f":{port}/", f":{free_port()}/")
    password = psycopg.conninfo.conninfo_to_dict(restored)["password"]
    results = run_checks(restored, manifest, Tier.STANDARD, source_dsn=gone)
    for name in ("spot_checks", "org_counts"):
        assert results[name].status == Status.WARN, results[name]
        assert "source database unreachable" in results[name].detail
        assert password not in results[name].detail


def test_a_source_whose_schema_moved_on_warns_in_spot_checks(pair, manifest):
    source, restored = pair
    run_sql(source, "ALTER TABLE tims DROP COLUMN notes")  # a migration after the backup
    results = run_checks(restored, manifest, Tier.QUICK, source_dsn=source)
    assert results["spot_checks"].status == Status.WARN
    assert "tims not comparable with the source" in results["spot_checks"].detail
    assert "notes" in results["spot_checks"].detail


FINISH_EXPORTS_AFTER_THE_BACKUP = (
    # Exports have no updated_at: finishing one moves its status and completed_at only.
    "UPDATE exports SET status = 'done', "
    f"completed_at = '{BACKUP_POINT.isoformat()}'::timestamptz + interval '1 hour'"
)


def test_exports_finished_in_the_source_after_the_backup_point_do_not_fail(pair, manifest):
    source, restored = pair
    run_sql(source, FINISH_EXPORTS_AFTER_THE_BACKUP)
    results = run_checks(restored, manifest, Tier.STANDARD, source_dsn=source)
    assert failing(results) == set(), {n: r.detail for n, r in results.items()}
    spot = results["spot_checks"]
    # Without an update timestamp nothing tells a finished export from a corrupt one.
    assert spot.status == Status.WARN, spot.detail
    assert spot.detail.endswith(
        "equal to the source; 5 in exports differ from the source, in a table without an update "
        "timestamp (changed since the backup, or not restored faithfully)")
    assert " -" not in spot.detail
    assert results["org_counts"].status == Status.PASS, results["org_counts"].detail


def test_a_changed_settled_row_still_fails_beside_exports_that_moved_on(pair, manifest):
    source, restored = pair
    run_sql(source, FINISH_EXPORTS_AFTER_THE_BACKUP)
    run_sql(restored, "UPDATE buildings SET rentable_sf = rentable_sf + 1")
    results = run_checks(restored, manifest, Tier.QUICK, source_dsn=source)
    assert results["spot_checks"].status == Status.FAIL
    assert results["spot_checks"].detail.startswith("buildings key ")
    assert "differs from the source although it predates the backup point" in (
        results["spot_checks"].detail)


def test_lost_exports_still_fail_org_counts_beside_exports_that_moved_on(pair, manifest):
    source, restored = pair
    run_sql(source, FINISH_EXPORTS_AFTER_THE_BACKUP)
    with psycopg.connect(restored) as conn:
        conn.execute("SET session_replication_role = replica")
        lost = conn.execute("DELETE FROM exports WHERE org_id = 2").rowcount
    results = run_checks(restored, manifest, Tier.STANDARD, source_dsn=source)
    assert results["org_counts"].status == Status.FAIL
    assert results["org_counts"].detail == (
        f"exports: org 2 has 0 row(s) created before the backup point, the source {lost}")


def test_a_row_with_any_timestamp_after_the_backup_point_changed_since(pair, manifest):
    source, restored = pair
    for dsn in pair:
        run_sql(dsn, "ALTER TABLE buildings ADD COLUMN archived_at timestamptz")
    # Archiving sets archived_at and the name, not updated_at.
    run_sql(source, "UPDATE buildings SET name = name || ' (archived)', "
                    f"archived_at = '{BACKUP_POINT.isoformat()}'::timestamptz + interval '1 hour'")
    results = run_checks(restored, manifest, Tier.QUICK, source_dsn=source)
    assert_only(results, set(), skips=APP_SKIPS)
    assert "5 changed since the backup" in results["spot_checks"].detail


def test_the_source_session_is_read_only_with_a_statement_timeout(restored):
    conn = connect_source(restored)
    try:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "5min"
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE drill_wrote_here (id int)")
    finally:
        conn.close()


def test_a_pooler_refusing_startup_options_still_gets_the_settings(restored, monkeypatch):
    connect = psycopg.connect

    def pgbouncer(dsn, **kwargs):
        if "options" in kwargs:
            raise psycopg.OperationalError("ERROR:  unsupported startup parameter: options")
        return connect(dsn, **kwargs)

    monkeypatch.setattr(psycopg, "connect", pgbouncer)
    conn = connect_source(restored)
    try:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "5min"
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    finally:
        conn.close()


def test_a_locked_source_warns_within_the_statement_timeout(pair, manifest, monkeypatch):
    monkeypatch.setattr(context, "SOURCE_STATEMENT_TIMEOUT_MS", 1000)
    source, restored = pair
    # A migration holding a lock in production: every read of buildings waits on it.
    with psycopg.connect(source) as holder:
        holder.execute("LOCK TABLE buildings IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        results = run_checks(restored, manifest, Tier.STANDARD, source_dsn=source)
        waited = time.monotonic() - started
    assert waited < 30  # one timeout, then the source is given up
    assert failing(results) == set(), {n: r.detail for n, r in results.items()}
    stopped = ("source query on buildings stopped: canceling statement due to statement timeout "
               "(the limit is 1s); the rest was not compared with the source")
    spot = results["spot_checks"]
    assert spot.status == Status.WARN
    assert spot.detail.endswith("equal to the source; " + stopped), spot.detail
    assert "\n" not in spot.detail
    assert results["org_counts"].status == Status.WARN
    assert results["org_counts"].detail == "not compared: " + stopped


# -- what the comparisons count ---------------------------------------------------------------


def test_identical_copies_compare_equal_row_for_row_and_org_for_org(pair, manifest):
    source, restored = pair
    results = run_checks(restored, manifest, Tier.STANDARD, source_dsn=source)
    assert results["spot_checks"].detail == (
        "39 rows fetched by key in 8 tables; 39 equal to the source")
    assert results["org_counts"].detail == (
        "per-org counts of rows created before the backup point match the source in 8 tables")


def test_sampled_rows_deleted_from_the_source_since_are_counted_apart(pair, manifest):
    source, restored = pair
    with psycopg.connect(source) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM buildings")
    spot = run_checks(restored, manifest, Tier.QUICK, source_dsn=source)["spot_checks"]
    assert (spot.status, spot.detail) == (
        Status.PASS, "39 rows fetched by key in 8 tables; 34 equal to the source, 5 deleted "
                     "from the source since")


def test_sampled_rows_changed_since_the_backup_are_counted_apart(pair, manifest):
    source, restored = pair
    run_sql(source, "UPDATE buildings SET rentable_sf = rentable_sf + 1, "
                    f"updated_at = '{BACKUP_POINT.isoformat()}'::timestamptz + interval '1 hour'")
    spot = run_checks(restored, manifest, Tier.QUICK, source_dsn=source)["spot_checks"]
    assert spot.detail == ("39 rows fetched by key in 8 tables; 34 equal to the source, 5 "
                           "changed since the backup")


def test_per_org_counts_of_a_table_without_a_creation_time_warn(pair, manifest):
    # Nothing tells a row written since the backup from one the restore lost.
    source, restored = pair
    for dsn in pair:
        run_sql(dsn, "CREATE TABLE notes (id int PRIMARY KEY, org_id bigint "
                     "REFERENCES organizations (id))", "INSERT INTO notes VALUES (1, 1)")
    run_sql(source, "INSERT INTO notes VALUES (2, 1)")
    org_counts = run_checks(restored, manifest, Tier.STANDARD, source_dsn=source)["org_counts"]
    assert (org_counts.status, org_counts.detail) == (
        Status.WARN, "notes: org 1 has 1 row(s), the source 2: the table has no creation "
                     "timestamp, so rows written since the backup count too")
