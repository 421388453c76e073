"""Data lag: newest source row vs newest restored row, on the manifest's freshness table."""

from __future__ import annotations

import psycopg

from drills.local.lag import measure_data_lag
from drills.verify.manifest import load_manifest

AUDIT_LOGS = """
CREATE TABLE audit_logs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX audit_logs_created_at_idx ON audit_logs (created_at);
"""


def _load(dsn: str, times: list[str]) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(AUDIT_LOGS)
        for at in times:
            conn.execute(
                "INSERT INTO audit_logs (action, created_at) VALUES ('login', %s)", [at]
            )


def test_lag_is_what_the_restored_copy_lacks(fresh_db, pg_cluster):
    restored = fresh_db
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "lag_source"')
        conn.execute('CREATE DATABASE "lag_source"')
    source = pg_cluster.dsn("lag_source")
    try:
        # The backup was taken after 09:00; the source went on to 11:30.
        _load(source, ["2026-11-30 08:00:00+00", "2026-11-30 09:00:00+00",
                       "2026-11-30 11:30:00+00"])
        _load(restored, ["2026-11-30 08:00:00+00", "2026-11-30 09:00:00+00"])

        lag = measure_data_lag(source, restored, load_manifest(None))

        assert lag.seconds == 2.5 * 3600
        assert "audit_logs.created_at" in lag.detail
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            conn.execute('DROP DATABASE "lag_source" WITH (FORCE)')


def test_lag_is_not_measured_when_nothing_can_tell(fresh_db, pg_cluster):
    manifest = load_manifest(None)
    # No freshness table in the restored data.
    lag = measure_data_lag(fresh_db, fresh_db, manifest)
    assert lag.seconds is None and "audit_logs" in lag.detail
    # Empty on both sides.
    _load(fresh_db, [])
    lag = measure_data_lag(fresh_db, fresh_db, manifest)
    assert lag.seconds is None and "empty" in lag.detail
    # An unreachable source: a reason, masked, never an exception.
    _load_one = "INSERT INTO audit_logs (action, created_at) VALUES ('x', now())"
    with psycopg.connect(fresh_db) as conn:
        conn.execute(_load_one)
    gone = f"postgresql://prism:s3cret@127.0.0.1:{pg_cluster.port}/prism"
    lag = measure_data_lag(gone, fresh_db, manifest)
    assert lag.seconds is None and "password authentication failed" in lag.detail
    assert "s3cret" not in lag.detail
