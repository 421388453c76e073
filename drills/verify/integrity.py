"""Structural soundness: indexes, constraints, sequences, and org scoping of every row."""

from __future__ import annotations

from psycopg import sql

from drills.verify.catalog import OwnedSequence
from drills.verify.context import Context, Outcome, counted, failed, passed, warned


def check_indexes(ctx: Context) -> Outcome:
    rows = ctx.db.execute(
        """
        SELECT n.nspname, t.relname, ic.relname, i.indisvalid
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = ANY(%s)
        ORDER BY n.nspname, t.relname, ic.relname
        """,
        (ctx.catalog.schemas,),
    ).fetchall()
    invalid = [f"{_label(schema, index)} on {table}" for schema, table, index, valid in rows
               if not valid]
    if invalid:
        return failed(f"{len(invalid)} invalid index(es): {', '.join(invalid[:3])}"
                      + (" ..." if len(invalid) > 3 else ""))
    return passed(f"all {counted(len(rows), 'index', 'indexes')} valid")


def check_constraints(ctx: Context) -> Outcome:
    # Domain constraints have no table; they are just as unchecked when NOT VALID.
    rows = ctx.db.execute(
        """
        SELECT n.nspname, coalesce(t.relname, format_type(con.contypid, NULL)), con.conname,
               con.convalidated
        FROM pg_constraint con
        JOIN pg_namespace n ON n.oid = con.connamespace
        LEFT JOIN pg_class t ON t.oid = con.conrelid
        WHERE n.nspname = ANY(%s)
        ORDER BY n.nspname, 2, con.conname
        """,
        (ctx.catalog.schemas,),
    ).fetchall()
    unvalidated = [f"{_label(schema, owner)}.{name}" for schema, owner, name, valid in rows
                   if not valid]
    if unvalidated:
        return failed(f"{len(unvalidated)} NOT VALID constraint(s): {', '.join(unvalidated[:3])}"
                      + (" ..." if len(unvalidated) > 3 else "")
                      + "; existing rows were never checked against them")
    return passed(f"all {counted(len(rows), 'constraint')} validated")


def check_sequences(ctx: Context) -> Outcome:
    sequences = ctx.catalog.sequences
    if not sequences:
        return passed("no sequence behind a column (owned, identity or used by a DEFAULT)")
    behind: list[str] = []
    unchecked: list[str] = []
    for seq in sequences:
        if not ctx.exact and seq.column not in seq.table.leading_index_columns:
            unchecked.append(seq.label)  # max() would scan the whole table
            continue
        problem = _sequence_problem(ctx, seq)
        if problem:
            behind.append(problem)
    checked = len(sequences) - len(unchecked)
    if behind:
        return failed(f"{len(behind)} sequence(s) behind their column: {'; '.join(behind[:2])}"
                      + ("; ..." if len(behind) > 2 else ""))
    if unchecked:
        return passed(f"{checked} sequence(s) ahead of their column; {len(unchecked)} without "
                      f"an index left to the standard tier ({', '.join(unchecked[:3])})")
    return passed(f"all {checked} column sequences ahead of their column's values")


def _sequence_problem(ctx: Context, seq: OwnedSequence) -> str | None:
    last_value, is_called = ctx.db.execute(
        sql.SQL("SELECT last_value, is_called FROM {}").format(seq.ident)
    ).fetchone()
    next_value = last_value + seq.increment if is_called else last_value
    ascending = seq.increment > 0
    extreme = ctx.db.execute(
        sql.SQL("SELECT {agg}({col}) FROM {tbl}").format(
            agg=sql.SQL("max" if ascending else "min"), col=sql.Identifier(seq.column),
            tbl=seq.table.ident)
    ).fetchone()[0]
    if extreme is None:
        return None
    if (ascending and next_value <= extreme) or (not ascending and next_value >= extreme):
        word = "max" if ascending else "min"
        return (f"{seq.label} next value {next_value} but {word}({seq.column}) is {extreme}: "
                "new rows would collide")
    return None


def check_org_scoping(ctx: Context) -> Outcome:
    """Anti-joins, not constraints: a NOT VALID or disabled foreign key hides orphans."""
    catalog = ctx.catalog
    org = catalog.org_table
    if org is None:
        return ctx.missing_org_table()
    scoped = [(table, oc) for table in catalog.tables for oc in table.org_columns]
    if not scoped:
        return warned(f"no org-scoped column found (no foreign key to {org.label}, no column "
                      f"named {' or '.join(ctx.manifest.org.column_names)})")
    orphans: list[str] = []
    for table, oc in scoped:
        column = table.column(oc.column)
        key = org.column(oc.org_key)
        same_type = column is not None and key is not None and column.type == key.type
        left = sql.SQL("t.{}").format(sql.Identifier(oc.column))
        right = sql.SQL("o.{}").format(sql.Identifier(oc.org_key))
        if not same_type:  # a by-name column may be text while the key is bigint
            left, right = (sql.SQL("{}::text").format(part) for part in (left, right))
        count, example = ctx.db.execute(
            sql.SQL(
                "SELECT count(*), min(t.{col}::text) FROM {tbl} t "
                "WHERE t.{col} IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM {org} o WHERE {right} = {left})"
            ).format(col=sql.Identifier(oc.column), tbl=table.ident, org=org.ident,
                     left=left, right=right)
        ).fetchone()
        if count:
            orphans.append(f"{table.label}.{oc.column}: {count} row(s) reference a missing "
                           f"organization (e.g. {example}; {oc.how})")
    if orphans:
        more = f"; {len(orphans) - 1} more column(s)" if len(orphans) > 1 else ""
        return failed(orphans[0] + more)
    tables = len({table.oid for table, _ in scoped})
    return passed(f"{len(scoped)} org column(s) in {tables} table(s) all reference existing "
                  "organizations")


def _label(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"
