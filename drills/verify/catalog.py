"""What the database says about itself: tables, keys, org columns, timestamps, sequences.

Nothing here assumes Prism's column names: keys come from primary keys (or a unique index on
NOT NULL columns), org columns from foreign keys to the organizations table (or a conventional
name), timestamps from column types. The manifest only names what is expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from drills.verify.manifest import Manifest

TIMESTAMP_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")

# Preference order when a table has several timestamp columns.
CREATED_NAMES = ("created_at", "inserted_at", "created_on", "created", "creation_time",
                 "occurred_at", "recorded_at", "logged_at", "event_time", "timestamp", "ts")
UPDATED_NAMES = ("updated_at", "modified_at", "updated_on", "last_modified", "changed_at",
                 "updated")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool

    @property
    def is_timestamp(self) -> bool:
        return self.type in TIMESTAMP_TYPES


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    validated: bool


@dataclass(frozen=True)
class OrgColumn:
    """A column whose value must be the key of an existing organization."""

    column: str
    org_key: str  # the referenced column of the organizations table
    how: str  # "foreign key <name>" or "by name", for details


@dataclass
class Table:
    oid: int
    schema: str
    name: str
    partitioned: bool
    estimated_rows: float | None  # None: never analysed (a fresh restore)
    pages: int
    columns: list[Column] = field(default_factory=list)
    key: tuple[str, ...] = ()
    key_is_primary: bool = False
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    leading_index_columns: set[str] = field(default_factory=set)
    org_columns: list[OrgColumn] = field(default_factory=list)

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def label(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def timestamp_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.is_timestamp]

    @property
    def created_column(self) -> str | None:
        """The column that says when a row was created, when one is recognisable."""
        stamps = self.timestamp_columns
        return next((n for n in CREATED_NAMES if n in stamps), None)

    @property
    def updated_column(self) -> str | None:
        stamps = self.timestamp_columns
        return next((n for n in UPDATED_NAMES if n in stamps), None)

    @property
    def newest_column(self) -> str | None:
        """The best timestamp for "how recent is this table": creation, update, else any."""
        stamps = self.timestamp_columns
        return self.created_column or self.updated_column or (stamps[0] if stamps else None)


@dataclass(frozen=True)
class OwnedSequence:
    schema: str
    name: str
    table: Table
    column: str
    increment: int

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def label(self) -> str:
        return f"{self.table.label}.{self.column}"


@dataclass
class Catalog:
    schemas: list[str]
    tables: list[Table]
    sequences: list[OwnedSequence]
    org_table: Table | None

    def find(self, name: str) -> Table | None:
        """A table by name, searched through the schemas in order; 'schema.name' also works."""
        if "." in name:
            schema, _, bare = name.partition(".")
            return next((t for t in self.tables if (t.schema, t.name) == (schema, bare)), None)
        for schema in self.schemas:
            for table in self.tables:
                if (table.schema, table.name) == (schema, name):
                    return table
        return None


def discover(conn: psycopg.Connection, manifest: Manifest) -> Catalog:
    schemas = list(manifest.schemas)
    tables = _tables(conn, schemas)
    by_oid = {t.oid: t for t in tables}
    oids = list(by_oid)
    _add_columns(conn, by_oid, oids)
    _add_indexes(conn, by_oid, oids)
    _add_foreign_keys(conn, by_oid, oids)
    catalog = Catalog(
        schemas=schemas, tables=tables, sequences=_sequences(conn, by_oid, oids), org_table=None
    )
    catalog.org_table = catalog.find(manifest.org.table)
    _add_org_columns(catalog, manifest)
    return catalog


def _tables(conn: psycopg.Connection, schemas: list[str]) -> list[Table]:
    rows = conn.execute(
        """
        SELECT c.oid, n.nspname, c.relname, c.relkind = 'p',
               CASE WHEN c.relkind = 'p' THEN
                    (SELECT CASE WHEN bool_and(l.reltuples >= 0) THEN sum(l.reltuples) END
                     FROM pg_partition_tree(c.oid) p JOIN pg_class l ON l.oid = p.relid
                     WHERE p.isleaf)
                    WHEN c.reltuples >= 0 THEN c.reltuples END,
               CASE WHEN c.relkind = 'p' THEN
                    (SELECT coalesce(sum(pg_relation_size(p.relid)), 0)
                     FROM pg_partition_tree(c.oid) p WHERE p.isleaf)
                    ELSE pg_relation_size(c.oid) END
               / current_setting('block_size')::bigint
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s)
        ORDER BY array_position(%s, n.nspname::text), c.relname
        """,
        (schemas, schemas),
    ).fetchall()
    return [
        Table(oid=oid, schema=schema, name=name, partitioned=partitioned,
              estimated_rows=None if estimate is None else float(estimate), pages=int(pages))
        for oid, schema, name, partitioned, estimate, pages in rows
    ]


def _add_columns(conn: psycopg.Connection, by_oid: dict[int, Table], oids: list[int]) -> None:
    rows = conn.execute(
        """
        SELECT a.attrelid, a.attname, format_type(a.atttypid, NULL), a.attnotnull
        FROM pg_attribute a
        WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attrelid, a.attnum
        """,
        (oids,),
    ).fetchall()
    for oid, name, type_name, not_null in rows:
        by_oid[oid].columns.append(Column(name=name, type=type_name, not_null=not_null))


def _add_indexes(conn: psycopg.Connection, by_oid: dict[int, Table], oids: list[int]) -> None:
    rows = conn.execute(
        """
        SELECT i.indrelid, i.indisprimary, i.indisunique, i.indisvalid,
               am.amname = 'btree', i.indpred IS NULL,
               ARRAY(SELECT a.attname::text
                     FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY k(num, pos)
                     LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
                     ORDER BY k.pos)
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_am am ON am.oid = ic.relam
        WHERE i.indrelid = ANY(%s)
        ORDER BY i.indrelid, i.indnkeyatts, ic.relname
        """,
        (oids,),
    ).fetchall()
    for oid, primary, unique, valid, btree, whole_table, columns in rows:
        table = by_oid[oid]
        # An expression key column has no attribute: NULL name.
        plain = whole_table and None not in columns
        if valid and btree and whole_table and columns and columns[0] is not None:
            table.leading_index_columns.add(columns[0])
        if primary and plain:
            table.key, table.key_is_primary = tuple(columns), True
        elif (unique and valid and plain and not table.key_is_primary and not table.key
              and all(getattr(table.column(c), "not_null", False) for c in columns)):
            table.key = tuple(columns)


def _add_foreign_keys(conn: psycopg.Connection, by_oid: dict[int, Table], oids: list[int]) -> None:
    rows = conn.execute(
        """
        SELECT con.conrelid, con.conname, rn.nspname, rc.relname, con.convalidated,
               ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, pos)
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
                     ORDER BY k.pos),
               ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, pos)
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
                     ORDER BY k.pos)
        FROM pg_constraint con
        JOIN pg_class rc ON rc.oid = con.confrelid
        JOIN pg_namespace rn ON rn.oid = rc.relnamespace
        WHERE con.contype = 'f' AND con.conrelid = ANY(%s) AND con.conparentid = 0
        ORDER BY con.conrelid, con.conname
        """,
        (oids,),
    ).fetchall()
    for oid, name, ref_schema, ref_table, validated, columns, ref_columns in rows:
        by_oid[oid].foreign_keys.append(
            ForeignKey(name=name, columns=tuple(columns), ref_schema=ref_schema,
                       ref_table=ref_table, ref_columns=tuple(ref_columns), validated=validated)
        )


def _sequences(
    conn: psycopg.Connection, by_oid: dict[int, Table], oids: list[int]
) -> list[OwnedSequence]:
    # Serial columns own their sequence with an 'a' dependency, identity columns with 'i'. A
    # sequence used only through a column DEFAULT nextval() (hand-written DDL, not OWNED BY) is
    # referenced by the default expression instead ('n' from pg_attrdef): just as fatal when a
    # dump loses its setval, so it is checked too.
    rows = conn.execute(
        """
        SELECT DISTINCT ON (d.refobjid, a.attnum, s.oid)
               sn.nspname, s.relname, d.refobjid, a.attname, seq.seqincrement, a.attnum
        FROM pg_depend d
        JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_namespace sn ON sn.oid = s.relnamespace
        JOIN pg_sequence seq ON seq.seqrelid = s.oid
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i') AND d.refobjid = ANY(%(oids)s)
        UNION ALL
        SELECT DISTINCT ON (ad.adrelid, a.attnum, s.oid)
               sn.nspname, s.relname, ad.adrelid, a.attname, seq.seqincrement, a.attnum
        FROM pg_attrdef ad
        JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'n'
        JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
        JOIN pg_namespace sn ON sn.oid = s.relnamespace
        JOIN pg_sequence seq ON seq.seqrelid = s.oid
        JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
        WHERE ad.adrelid = ANY(%(oids)s)
        """,
        {"oids": oids},
    ).fetchall()
    seen: set[tuple[int, str, str, str]] = set()
    sequences = []
    for schema, name, table_oid, column, increment, _attnum in sorted(
        rows, key=lambda row: (row[2], row[5], row[0], row[1])
    ):
        if (table_oid, column, schema, name) in seen:
            continue  # a serial column's default references the sequence it also owns
        seen.add((table_oid, column, schema, name))
        sequences.append(OwnedSequence(schema=schema, name=name, table=by_oid[table_oid],
                                       column=column, increment=increment))
    return sequences


def _add_org_columns(catalog: Catalog, manifest: Manifest) -> None:
    org = catalog.org_table
    if org is None:
        return
    org_key = org.key[0] if len(org.key) == 1 else None
    for table in catalog.tables:
        linked: set[str] = set()
        for fk in table.foreign_keys:
            if (fk.ref_schema, fk.ref_table) == (org.schema, org.name) and len(fk.columns) == 1:
                table.org_columns.append(
                    OrgColumn(column=fk.columns[0], org_key=fk.ref_columns[0],
                              how=f"foreign key {fk.name}")
                )
                linked.add(fk.columns[0])
        if table is org or org_key is None:
            continue
        for name in manifest.org.column_names:
            if name not in linked and table.column(name) is not None:
                table.org_columns.append(OrgColumn(column=name, org_key=org_key, how="by name"))
