"""What the spot checks and the per-org counts report, one check at a time: each finding named,
the first of several shown with a count of the rest, the notes and the source's failures kept.

The sampled tables are chosen by the manifest; small tables of the test's own make the number
of differing rows exact (the sample of a big table is seeded, not chosen by the test).
"""

from __future__ import annotations

import time

import psycopg
import pytest

from drills.ports import free_port
from drills.verify import Manifest, Status, Tier, context, data
from drills.verify.context import Context
from drills.verify.data import check_org_counts, check_row_counts, check_spot_checks
from tests.drills.verify.conftest import BACKUP_POINT, make_target, run_sql

DIFFERS = "differs from the source although it predates the backup point"
UNDATED = ("differ from the source, in a table without an update timestamp (changed since the "
           "backup, or not restored faithfully)")


def expecting(manifest: Manifest, *tables: str) -> Manifest:
    """The manifest with only `tables` expected (the spot checks sample those)."""
    expected = {name: {} for name in tables}
    return manifest.model_validate({**manifest.model_dump(), "tables": expected})


def make_table(dsn: str, name: str, rows: int, *, updated: bool = True) -> None:
    """A keyed table of `rows` rows written the day before the backup point."""
    stamp = ", updated_at timestamptz NOT NULL" if updated else ""
    value = ", '2025-06-01'" if updated else ""
    run_sql(dsn, f"CREATE TABLE {name} (id int PRIMARY KEY, amount int NOT NULL, "
                 f"created_at timestamptz NOT NULL{stamp})",
            f"INSERT INTO {name} SELECT i, 100, '2025-06-01'{value} "
            f"FROM generate_series(1, {rows}) AS i")


@pytest.fixture
def pair(samples):
    """(source, restored): two identical copies of the sample."""
    return samples.copy(), samples.copy()


# -- row counts --------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", [Tier.QUICK, Tier.STANDARD])
def test_every_table_short_of_rows_is_named(restored, manifest, run, tier):
    make_table(restored, "empty", 0)
    make_table(restored, "short", 2)
    strict = manifest.model_validate({**manifest.model_dump(),
                                      "tables": {"empty": {}, "short": {"min_rows": 3}}})
    assert run(check_row_counts, restored, manifest=strict, tier=tier) == (
        Status.FAIL, "empty is empty; short has 2 row(s), fewer than the expected 3")


def test_an_exact_count_gives_the_total_and_the_smallest_table(restored, manifest, run):
    make_table(restored, "a_large", 3)
    make_table(restored, "b_small", 2)
    assert run(check_row_counts, restored, manifest=expecting(manifest, "a_large", "b_small"),
               tier=Tier.STANDARD) == (Status.PASS, "2 tables, 5 rows; smallest b_small (2)")


def test_a_bounded_probe_gives_the_planners_estimate_once_analysed(restored, manifest, run):
    make_table(restored, "a_large", 3)
    make_table(restored, "b_small", 2)
    tables = expecting(manifest, "a_large", "b_small")
    # A fresh restore has no statistics yet: no estimate rather than a wrong one.
    assert run(check_row_counts, restored, manifest=tables, tier=Tier.QUICK) == (
        Status.PASS, "2 tables non-empty and at their minimums (bounded probe)")
    run_sql(restored, "ANALYZE a_large", "ANALYZE b_small")
    assert run(check_row_counts, restored, manifest=tables, tier=Tier.QUICK) == (
        Status.PASS, "2 tables non-empty and at their minimums (bounded probe; ~5 rows estimated)")


def test_row_counts_skip_when_no_expected_table_was_restored(restored, manifest, run):
    # The tables check fails on the missing table; counting nothing proves nothing.
    assert run(check_row_counts, restored, manifest=expecting(manifest, "never_restored")) == (
        Status.SKIP, "no expected table to count")


# -- spot checks ---------------------------------------------------------------------------


def test_one_row_differing_from_the_source_is_named_alone(pair, manifest, run):
    source, restored = pair
    for dsn in pair:
        make_table(dsn, "ledger", 2)
    run_sql(restored, "UPDATE ledger SET amount = 101 WHERE id = 2")
    outcome = run(check_spot_checks, restored, manifest=expecting(manifest, "ledger"),
                  source_dsn=source)
    assert outcome == (Status.FAIL, f"ledger key 2 {DIFFERS}")


