"""The verification checks' thresholds, each at, just inside and just outside its boundary.

Each test runs one check (as drills.verify.suite does) on a copy of the sample database, with
the backup point and the drill's start placed relative to what the data holds, so a limit
moved by a second, or a comparison flipped, changes the verdict.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from drills.verify import Manifest, Status, Tier
from drills.verify.catalog import discover
from drills.verify.context import Outcome, counted, fmt_duration, fmt_hours
from drills.verify.data import check_row_counts, check_spot_checks
from drills.verify.freshness import CLOCK_SKEW, check_freshness
from drills.verify.integrity import (
    check_constraints,
    check_indexes,
    check_org_scoping,
    check_sequences,
)
from drills.verify.manifest import Migrations
from drills.verify.schema import check_migrations, check_restore, check_tables
from tests.drills.verify.conftest import run_sql

SECOND = timedelta(seconds=1)


def newest(dsn: str, column: str = "created_at", table: str = "audit_logs") -> datetime:
    with psycopg.connect(dsn) as conn:
        value = conn.execute(f"SELECT max({column}) FROM {table}").fetchone()[0]
    return value.astimezone(UTC) if isinstance(value, datetime) else value


@pytest.fixture
def zone_behind_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local zone five hours behind UTC, as on a machine in New York."""
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def with_freshness(manifest: Manifest, **changes) -> Manifest:
    return manifest.model_copy(
        update={"freshness": manifest.freshness.model_copy(update=changes)})


def with_rpo_hours(manifest: Manifest, hours: float) -> Manifest:
    return manifest.model_copy(
        update={"targets": manifest.targets.model_copy(update={"rpo_hours": hours})})


# -- freshness: staleness, the RPO, the clock skew --------------------------------------------


@pytest.mark.parametrize(
    ("beyond", "status"), [(-SECOND, Status.PASS), (timedelta(0), Status.PASS),
                           (SECOND, Status.FAIL)],
)
def test_data_older_than_the_allowed_staleness_is_stale(restored, manifest, run, beyond, status):
    point = newest(restored) + manifest.freshness.max_staleness + beyond
    outcome = run(check_freshness, restored, backup_point=point,
                  drill_started=point + timedelta(minutes=10))
    assert outcome.status is status
    assert outcome.detail.startswith("stale: ") is (status is Status.FAIL)


@pytest.mark.parametrize(
    ("beyond", "status"), [(-SECOND, Status.PASS), (timedelta(0), Status.PASS),
                           (SECOND, Status.FAIL)],
)
def test_a_drill_started_later_than_the_rpo_after_its_backup_misses_it(
    restored, manifest, run, beyond, status
):
    point = newest(restored) + timedelta(minutes=3)
    strict = with_rpo_hours(manifest, 2)
    outcome = run(check_freshness, restored, manifest=strict, backup_point=point,
                  drill_started=point + timedelta(hours=2) + beyond)
    assert outcome.status is status
    if status is Status.FAIL:
        assert outcome.detail.startswith("RPO target missed: newest audit_logs.created_at 3m "
                                         "before the backup point (max 1d)")
        assert outcome.detail.endswith("achieved RPO 2h vs target 2h")


@pytest.mark.parametrize(
    ("ahead", "status"), [(CLOCK_SKEW - SECOND, Status.PASS), (CLOCK_SKEW, Status.PASS),
                          (CLOCK_SKEW + SECOND, Status.WARN)],
)
def test_data_newer_than_the_backup_point_beyond_the_clock_skew_warns(
    restored, run, ahead, status
):
    point = newest(restored) - ahead
    outcome = run(check_freshness, restored, backup_point=point,
                  drill_started=point + timedelta(minutes=10))
    assert outcome.status is status
    expected = f"newest audit_logs.created_at {fmt_duration(ahead)} after the backup point"
    assert outcome.detail.startswith(expected)
    assert outcome.detail.endswith("is the point right?") is (status is Status.WARN)


