"""A clean restore passes every check of every tier; the quick tier stays bounded."""

from __future__ import annotations

import re
import shlex
import sys
import time

import psycopg
import pytest

from drills.ports import free_port
from drills.verify import Status, Tier, app, planned_checks, verify
from drills.verify.context import APPLICATION_NAME
from tests.drills.verify.conftest import assert_only, by_name, make_target, run_checks

QUICK = ["restore", "tables", "migrations", "indexes", "constraints", "sequences", "row_counts",
         "spot_checks", "freshness"]
STANDARD_ONLY = ["org_scoping", "org_counts"]
APP = ["app_health", "app_ready", "degraded_mode"]


def test_each_tier_reports_its_checks_in_order():
    assert planned_checks(Tier.QUICK) == QUICK + APP
    assert planned_checks("standard") == QUICK[:8] + STANDARD_ONLY + ["freshness"] + APP
    assert planned_checks(Tier.DEEP) == QUICK[:8] + STANDARD_ONLY + ["freshness", "amcheck"] + APP


@pytest.mark.parametrize("tier", [Tier.QUICK, Tier.STANDARD])
def test_clean_sample_passes(restored, manifest, tier):
    results = run_checks(restored, manifest, tier)
    assert list(results) == planned_checks(tier)
    assert_only(results, set())
    assert "achieved RPO 10m vs target 24h" in results["freshness"].detail
    assert all(r.seconds >= 0 for r in results.values())


def test_clean_sample_against_its_source_passes(samples, manifest):
    source, restored = samples.copy(), samples.copy()
    results = run_checks(restored, manifest, Tier.STANDARD, source_dsn=source)
    assert_only(results, set(), skips=frozenset({"app_health", "app_ready", "degraded_mode"}))
    assert "equal to the source" in results["spot_checks"].detail
    assert "match the source in 8 tables" in results["org_counts"].detail


def test_deep_tier_runs_pg_amcheck_over_a_clean_restore(restored, manifest, pg_cluster):
    results = run_checks(restored, manifest, Tier.DEEP, pg_bindir=pg_cluster.bindir)
    assert_only(results, set())
    assert "no corruption" in results["amcheck"].detail
    # pg_amcheck needed the extension, so it really connected to this database.
    with psycopg.connect(restored) as conn:
        assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'").fetchone()


def test_on_check_reports_each_result_as_it_finishes(restored, manifest):
    seen = []
    results = verify(make_target(restored), manifest, Tier.QUICK, on_check=seen.append)
    assert seen == results
    assert [r.name for r in seen] == planned_checks(Tier.QUICK)


def _tuples_read(conn: psycopg.Connection, table: str) -> int:
    """Rows read from `table` through any scan, as the statistics collector counts them."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute(
        """
        SELECT coalesce(t.seq_tup_read, 0)
               + coalesce((SELECT sum(i.idx_tup_read) FROM pg_stat_user_indexes i
                           WHERE i.relid = t.relid), 0)
        FROM pg_stat_user_tables t WHERE t.relname = %s
        """,
        (table,),
    ).fetchone()[0]


def _wait_for_verify_sessions_to_end(conn: psycopg.Connection) -> None:
    # A backend flushes its table statistics as it exits.
    for _ in range(100):
        conn.execute("SELECT pg_stat_clear_snapshot()")
        if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = %s",
                            (APPLICATION_NAME,)).fetchone():
            return
        time.sleep(0.05)
    raise AssertionError("verification sessions did not end")


def _read_by(tier: Tier, dsn: str, manifest, table: str, expected_minimum: int = 0) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = _tuples_read(conn, table)
        results = verify(make_target(dsn), manifest, tier)
        assert all(r.status != Status.FAIL for r in results)
        _wait_for_verify_sessions_to_end(conn)
        deadline = time.monotonic() + 5
        read = _tuples_read(conn, table) - before
        while read < expected_minimum and time.monotonic() < deadline:
            time.sleep(0.1)
            read = _tuples_read(conn, table) - before
        return read


def test_quick_tier_reads_a_bounded_part_of_the_data_and_standard_reads_it_all(
    restored, manifest
):
    with psycopg.connect(restored) as conn:
        rows = conn.execute("SELECT count(*) FROM audit_logs").fetchone()[0]
    assert rows >= 10_000
    standard = _read_by(Tier.STANDARD, restored, manifest, "audit_logs", expected_minimum=rows)
    quick = _read_by(Tier.QUICK, restored, manifest, "audit_logs")
    assert standard >= rows  # exact count, org anti-joins: whole-table reads
    assert quick < rows / 10  # a LIMIT probe, a few sampled pages, index endpoints


def test_each_check_is_timed_on_its_own_to_the_millisecond(restored, manifest):
    started = time.perf_counter()
    results = run_checks(restored, manifest, Tier.STANDARD)
    wall = time.perf_counter() - started
    seconds = [r.seconds for r in results.values()]
    assert all(s == round(s, 3) for s in seconds)
    assert any(s > 0 for s in seconds)  # reading whole tables takes measurable time
    # Each its own span, none counted from elsewhere (each rounded by up to half a ms).
    assert sum(seconds) <= wall + 0.0005 * len(seconds)


STANDIN = f"{shlex.quote(sys.executable)} -m drills.local.standin_api --port {{port}}"


def test_the_smoke_command_runs_against_the_ready_api_with_its_output_masked(restored, manifest):
    password = psycopg.conninfo.conninfo_to_dict(restored)["password"]
    script = f"import os; print(os.environ['BASE_URL'], '{password}')"
    told = []
    results = by_name(verify(make_target(restored, api_cmd=STANDIN,
                                         smoke_cmd=f'{sys.executable} -c "{script}"'),
                             manifest, Tier.QUICK, on_check=told.append))
    assert list(results)[-2:] == ["smoke_cmd", "degraded_mode"]  # while the API is up
    assert told == list(results.values())  # the progress display hears of every result
    smoke = results["smoke_cmd"]
    assert smoke.status is Status.PASS
    # The API's own address, and the restored database's password masked even when bare.
    assert re.fullmatch(r"exit 0; output: http://127\.0\.0\.1:\d+ \*+", smoke.detail), smoke.detail


def test_the_smoke_command_is_not_run_against_an_api_that_never_got_ready(
    restored, manifest, monkeypatch
):
    monkeypatch.setattr(app, "READY_TIMEOUT_SECONDS", 0.5)
    port = psycopg.conninfo.conninfo_to_dict(restored)["port"]
    unreachable = restored.replace(f":{port}/", f":{free_port()}/")
    results = run_checks(unreachable, manifest, Tier.QUICK, api_cmd=STANDIN,
                         smoke_cmd=f"{sys.executable} -c pass")
    smoke = results["smoke_cmd"]
    assert (smoke.name, smoke.status, smoke.detail, smoke.seconds) == (
        "smoke_cmd", Status.FAIL, "not run: the API never answered /ready 200", 0.0)
