"""The data itself: row counts, rows fetched by key, and per-org counts against the source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from drills.verify.catalog import Table
from drills.verify.context import Context, Outcome, counted, failed, passed, skipped, warned

SAMPLE_PAGES = 4  # pages a quick sample reads per table, before widening
SAMPLE_ATTEMPTS = 4


def check_row_counts(ctx: Context) -> Outcome:
    problems: list[str] = []
    tallies: list[tuple[str, int]] = []
    for name, spec, table in ctx.expected_tables():
        if table is None:
            continue  # the tables check reports it
        if ctx.exact:
            rows = ctx.db.execute(sql.SQL("SELECT count(*) FROM {}").format(table.ident))
        else:
            # Reads at most min_rows rows, whatever the table's size.
            rows = ctx.db.execute(
                sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT %s) AS probe").format(
                    table.ident),
                (max(spec.min_rows, 1),),
            )
        count = rows.fetchone()[0]
        tallies.append((name, count))
        if count == 0 and spec.min_rows > 0:
            problems.append(f"{name} is empty")
        elif count < spec.min_rows:
            problems.append(f"{name} has {count} row(s), fewer than the expected {spec.min_rows}")
    if problems:
        return failed("; ".join(problems))
    if not tallies:
        return skipped("no expected table to count")
    if ctx.exact:
        total = sum(count for _, count in tallies)
        smallest = min(tallies, key=lambda item: item[1])
        return passed(f"{counted(len(tallies), 'table')}, {counted(total, 'row')}; smallest "
                      f"{smallest[0]} ({smallest[1]:,})")
    estimate = _estimated_total(ctx, [name for name, _ in tallies])
    return passed(f"{counted(len(tallies), 'table')} non-empty and at their minimums (bounded probe"
                  f"{estimate})")


def _estimated_total(ctx: Context, names: list[str]) -> str:
    tables = [ctx.catalog.find(name) for name in names]
    estimates = [t.estimated_rows for t in tables if t is not None]
    if not estimates or any(e is None for e in estimates):
        return ""  # a fresh restore is not analysed yet
    return f"; ~{int(sum(estimates)):,} rows estimated"


# -- spot checks ---------------------------------------------------------------------------


@dataclass
class _SpotTally:
    fetched: int = 0
    tables: int = 0
    equal: int = 0
    changed_since: int = 0  # differ, but the row changed in the source after the backup
    # Differ, in a table without an update timestamp: nothing tells whether the row changed in
    # the source since the backup (a status flipped) or was not restored faithfully.
    undated: dict[str, int] = field(default_factory=dict)
    gone_from_source: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    incomparable: list[str] = field(default_factory=list)  # the source's schema moved on

    @property
    def compared(self) -> int:
        """Rows compared with the source, whatever the outcome."""
        return (self.equal + self.changed_since + sum(self.undated.values())
                + self.gone_from_source)


def check_spot_checks(ctx: Context) -> Outcome:
    """N random rows per table fetched by key; with a source, compared by hash."""
    per_table = ctx.manifest.spot_checks.rows_per_table
    source = ctx.source()
    tally = _SpotTally()
    for table in ctx.major_tables():
        if not table.key:
            tally.notes.append(f"{table.label} has no primary or unique NOT NULL key")
            continue
        keys = _sample_keys(ctx, table, per_table)
        if not keys:
            continue  # empty: the row_counts check reports it
        tally.tables += 1
        rows = {}
        for key in keys:
            row = _fetch(ctx.db, table, key, ctx.target.backup_point)
            if row is None:
                tally.failures.append(f"{table.label} key {_show(key)} seen by a scan but not "
                                      "found through its key")
                continue
            tally.fetched += 1
            rows[key] = row
        if source is not None and rows and ctx.source_error is None:
            _compare_with_source(ctx, source, table, rows, tally)
    return _spot_outcome(ctx, tally)


def _spot_outcome(ctx: Context, tally: _SpotTally) -> Outcome:
    if tally.failures:
        more = f" (+{len(tally.failures) - 1} more)" if len(tally.failures) > 1 else ""
        return failed(tally.failures[0] + more)
    detail = f"{counted(tally.fetched, 'row')} fetched by key in {counted(tally.tables, 'table')}"
    if ctx.has_source and (ctx.source_error is None or tally.compared):
        detail += f"; {tally.equal} equal to the source"
        if tally.changed_since:
            detail += f", {tally.changed_since} changed since the backup"
        if tally.gone_from_source:
            detail += f", {tally.gone_from_source} deleted from the source since"
    if tally.notes:
        detail += "; " + "; ".join(tally.notes)
    if ctx.source_error is not None:
        return warned(f"{detail}; {'' if tally.compared else 'not compared, '}{ctx.source_error}")
    if tally.incomparable:
        return warned(f"{detail}; " + "; ".join(tally.incomparable))
    if tally.undated:
        where = ", ".join(f"{n} in {label}" for label, n in tally.undated.items())
        return warned(f"{detail}; {where} differ from the source, in a table without an update "
                      "timestamp (changed since the backup, or not restored faithfully)")
    if tally.fetched == 0:
        # Empty tables are the row_counts check's finding; keyless ones cannot be fetched.
        return (warned if tally.notes else failed)(f"no row could be sampled: {detail}")
    return passed(detail)


def _sample_keys(ctx: Context, table: Table, wanted: int) -> list[tuple[Any, ...]]:
    """Keys of `wanted` random rows, reading a few pages rather than the table.

    TABLESAMPLE SYSTEM picks whole pages at random; the percentage starts at a few pages'
    worth and widens only when those pages turn out empty.
    """
    key_list = sql.SQL(", ").join(map(sql.Identifier, table.key))
    pages = max(table.pages, 1)
    percent = min(100.0, 100.0 * max(SAMPLE_PAGES, wanted) / pages)
    keys: list[tuple[Any, ...]] = []
    for _ in range(SAMPLE_ATTEMPTS):
        keys = [tuple(row) for row in ctx.db.execute(
            sql.SQL("SELECT {keys} FROM {tbl} TABLESAMPLE SYSTEM (%s) REPEATABLE (%s)").format(
                keys=key_list, tbl=table.ident),
            (percent, ctx.seed % 2_147_483_647),
        )]
        if len(keys) >= wanted or percent >= 100.0:
            break
        percent = min(100.0, percent * 10)
    if not keys:
        # Pages can all be chosen empty by chance on a tiny table; a plain read settles it.
        keys = [tuple(row) for row in ctx.db.execute(
            sql.SQL("SELECT {keys} FROM {tbl} LIMIT %s").format(keys=key_list, tbl=table.ident),
            (wanted,),
        )]
    keys.sort(key=repr)  # sample order is physical; sort before the seeded choice
    return ctx.rng(table.label).sample(keys, min(wanted, len(keys)))


@dataclass(frozen=True)
class _Row:
    digest: str
    # Every timestamp of the row is before the backup point, so the row cannot have changed
    # since; None: the table has no update timestamp, so nothing tells.
    settled: bool | None


def _settled_expression(table: Table) -> sql.Composable:
    """SQL for "this row was settled at the backup point", or NULL when nothing can tell.

    A row can change without its update timestamp moving (an export completing sets status and
    completed_at), so every timestamp column must be before the point; a NULL one (not
    completed yet) does not count against it. A table without an update timestamp may change
    rows with nothing recording when: it is undated however many timestamps it has.
    """
    if table.updated_column is None:
        return sql.SQL("NULL::boolean")
    return sql.SQL(" AND ").join(
        sql.SQL("coalesce({} < %(point)s, true)").format(sql.Identifier(c))
        for c in table.timestamp_columns)


def _fetch(conn: psycopg.Connection, table: Table, key: tuple[Any, ...], point) -> _Row | None:
    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns)
    settled = _settled_expression(table)
    match = sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(f"k{i}"))
        for i, c in enumerate(table.key))
    params = {"point": point, **{f"k{i}": v for i, v in enumerate(key)}}
    row = conn.execute(
        sql.SQL("SELECT md5(ROW({cols})::text), {settled} FROM {tbl} WHERE {match}").format(
            cols=columns, settled=settled, tbl=table.ident, match=match),
        params,
    ).fetchone()
    return None if row is None else _Row(digest=row[0], settled=row[1])


def _compare_with_source(
    ctx: Context, source: psycopg.Connection, table: Table,
    rows: dict[tuple[Any, ...], _Row], tally: _SpotTally,
) -> None:
    for key, restored in rows.items():
        try:
            original = _fetch(source, table, key, ctx.target.backup_point)
        except psycopg.Error as err:
            tally.incomparable.append(ctx.source_query_failed(err, table.label))
            return
        if original is None:
            tally.gone_from_source += 1
        elif original.digest == restored.digest:
            tally.equal += 1
        elif restored.settled is None:
            tally.undated[table.label] = tally.undated.get(table.label, 0) + 1
        elif restored.settled is False or original.settled is False:
            tally.changed_since += 1
        else:
            tally.failures.append(f"{table.label} key {_show(key)} differs from the source "
                                  "although it predates the backup point")


def _show(key: tuple[Any, ...]) -> str:
    return str(key[0]) if len(key) == 1 else "(" + ", ".join(map(str, key)) + ")"


# -- per-org counts against the source -------------------------------------------------------


def check_org_counts(ctx: Context) -> Outcome:
    if not ctx.has_source:
        return skipped("no source database to compare with")
    source = ctx.source()
    if source is None:
        return warned(f"not compared: {ctx.source_error}")
    org = ctx.catalog.org_table
    if org is None:
        return ctx.missing_org_table()
    lost: list[str] = []
    extra: list[str] = []
    undated: list[str] = []
    notes: list[str] = []
    compared = 0
    for table in ctx.catalog.tables:
        if table is org and len(org.key) == 1:
            org_column = org.key[0]
        elif table.org_columns:
            org_column = table.org_columns[0].column
        else:
            continue
        query = _org_count_query(table, org_column)
        params = {"point": ctx.target.backup_point}
        restored = dict(ctx.db.execute(query, params).fetchall())
        try:
            original = dict(source.execute(query, params).fetchall())
        except psycopg.Error as err:
            notes.append(ctx.source_query_failed(err, table.label))
            if ctx.source_error is not None:
                break  # the source was given up
            continue
        compared += 1
        dated = table.created_column is not None
        for org_id in sorted(set(original) | set(restored), key=str):
            have, want = restored.get(org_id, 0), original.get(org_id, 0)
            if have == want:
                continue
            line = (f"{table.label}: org {org_id} has {have} row(s) created before the backup "
                    f"point, the source {want}")
            if not dated:
                undated.append(line.replace(" created before the backup point", ""))
            elif have < want:
                lost.append(line)
            else:
                extra.append(line)
    if lost:
        more = f" (+{len(lost) - 1} more mismatches)" if len(lost) > 1 else ""
        return failed(lost[0] + more)
    suffix = ("; " + "; ".join(notes)) if notes else ""
    if extra:
        return warned(f"{extra[0]}: rows deleted from the source since the backup?{suffix}")
    if undated:
        return warned(f"{undated[0]}: the table has no creation timestamp, so rows written "
                      f"since the backup count too{suffix}")
    if notes:
        return warned(f"per-org counts match the source in {counted(compared, 'table')}; "
                      + "; ".join(notes))
    return passed(f"per-org counts of rows created before the backup point match the source in "
                  f"{counted(compared, 'table')}")


def _org_count_query(table: Table, org_column: str) -> sql.Composed:
    created = table.created_column
    where = (sql.SQL("WHERE {} < %(point)s").format(sql.Identifier(created)) if created
             else sql.SQL(""))
    return sql.SQL("SELECT {org}::text, count(*) FROM {tbl} {where} GROUP BY 1").format(
        org=sql.Identifier(org_column), tbl=table.ident, where=where)