def test_data_exactly_at_the_backup_point_is_before_it(restored, run):
    point = newest(restored)
    outcome = run(check_freshness, restored, backup_point=point,
                  drill_started=point + timedelta(minutes=10))
    assert outcome.status is Status.PASS
    assert outcome.detail.startswith("newest audit_logs.created_at 0s before the backup point")


def test_an_unindexed_freshness_column_is_left_to_the_standard_tier(restored, manifest, run):
    run_sql(restored, "DROP INDEX audit_logs_created_at_idx",
            "DROP INDEX audit_logs_org_id_created_at_idx")
    point = newest(restored) + timedelta(minutes=3)
    quick = run(check_freshness, restored, tier=Tier.QUICK, backup_point=point,
                drill_started=point + timedelta(minutes=10))
    assert quick.status is Status.WARN
    assert quick.detail.startswith("audit_logs.created_at has no index, so its newest value "
                                   "needs a full scan: run the standard tier")
    missed = run(check_freshness, restored, tier=Tier.QUICK, backup_point=point,
                 drill_started=point + timedelta(hours=25))
    assert missed.status is Status.FAIL
    assert missed.detail.startswith("audit_logs.created_at has no index")
    standard = run(check_freshness, restored, backup_point=point,
                   drill_started=point + timedelta(minutes=10))
    assert standard.status is Status.PASS


def test_a_second_index_column_does_not_count_as_indexed(restored, manifest, run):
    # audit_logs (org_id, created_at) cannot find the newest created_at without a scan.
    run_sql(restored, "DROP INDEX audit_logs_created_at_idx")
    point = newest(restored) + timedelta(minutes=3)
    quick = run(check_freshness, restored, tier=Tier.QUICK, backup_point=point,
                drill_started=point + timedelta(minutes=10))
    assert quick.status is Status.WARN


@pytest.mark.parametrize(
    ("ddl", "column_type"),
    [("d date", date), ("d timestamp without time zone", datetime)],
)
def test_dates_and_zoneless_timestamps_are_read_as_utc(restored, manifest, run, ddl,
                                                       column_type, zone_behind_utc):
    run_sql(restored, f"CREATE TABLE marks (id int PRIMARY KEY, {ddl})",
            "CREATE INDEX ON marks (d)",
            "INSERT INTO marks VALUES (1, '2025-06-01'), (2, '2025-06-02')")
    point = datetime(2025, 6, 2, tzinfo=UTC) + timedelta(hours=3)
    fresh = with_freshness(manifest, table="marks", column="d",
                           max_staleness=timedelta(hours=3))
    outcome = run(check_freshness, restored, manifest=fresh, backup_point=point,
                  drill_started=point + timedelta(minutes=10))
    assert (outcome.status, outcome.detail.split(" (")[0]) == (
        Status.PASS, "newest marks.d 3h before the backup point")
    late = run(check_freshness, restored, manifest=fresh, backup_point=point + SECOND,
               drill_started=point + timedelta(minutes=10))
    assert late.status is Status.FAIL
    assert isinstance(newest(restored, "d", "marks"), column_type)


def test_freshness_fails_on_what_it_cannot_date(restored, manifest, run):
    def outcome(**changes):
        return run(check_freshness, restored, manifest=with_freshness(manifest, **changes))

    assert outcome(table="nowhere") == (Status.FAIL, "nowhere missing: nothing dates the "
                                        "backup's data; achieved RPO 10m vs target 24h")
    assert outcome(table="audit_logs", column="action").detail.startswith(
        "audit_logs.action is not a timestamp column")
    assert outcome(table="audit_logs", column="no_such").detail.startswith(
        "audit_logs.no_such is not a timestamp column")
    run_sql(restored, "CREATE TABLE plain (id int PRIMARY KEY)",
            "CREATE TABLE blank (id int PRIMARY KEY, at timestamptz)")
    assert outcome(table="plain").detail.startswith("plain has no timestamp column")
    assert outcome(table="blank").detail.startswith(
        "blank is empty: nothing dates the backup's data")


# -- schema: restore errors and the migration head --------------------------------------------