def test_a_row_with_a_composite_key_is_named_by_every_part(pair, manifest, run):
    source, restored = pair
    for dsn in pair:
        run_sql(dsn, "CREATE TABLE seats (org_id int, seat int, holder text NOT NULL, "
                     "created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, "
                     "PRIMARY KEY (org_id, seat))",
                "INSERT INTO seats VALUES (3, 12, 'ana', '2025-06-01', '2025-06-01')")
    run_sql(restored, "UPDATE seats SET holder = 'bo'")
    outcome = run(check_spot_checks, restored, manifest=expecting(manifest, "seats"),
                  source_dsn=source)
    assert outcome == (Status.FAIL, f"seats key (3, 12) {DIFFERS}")


def test_several_rows_differing_name_the_first_and_count_the_rest(pair, manifest, run):
    source, restored = pair
    for dsn in pair:
        make_table(dsn, "ledger", 2)
    run_sql(restored, "UPDATE ledger SET amount = 101")
    outcome = run(check_spot_checks, restored, manifest=expecting(manifest, "ledger"),
                  source_dsn=source)
    assert outcome.status is Status.FAIL
    assert outcome.detail in (f"ledger key 1 {DIFFERS} (+1 more)",
                              f"ledger key 2 {DIFFERS} (+1 more)")


def test_an_unreachable_source_says_nothing_was_compared(restored, manifest, run):
    port = psycopg.conninfo.conninfo_to_dict(restored)["port"]
    gone = restored.replace(f":{port}/", f":{free_port()}/")
    outcome = run(check_spot_checks, restored, manifest=expecting(manifest, "buildings"),
                  source_dsn=gone)
    assert outcome.status is Status.WARN
    assert outcome.detail.startswith(
        "5 rows fetched by key in 1 table; not compared, source database unreachable"), (
        outcome.detail)


def test_keyless_tables_are_named_beside_the_rows_sampled_elsewhere(restored, manifest, run):
    for name in ("keyless_a", "keyless_b"):
        run_sql(restored, f"CREATE TABLE {name} (note text)", f"INSERT INTO {name} VALUES ('x')")
    outcome = run(check_spot_checks, restored,
                  manifest=expecting(manifest, "buildings", "keyless_a", "keyless_b"))
    assert outcome == (Status.PASS, "5 rows fetched by key in 1 table; keyless_a has no primary "
                                    "or unique NOT NULL key; keyless_b has no primary or unique "
                                    "NOT NULL key")


def test_nothing_to_sample_warns_when_keyless_and_fails_when_empty(restored, manifest, run):
    run_sql(restored, "CREATE TABLE keyless (note text)", "INSERT INTO keyless VALUES ('x')")
    make_table(restored, "empty", 0)
    assert run(check_spot_checks, restored, manifest=expecting(manifest, "keyless")) == (
        Status.WARN, "no row could be sampled: 0 rows fetched by key in 0 tables; keyless has no "
                     "primary or unique NOT NULL key")
    # An empty table is the row counts' finding; a check that sampled nothing proves nothing.
    assert run(check_spot_checks, restored, manifest=expecting(manifest, "empty")) == (
        Status.FAIL, "no row could be sampled: 0 rows fetched by key in 0 tables")


def test_a_single_row_is_enough_to_sample(restored, manifest, run):
    make_table(restored, "single", 1)
    assert run(check_spot_checks, restored, manifest=expecting(manifest, "single")) == (
        Status.PASS, "1 row fetched by key in 1 table")


def test_every_table_whose_schema_moved_on_is_named(pair, manifest, run):
    source, restored = pair
    run_sql(source, "ALTER TABLE buildings DROP COLUMN year_built",
            "ALTER TABLE tims DROP COLUMN notes")
    outcome = run(check_spot_checks, restored, manifest=expecting(manifest, "buildings", "tims"),
                  source_dsn=source)
    assert outcome == (
        Status.WARN,
        "10 rows fetched by key in 2 tables; 0 equal to the source; buildings not comparable "
        'with the source (column "year_built" does not exist); tims not comparable with the '
        'source (column "notes" does not exist)')


