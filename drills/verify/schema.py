"""Did the restore finish, and is the schema there: tables and migration head."""

from __future__ import annotations

from psycopg import sql

from drills.verify.context import Context, Outcome, failed, passed, skipped, warned

# Migration tools whose table can be recognised without a manifest, and their version column.
KNOWN_MIGRATION_TABLES = {
    "schema_migrations": "version",  # golang-migrate, Rails, dbmate
    "goose_db_version": "version_id",  # goose
}


def check_restore(ctx: Context) -> Outcome:
    errors = ctx.target.restore_errors
    warnings = ctx.target.restore_warnings
    if not errors:
        if warnings:
            more = f" (+{len(warnings) - 1} more)" if len(warnings) > 1 else ""
            return warned(f"{len(warnings)} warning(s): {ctx.one_line(warnings[0])}{more}")
        return passed("the restore reported no errors")
    total = max(ctx.target.restore_errors_total or 0, len(errors))
    first = ctx.one_line(errors[0])
    noun = "error" if total == 1 else "errors"
    return failed(f"{total} restore {noun}; first: {first}")


def check_tables(ctx: Context) -> Outcome:
    expected = ctx.expected_tables()
    missing = [name for name, _, table in expected if table is None]
    where = ", ".join(ctx.catalog.schemas)
    if missing:
        return failed(f"missing in {where}: {', '.join(missing)} ({len(expected) - len(missing)}"
                      f" of {len(expected)} expected tables present)")
    if not expected:
        return passed(f"no table expected by the manifest; {len(ctx.catalog.tables)} in {where}")
    return passed(f"all {len(expected)} expected tables present ({len(ctx.catalog.tables)} in "
                  f"{where})")


def check_migrations(ctx: Context) -> Outcome:
    spec = ctx.manifest.migrations
    names = [spec.table] if spec.table else list(KNOWN_MIGRATION_TABLES)
    table = next((t for t in map(ctx.catalog.find, names) if t is not None), None)
    if table is None:
        if spec.table:
            return failed(f"migration table {spec.table} missing")
        return skipped("no migration table found and none configured in the manifest")
    if spec.column:
        # A configured column is the one meant: another column's maximum would be a guess.
        if table.column(spec.column) is None:
            return failed(f"{table.label} has no column {spec.column}, the migrations.column "
                          "configured in the manifest")
        column_name = spec.column
    else:
        column_name = KNOWN_MIGRATION_TABLES.get(table.name)
        if column_name is None or table.column(column_name) is None:
            column_name = next((n for n in ("version", "version_id") if table.column(n)), None)
        if column_name is None:
            return failed(f"{table.label} has no version column: set migrations.column in the "
                          "manifest")
    column = sql.Identifier(column_name)
    # golang-migrate flags a migration that failed half-way as dirty; goose keeps rollbacks
    # as rows with is_applied false.
    applied = sql.SQL("WHERE {} ").format(sql.Identifier("is_applied")) \
        if table.column("is_applied") else sql.SQL("")
    head = ctx.db.execute(
        sql.SQL("SELECT max({col}::numeric) FROM {tbl} {applied}").format(
            col=column, tbl=table.ident, applied=applied)
    ).fetchone()[0]
    if head is None:
        return failed(f"{table.label} is empty: no migration recorded")
    head_text = f"{head.normalize():f}"
    if table.column("dirty"):
        dirty = ctx.db.execute(
            sql.SQL("SELECT {col} FROM {tbl} WHERE {dirty} LIMIT 1").format(
                col=column, tbl=table.ident, dirty=sql.Identifier("dirty"))
        ).fetchone()
        if dirty is not None:
            return failed(f"migration {dirty[0]} is dirty in {table.label}: it failed half-way")
    if spec.min_version is None:
        return passed(f"{table.label} head {head_text} (no minimum configured)")
    if head < spec.min_version:
        return failed(f"{table.label} head {head_text} is below the expected {spec.min_version}")
    return passed(f"{table.label} head {head_text} >= expected {spec.min_version}")