def test_restore_errors_are_counted_in_the_singular_and_the_plural(restored, run):
    one = run(check_restore, restored, restore_errors=["pg_restore: error: one\nmore lines"])
    assert one == (Status.FAIL, "1 restore error; first: pg_restore: error: one")
    two = run(check_restore, restored, restore_errors=["first", "second"])
    assert two == (Status.FAIL, "2 restore errors; first: first")
    capped = run(check_restore, restored, restore_errors=["first"], restore_errors_total=40)
    assert capped.detail == "40 restore errors; first: first"
    assert run(check_restore, restored) == (Status.PASS, "the restore reported no errors")


def test_restore_warnings_warn_and_count_the_rest(restored, run):
    one = run(check_restore, restored, restore_warnings=["extension pg_cron not restored"])
    assert one == (Status.WARN, "1 warning(s): extension pg_cron not restored")
    two = run(check_restore, restored, restore_warnings=["a", "b"])
    assert two == (Status.WARN, "2 warning(s): a (+1 more)")
    three = run(check_restore, restored, restore_warnings=["a", "b", "c"])
    assert three == (Status.WARN, "3 warning(s): a (+2 more)")


def test_a_manifest_expecting_no_table_passes_and_counts_what_is_there(restored, manifest, run):
    bare = manifest.model_validate({**manifest.model_dump(), "tables": {}})
    outcome = run(check_tables, restored, manifest=bare)
    assert outcome.status is Status.PASS
    assert outcome.detail.startswith("no table expected by the manifest; ")
    assert outcome.detail.endswith(" in public")


def test_a_configured_migration_table_is_the_one_read(restored, manifest, run):
    run_sql(restored, "CREATE TABLE app_migrations (version bigint PRIMARY KEY)",
            "INSERT INTO app_migrations VALUES (7), (9)")
    configured = manifest.model_copy(update={"migrations": Migrations(table="app_migrations")})
    assert run(check_migrations, restored, manifest=configured) == (
        Status.PASS, "app_migrations head 9 (no minimum configured)")


def test_no_migration_table_anywhere_is_skipped(restored, manifest, run):
    run_sql(restored, "DROP TABLE schema_migrations")
    unconfigured = manifest.model_copy(update={"migrations": Migrations()})
    assert run(check_migrations, restored, manifest=unconfigured) == (
        Status.SKIP, "no migration table found and none configured in the manifest")


@pytest.mark.parametrize(("above", "status"), [(-1, Status.PASS), (0, Status.PASS),
                                               (1, Status.FAIL)])
def test_the_migration_head_must_reach_the_minimum(restored, manifest, run, above, status):
    head = newest(restored, "version", "schema_migrations")
    minimum = manifest.model_copy(update={"migrations": manifest.migrations.model_copy(
        update={"min_version": head + above})})
    outcome = run(check_migrations, restored, manifest=minimum)
    assert outcome.status is status
    word = "is below the expected" if status is Status.FAIL else ">= expected"
    assert outcome.detail == f"schema_migrations head {head} {word} {head + above}"


def test_goose_rollbacks_do_not_count_towards_the_head(restored, manifest, run):
    run_sql(restored, "DROP TABLE schema_migrations",
            "CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint, "
            "is_applied boolean)",
            "INSERT INTO goose_db_version (version_id, is_applied) VALUES "
            "(20250101, true), (20250301, true), (20250401, false)")
    found = manifest.model_copy(update={"migrations": Migrations()})  # recognised by name
    assert run(check_migrations, restored, manifest=found) == (
        Status.PASS, "goose_db_version head 20250301 (no minimum configured)")


def test_missing_tables_are_named_with_how_many_are_there(restored, manifest, run):
    run_sql(restored, "DROP TABLE exports", "DROP TABLE audit_logs")
    outcome = run(check_tables, restored)
    expected = len(manifest.tables)
    assert outcome == (Status.FAIL, f"missing in public: exports, audit_logs "
                                    f"({expected - 2} of {expected} expected tables present)")