def test_rows_differing_in_several_undated_tables_are_counted_per_table(pair, manifest, run):
    source, restored = pair
    for dsn in pair:
        make_table(dsn, "undated_a", 2, updated=False)
        make_table(dsn, "undated_b", 1, updated=False)
    run_sql(source, "UPDATE undated_a SET amount = 0", "UPDATE undated_b SET amount = 0")
    outcome = run(check_spot_checks, restored,
                  manifest=expecting(manifest, "undated_a", "undated_b"), source_dsn=source)
    assert outcome == (Status.WARN, "3 rows fetched by key in 2 tables; 0 equal to the source; "
                                    f"2 in undated_a, 1 in undated_b {UNDATED}")


def test_an_empty_table_does_not_stop_the_tables_after_it_being_sampled(restored, manifest, run):
    make_table(restored, "a_empty", 0)
    make_table(restored, "b_single", 1)
    tables = expecting(manifest, "a_empty", "b_single")
    assert run(check_spot_checks, restored, manifest=tables) == (
        Status.PASS, "1 row fetched by key in 1 table")


def test_rows_the_table_holds_but_its_key_index_misses_fail_each_counted(
    restored, manifest, run
):
    """An index that lost entries (a restore onto another collation, a torn write) answers "no
    such row" for rows a scan of the table returns."""
    make_table(restored, "ledger", 0)
    # Index maintenance off while rows are written: the primary key misses every one.
    run_sql(restored,
            "UPDATE pg_index SET indisready = false WHERE indexrelid = 'ledger_pkey'::regclass",
            "INSERT INTO ledger SELECT i, 100, '2025-06-01', '2025-06-01' "
            "FROM generate_series(1, 40) AS i",
            "UPDATE pg_index SET indisready = true WHERE indexrelid = 'ledger_pkey'::regclass")
    name = psycopg.conninfo.conninfo_to_dict(restored)["dbname"]
    run_sql(restored, f'ALTER DATABASE "{name}" SET enable_seqscan = off')  # lookups by key
    outcome = run(check_spot_checks, restored, manifest=expecting(manifest, "ledger"))
    assert outcome.status is Status.FAIL
    assert outcome.detail.startswith("ledger key "), outcome.detail
    assert outcome.detail.endswith(" seen by a scan but not found through its key (+4 more)"), (
        outcome.detail)


def test_a_row_stamped_after_the_backup_point_in_the_restored_copy_changed_since(
    pair, manifest, run
):
    """The point recorded for a backup can be earlier than the data it holds (a dump that ran
    on after its recorded start): a differing row stamped after it is a change, not damage."""
    source, restored = pair
    for dsn in pair:
        make_table(dsn, "ledger", 1)
    later = BACKUP_POINT.isoformat()
    run_sql(restored, f"UPDATE ledger SET amount = 101, updated_at = '{later}'::timestamptz "
                      "+ interval '1 minute'")
    outcome = run(check_spot_checks, restored, manifest=expecting(manifest, "ledger"),
                  source_dsn=source)
    assert outcome == (Status.PASS, "1 row fetched by key in 1 table; 0 equal to the source, "
                                    "1 changed since the backup")


# -- sampling: a few pages of a large table, spread through it --------------------------------


