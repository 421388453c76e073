"""Data lag: how far the restored data trails its live source.

RPO in a record is the backup's age at drill start (what a restore of it would lose now).
With a live source to compare, the drill also measures what the restored copy actually lacks:
the newest source row's time minus the newest restored row's, on the manifest's freshness
table (the one whose timestamps say how recent the data is).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

from drills.verify.catalog import discover
from drills.verify.manifest import Manifest
from recovery.redact import mask_secrets

CONNECT_TIMEOUT = 10  # seconds


@dataclass(frozen=True)
class DataLag:
    seconds: float | None  # None: not measurable, `detail` says why
    detail: str


def measure_data_lag(source_dsn: str, restored_dsn: str, manifest: Manifest) -> DataLag:
    """Newest source row minus newest restored row, on the freshness table; never raises for
    a database that cannot tell (no such table, no timestamp, empty, unreachable)."""
    try:
        with psycopg.connect(restored_dsn, connect_timeout=CONNECT_TIMEOUT) as restored:
            catalog = discover(restored, manifest)
            table = catalog.find(manifest.freshness.table)
            if table is None:
                return DataLag(None, f"{manifest.freshness.table} is not in the restored data")
            column = manifest.freshness.column or table.newest_column
            if column is None or table.column(column) is None:
                return DataLag(None, f"{table.label} has no timestamp column to compare")
            query = sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), table.ident)
            restored_newest = restored.execute(query).fetchone()[0]
        with psycopg.connect(source_dsn, connect_timeout=CONNECT_TIMEOUT) as source:
            source_newest = source.execute(query).fetchone()[0]
    except psycopg.Error as err:
        reason = mask_secrets(" ".join(str(err).split()))[:200]
        return DataLag(None, f"data lag not measured: {reason}")
    where = f"{table.label}.{column}"
    if source_newest is None:
        return DataLag(None, f"{where} is empty in the source")
    if restored_newest is None:
        return DataLag(None, f"{where} is empty in the restored data")
    lag = (_as_utc(source_newest) - _as_utc(restored_newest)).total_seconds()
    return DataLag(round(lag, 3), f"newest {where}: source vs restored")


def _as_utc(value: datetime | date) -> datetime:
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # timestamp without time zone: stored as UTC
    return value.astimezone(UTC)