def test_missing_tables_are_looked_for_in_every_schema_named(restored, manifest, run):
    run_sql(restored, "CREATE SCHEMA app", "DROP TABLE exports")
    two_schemas = manifest.model_copy(update={"schemas": ["public", "app"]})
    outcome = run(check_tables, restored, manifest=two_schemas)
    assert outcome.status is Status.FAIL
    assert outcome.detail.startswith("missing in public, app: exports (")


def test_a_known_migration_table_without_its_tools_column_is_read_by_name(restored, manifest,
                                                                           run):
    # Named like golang-migrate's table, but written by another tool: no `version` column.
    run_sql(restored, "DROP TABLE schema_migrations",
            "CREATE TABLE schema_migrations (version_id bigint PRIMARY KEY)",
            "INSERT INTO schema_migrations VALUES (3), (5)")
    found = manifest.model_copy(update={"migrations": Migrations()})  # recognised by name
    assert run(check_migrations, restored, manifest=found) == (
        Status.PASS, "schema_migrations head 5 (no minimum configured)")


# -- spot checks: which tables are sampled ---------------------------------------------------


def test_spot_checks_sample_the_expected_tables_or_every_table_when_none_is_expected(
    restored, manifest, run
):
    only_buildings = manifest.model_validate({**manifest.model_dump(),
                                              "tables": {"buildings": {}}})
    assert run(check_spot_checks, restored, manifest=only_buildings) == (
        Status.PASS, "5 rows fetched by key in 1 table")
    # A manifest for another database may expect nothing: every table there is sampled then,
    # rather than none (a check that samples nothing would prove nothing).
    bare = manifest.model_validate({**manifest.model_dump(), "tables": {}})
    with psycopg.connect(restored) as conn:
        every = len(discover(conn, bare).tables)
    assert every > len(manifest.tables)  # the sample holds a table the manifest leaves out
    outcome = run(check_spot_checks, restored, manifest=bare)
    assert outcome.status is Status.PASS
    assert outcome.detail.endswith(f" fetched by key in {every} tables")


# -- integrity: a sequence must be ahead of its column ----------------------------------------


@pytest.mark.parametrize(
    ("setval", "status"),
    [("max(id), true", Status.PASS),  # next value max + 1
     ("max(id) + 1, false", Status.PASS),  # next value max + 1, never called
     ("max(id), false", Status.FAIL),  # next value max: collides
     ("max(id) - 1, true", Status.FAIL)],
)
def test_a_sequence_whose_next_value_collides_fails(restored, run, setval, status):
    run_sql(restored, f"SELECT setval('buildings_id_seq', {setval}) FROM buildings")
    outcome = run(check_sequences, restored)
    assert outcome.status is status
    if status is Status.FAIL:
        assert outcome.detail.startswith(
            "1 sequence(s) behind their column: buildings.id next value")
        assert "new rows would collide" in outcome.detail


def test_a_descending_sequence_must_stay_below_its_column(restored, run):
    run_sql(restored,
            "CREATE TABLE down (id bigint PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY "
            "(INCREMENT BY -1 START WITH -1 MINVALUE -1000 MAXVALUE -1))",
            "INSERT INTO down DEFAULT VALUES", "INSERT INTO down DEFAULT VALUES")
    assert run(check_sequences, restored).status is Status.PASS  # next is -3, min is -2
    run_sql(restored, "SELECT setval(pg_get_serial_sequence('down', 'id'), -1)")
    outcome = run(check_sequences, restored)  # next is -2: the min
    assert outcome.status is Status.FAIL
    assert "but min(id) is -2" in outcome.detail


def test_the_quick_tier_leaves_unindexed_sequence_columns_alone(restored, run):
    run_sql(restored, "CREATE TABLE loose (n serial, note text)",
            "INSERT INTO loose (n) VALUES (5)")  # behind, but no index on n
    quick = run(check_sequences, restored, tier=Tier.QUICK)
    checked = _sequence_count(restored) - 1
    assert quick == (Status.PASS, f"{checked} sequence(s) ahead of their column; 1 without an "
                                  "index left to the standard tier (loose.n)")
    assert run(check_sequences, restored).status is Status.FAIL