class Recording:
    """The restored connection, keeping each sample's percentage and each plain read."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.samples: list[float] = []
        self.plain_reads = 0

    def execute(self, query, params=None):
        text = query if isinstance(query, str) else query.as_string(self.conn)
        if "TABLESAMPLE" in text:
            self.samples.append(params[0])
        elif " LIMIT " in text:
            self.plain_reads += 1
        return self.conn.execute(query, params)

    def __getattr__(self, name):
        return getattr(self.conn, name)


@pytest.fixture
def sampler(restored, manifest):
    """(context, recording) over the restored copy, with a `big` table of 20,000 rows."""
    make_table(restored, "big", 20_000)
    run_sql(restored, "ANALYZE big")
    ctx = Context(make_target(restored), expecting(manifest, "big"), Tier.QUICK)
    recording = Recording(ctx.db)
    ctx._db = recording  # what the checks read through
    yield ctx, recording
    ctx.close()


def test_a_large_tables_sample_reads_a_few_pages_worth_spread_through_it(sampler):
    ctx, recording = sampler
    table = ctx.catalog.find("big")
    assert table.pages > 100
    keys = data._sample_keys(ctx, table, 5)
    assert len(set(keys)) == 5
    # Five pages' worth (the rows wanted, or SAMPLE_PAGES if more), once: enough rows came back.
    assert recording.samples == [pytest.approx(100.0 * 5 / table.pages)]
    assert recording.plain_reads == 0
    assert max(key for (key,) in keys) > 1_000  # not the first pages: ~150 rows fill one


def test_a_sample_short_of_rows_widens_tenfold_until_the_whole_table(sampler):
    ctx, recording = sampler
    run_sql(ctx.target.dsn, "DELETE FROM big WHERE id <> 15000")  # pages stay, rows go
    table = ctx.catalog.find("big")
    assert data._sample_keys(ctx, table, 5) == [(15000,)]
    first = 100.0 * 5 / table.pages
    assert recording.samples == [pytest.approx(first), pytest.approx(first * 10), 100.0]


def test_sampled_pages_that_hold_nothing_fall_back_to_a_plain_read(sampler, monkeypatch):
    monkeypatch.setattr(data, "SAMPLE_ATTEMPTS", 1)  # no widening: the few pages come back empty
    ctx, recording = sampler
    run_sql(ctx.target.dsn, "DELETE FROM big WHERE id <> 15000")
    assert data._sample_keys(ctx, ctx.catalog.find("big"), 5) == [(15000,)]
    assert len(recording.samples) == 1 and recording.plain_reads == 1


# -- per-org counts ----------------------------------------------------------------------------


def lose(dsn: str, statement: str) -> int:
    """Rows deleted as a lossy restore loses them: no cascades run."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET session_replication_role = replica")
        return conn.execute(statement).rowcount


def test_several_lost_org_counts_name_the_first_and_count_the_rest(pair, run):
    source, restored = pair
    lost = lose(restored, "DELETE FROM buildings WHERE org_id = 2")
    assert lose(restored, "DELETE FROM buildings WHERE org_id = 3") > 0
    outcome = run(check_org_counts, restored, source_dsn=source)
    assert outcome == (Status.FAIL, f"buildings: org 2 has 0 row(s) created before the backup "
                                    f"point, the source {lost} (+1 more mismatches)")


def test_tables_the_source_cannot_count_are_named_and_the_rest_compared(pair, run):
    source, restored = pair
    run_sql(source, "ALTER TABLE comps DROP COLUMN created_at",
            "ALTER TABLE tims DROP COLUMN created_at")
    outcome = run(check_org_counts, restored, source_dsn=source)
    assert outcome == (
        Status.WARN,
        'per-org counts match the source in 6 tables; comps not comparable with the source '
        '(column "created_at" does not exist); tims not comparable with the source (column '
        '"created_at" does not exist)')


def test_an_org_deleted_from_the_source_since_warns_with_the_tables_not_compared(pair, run):
    source, restored = pair
    with psycopg.connect(source) as conn:
        org = conn.execute("SELECT max(id) FROM organizations").fetchone()[0]
    assert lose(source, f"DELETE FROM organizations WHERE id = {org}") == 1
    run_sql(source, "ALTER TABLE comps DROP COLUMN created_at",
            "ALTER TABLE tims DROP COLUMN created_at")
    outcome = run(check_org_counts, restored, source_dsn=source)
    assert outcome == (
        Status.WARN,
        f"organizations: org {org} has 1 row(s) created before the backup point, the source 0: "
        'rows deleted from the source since the backup?; comps not comparable with the source '
        '(column "created_at" does not exist); tims not comparable with the source (column '
        '"created_at" does not exist)')


def test_a_source_query_stopped_by_its_timeout_gives_the_source_up(pair, run, monkeypatch):
    monkeypatch.setattr(context, "SOURCE_STATEMENT_TIMEOUT_MS", 1000)
    source, restored = pair
    with psycopg.connect(source) as holder:
        holder.execute("LOCK TABLE buildings IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        outcome = run(check_org_counts, restored, source_dsn=source)
        waited = time.monotonic() - started
    assert waited < 30  # one timeout; the tables after it are not asked for
    assert outcome == (
        Status.WARN,
        "per-org counts match the source in 1 table; source query on buildings stopped: "
        "canceling statement due to statement timeout (the limit is 1s); the rest was not "
        "compared with the source")
