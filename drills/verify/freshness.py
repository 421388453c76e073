"""How far the restored data reaches, and the RPO the drill achieved."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from psycopg import sql

from drills.verify.context import Context, Outcome, failed, fmt_duration, fmt_hours, passed, warned
from drills.verify.target import achieved_rpo

# Clocks of the database host and the backup tool's host differ a little.
CLOCK_SKEW = timedelta(minutes=5)


def check_freshness(ctx: Context) -> Outcome:
    spec = ctx.manifest.freshness
    targets = ctx.manifest.targets
    rpo = achieved_rpo(ctx.target)
    rpo_text = f"achieved RPO {fmt_duration(rpo)} vs target {fmt_hours(targets.rpo_hours)}"
    rpo_missed = rpo > targets.rpo

    table = ctx.catalog.find(spec.table)
    if table is None:
        return failed(f"{spec.table} missing: nothing dates the backup's data; {rpo_text}")
    column = spec.column or table.newest_column
    if column is None:
        return failed(f"{table.label} has no timestamp column: set freshness.column; {rpo_text}")
    found = table.column(column)
    if found is None or not found.is_timestamp:
        return failed(f"{table.label}.{column} is not a timestamp column; {rpo_text}")
    where = f"{table.label}.{column}"

    if not ctx.exact and column not in table.leading_index_columns:
        detail = (f"{where} has no index, so its newest value needs a full scan: run the "
                  f"standard tier; {rpo_text}")
        return failed(detail) if rpo_missed else warned(detail)

    newest = ctx.db.execute(
        sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), table.ident)
    ).fetchone()[0]
    if newest is None:
        return failed(f"{table.label} is empty: nothing dates the backup's data; {rpo_text}")
    newest = _as_utc(newest)
    lag = ctx.target.backup_point - newest
    if lag >= timedelta(0):
        age = f"newest {where} {fmt_duration(lag)} before the backup point"
    else:
        age = f"newest {where} {fmt_duration(-lag)} after the backup point"
    detail = f"{age} (max {fmt_duration(spec.max_staleness)}); {rpo_text}"
    if lag > spec.max_staleness:
        return failed(f"stale: {detail}")
    if rpo_missed:
        return failed(f"RPO target missed: {detail}")
    if -lag > CLOCK_SKEW:
        return warned(f"{detail}; data newer than the backup point: is the point right?")
    return passed(detail)


def _as_utc(value: datetime | date) -> datetime:
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # timestamp without time zone: stored as UTC
    return value.astimezone(UTC)