def _sequence_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return len(discover(conn, Manifest()).sequences)


def test_sequences_ahead_of_their_columns_are_counted(restored, run):
    assert run(check_sequences, restored) == (
        Status.PASS, f"all {_sequence_count(restored)} column sequences ahead of their column's "
                     "values")


def test_the_quick_tier_still_checks_indexed_sequences_after_an_unindexed_one(restored, run):
    run_sql(restored, "CREATE TABLE loose (n serial, note text)",  # no index on n
            "CREATE TABLE later (id serial PRIMARY KEY)", "INSERT INTO later VALUES (7)")
    assert run(check_sequences, restored, tier=Tier.QUICK) == (
        Status.FAIL, "1 sequence(s) behind their column: later.id next value 1 but max(id) is 7: "
                     "new rows would collide")


def test_unindexed_sequences_left_to_the_standard_tier_are_named_up_to_three(restored, run):
    run_sql(restored, *[f"CREATE TABLE loose{i} (n serial, note text)" for i in range(4)])
    quick = run(check_sequences, restored, tier=Tier.QUICK)
    assert quick.status is Status.PASS
    assert quick.detail.endswith("; 4 without an index left to the standard tier (loose0.n, "
                                 "loose1.n, loose2.n)")


def test_more_than_two_sequences_behind_are_summarised(restored, run):
    def behind(name: str) -> str:
        return f"{name}.id next value 2 but max(id) is 5: new rows would collide"

    for name in ("s1", "s2", "s3"):
        run_sql(restored, f"CREATE TABLE {name} (id serial PRIMARY KEY)",
                f"INSERT INTO {name} SELECT generate_series(1, 5)",
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), 1)")
    assert run(check_sequences, restored) == (
        Status.FAIL, f"3 sequence(s) behind their column: {behind('s1')}; {behind('s2')}; ...")
    run_sql(restored, "DROP TABLE s3")
    assert run(check_sequences, restored) == (
        Status.FAIL, f"2 sequence(s) behind their column: {behind('s1')}; {behind('s2')}")


def test_a_schema_without_sequences_or_with_one_constraint_reads_naturally(
    restored, manifest, run
):
    run_sql(restored, "CREATE SCHEMA solo", "CREATE TABLE solo.notes (id int PRIMARY KEY)")
    solo = manifest.model_copy(update={"schemas": ["solo"]})
    assert run(check_sequences, restored, manifest=solo) == (
        Status.PASS, "no sequence behind a column (owned, identity or used by a DEFAULT)")
    assert run(check_constraints, restored, manifest=solo) == (
        Status.PASS, "all 1 constraint validated")


def test_more_than_three_bad_indexes_or_constraints_are_summarised(restored, run):
    run_sql(restored, *[
        f"ALTER TABLE buildings ADD CONSTRAINT nv{i} CHECK (rentable_sf > {i}) NOT VALID"
        for i in range(4)
    ])
    outcome = run(check_constraints, restored)
    assert outcome.status is Status.FAIL
    assert outcome.detail.startswith("4 NOT VALID constraint(s): buildings.nv0, buildings.nv1, "
                                     "buildings.nv2 ...")
    three = run_sql(restored, "ALTER TABLE buildings DROP CONSTRAINT nv3")
    assert three is None
    assert run(check_constraints, restored).detail == (
        "3 NOT VALID constraint(s): buildings.nv0, buildings.nv1, buildings.nv2; existing rows "
        "were never checked against them")
    assert run(check_indexes, restored).status is Status.PASS


def _failed_unique_builds(dsn: str, names: list[str]) -> None:
    """Each a CREATE UNIQUE INDEX CONCURRENTLY that fails on duplicates: left invalid."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON buildings (city)")


def test_more_than_three_invalid_indexes_are_summarised(restored, run):
    _failed_unique_builds(restored, ["bad0", "bad1", "bad2", "bad3"])
    assert run(check_indexes, restored) == (
        Status.FAIL, "4 invalid index(es): bad0 on buildings, bad1 on buildings, bad2 on "
                     "buildings ...")
    run_sql(restored, "DROP INDEX bad3")
    assert run(check_indexes, restored) == (
        Status.FAIL, "3 invalid index(es): bad0 on buildings, bad1 on buildings, bad2 on "
                     "buildings")


def test_valid_indexes_are_counted_in_the_singular_and_the_plural(restored, manifest, run):
    with psycopg.connect(restored) as conn:
        indexes = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'").fetchone()[0]
    assert run(check_indexes, restored) == (Status.PASS, f"all {indexes} indexes valid")
    run_sql(restored, "CREATE SCHEMA solo", "CREATE TABLE solo.notes (id int PRIMARY KEY)")
    solo = manifest.model_copy(update={"schemas": ["solo"]})
    assert run(check_indexes, restored, manifest=solo) == (Status.PASS, "all 1 index valid")


def test_findings_outside_the_public_schema_name_their_schema(restored, manifest, run):
    run_sql(restored, "CREATE SCHEMA app", "CREATE TABLE app.notes (n int)",
            "ALTER TABLE app.notes ADD CONSTRAINT notes_positive CHECK (n > 0) NOT VALID",
            "ALTER TABLE buildings ADD CONSTRAINT buildings_sf CHECK (rentable_sf > 0) NOT VALID")
    two_schemas = manifest.model_copy(update={"schemas": ["public", "app"]})
    outcome = run(check_constraints, restored, manifest=two_schemas)
    assert outcome.detail.startswith("2 NOT VALID constraint(s): app.notes.notes_positive, "
                                     "buildings.buildings_sf;")


# -- integrity: org scoping ------------------------------------------------------------------


def test_an_org_column_stored_as_text_is_compared_as_text(restored, run):
    # Found by name; its type is not the key's, so both sides are compared as text.
    run_sql(restored, "CREATE TABLE notes (id int PRIMARY KEY, org_id text)",
            "INSERT INTO notes SELECT id, id::text FROM organizations",
            "INSERT INTO notes VALUES (-1, '999')")
    assert run(check_org_scoping, restored) == (
        Status.FAIL, "notes.org_id: 1 row(s) reference a missing organization (e.g. 999; by "
                     "name)")


def test_without_any_org_scoped_column_org_scoping_warns_naming_what_it_looked_for(
    restored, manifest, run
):
    run_sql(restored, "CREATE SCHEMA solo", "CREATE TABLE solo.organizations (id int PRIMARY KEY)",
            "CREATE TABLE solo.notes (id int PRIMARY KEY, body text)")
    solo = manifest.model_validate({**manifest.model_dump(), "schemas": ["solo"],
                                    "tables": {"organizations": {}, "notes": {}}})
    assert run(check_org_scoping, restored, manifest=solo) == (
        Status.WARN, "no org-scoped column found (no foreign key to solo.organizations, no "
                     "column named org_id or organization_id)")


def test_org_scoping_counts_the_columns_and_the_tables_it_checked(restored, run):
    # A second org column in one table: eight columns in seven tables.
    run_sql(restored, "ALTER TABLE buildings ADD COLUMN organization_id bigint",
            "UPDATE buildings SET organization_id = org_id")
    assert run(check_org_scoping, restored) == (
        Status.PASS, "8 org column(s) in 7 table(s) all reference existing organizations")


def test_orphans_in_several_columns_are_reported_by_the_first_and_counted(restored, run):
    run_sql(restored, "ALTER TABLE buildings DROP CONSTRAINT buildings_org_id_fkey",
            "UPDATE buildings SET org_id = 999 WHERE id IN (5, 6, 7)")
    one = run(check_org_scoping, restored)
    assert one.status is Status.FAIL
    assert one.detail == ("buildings.org_id: 3 row(s) reference a missing organization (e.g. "
                          "999; by name)")
    run_sql(restored, "ALTER TABLE exports DROP CONSTRAINT exports_org_id_fkey",
            "UPDATE exports SET org_id = 77 WHERE id <= 4")
    two = run(check_org_scoping, restored)
    assert two.detail == one.detail + "; 1 more column(s)"
    run_sql(restored, "ALTER TABLE comps DROP CONSTRAINT comps_org_id_fkey",
            "UPDATE comps SET org_id = 78 WHERE id = 10")
    assert run(check_org_scoping, restored).detail == one.detail + "; 2 more column(s)"


# -- row counts: the manifest's minimum ------------------------------------------------------


@pytest.mark.parametrize("tier", [Tier.QUICK, Tier.STANDARD])
@pytest.mark.parametrize(("above", "status"), [(-1, Status.PASS), (0, Status.PASS),
                                               (1, Status.FAIL)])
def test_a_table_must_hold_its_minimum_rows(restored, manifest, run, tier, above, status):
    with psycopg.connect(restored) as conn:
        orgs = conn.execute("SELECT count(*) FROM organizations").fetchone()[0]
    tables = {"organizations": {"min_rows": orgs + above}}
    strict = manifest.model_validate({**manifest.model_dump(), "tables": tables})
    outcome = run(check_row_counts, restored, manifest=strict, tier=tier)
    assert outcome.status is status
    if status is Status.FAIL:
        assert outcome.detail == (f"organizations has {orgs} row(s), fewer than the expected "
                                  f"{orgs + 1}")


def test_an_empty_table_fails_unless_its_minimum_is_zero(restored, manifest, run):
    run_sql(restored, "CREATE TABLE nothing (id int PRIMARY KEY)")
    for tier in (Tier.QUICK, Tier.STANDARD):
        def outcome(minimum: int, tier: Tier = tier) -> Outcome:
            strict = manifest.model_validate(
                {**manifest.model_dump(), "tables": {"nothing": {"min_rows": minimum}}})
            return run(check_row_counts, restored, manifest=strict, tier=tier)

        assert outcome(1) == (Status.FAIL, "nothing is empty")
        assert outcome(0).status is Status.PASS


# -- the formats every detail uses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=0), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(seconds=60), "1m"),
        (timedelta(seconds=61), "1m 01s"),
        (timedelta(minutes=59, seconds=59), "59m 59s"),
        (timedelta(hours=1), "1h"),
        (timedelta(hours=1, minutes=5), "1h 05m"),
        (timedelta(hours=23, minutes=59, seconds=59), "23h 59m"),
        (timedelta(days=1), "1d"),
        (timedelta(days=2, hours=3, minutes=4), "2d 3h"),
        (timedelta(seconds=-90), "-1m 30s"),
        (timedelta(milliseconds=1500), "2s"),
    ],
)
def test_durations_read_as_their_two_largest_units(delta, text):
    assert fmt_duration(delta) == text


def test_counts_and_hours_read_naturally():
    assert counted(1, "table") == "1 table"
    assert counted(0, "table") == "0 tables"
    assert counted(1024, "row") == "1,024 rows"
    assert counted(2, "index", "indexes") == "2 indexes"
    assert counted(1, "index", "indexes") == "1 index"
    assert fmt_hours(24) == "24h" and fmt_hours(1.5) == "1.5h"


@pytest.mark.parametrize(("columns", "expected"), [
    ("version_id bigint", (Status.PASS, "app_migrations head 9 (no minimum configured)")),
    ("name text", (Status.FAIL, "app_migrations has no version column: set migrations.column "
                                "in the manifest")),
])
def test_a_configured_table_without_a_configured_column_is_read_by_name(
    restored, manifest, run, columns, expected
):
    run_sql(restored, f"CREATE TABLE app_migrations (id int PRIMARY KEY, {columns})",
            "INSERT INTO app_migrations VALUES (1, '7'), (2, '9')")
    configured = manifest.model_copy(update={"migrations": Migrations(table="app_migrations")})
    assert run(check_migrations, restored, manifest=configured) == expected


def test_an_empty_migration_table_fails_saying_so(restored, run):
    run_sql(restored, "DELETE FROM schema_migrations")
    assert run(check_migrations, restored) == (
        Status.FAIL, "schema_migrations is empty: no migration recorded")
