"""Why a plain script's restore failed where it did: each error traced to a missing extension.

Supabase (and any platform with extensions of its own) dumps objects that a vanilla PostgreSQL
cannot hold: `CREATE EXTENSION pg_graphql`, then `COMMENT ON EXTENSION`, grants on the
extension's functions, rows of its configuration tables (`cron.job`, `vault.secrets`), and
application objects built on it. Instead of matching error messages, each error is placed in
the pg_dump table-of-contents entry it came from (psql reports the script line; pg_dump heads
every entry with `-- Name: …; Type: …; Schema: …`) and judged by what that entry is:

- the extension's own entries, objects in the schemas it lives in or creates, and later entries
  about objects that already failed because of it: *ignored* when it is a platform extension;
- an application object (outside the platform's schemas) depending on a platform extension:
  a *warning* naming it — or *blocking* when it is a table, whose rows are then lost;
- anything depending on a missing extension that is not the platform's: *blocking*, with how
  to get it;
- everything else: *blocking*, as before.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from enum import StrEnum

# Extensions Supabase installs or offers itself. A Supabase backup restored elsewhere may lack
# any of them; the application's data does not live in them.
PLATFORM_EXTENSIONS = frozenset({
    "pg_graphql", "pg_net", "pgsodium", "supabase_vault", "pg_stat_monitor", "pgjwt", "pg_cron",
    "pgaudit", "plv8", "pg_hashids", "pg_tle", "wrappers", "http", "pg_jsonschema", "pgroonga",
    "pg_stat_statements", "index_advisor", "supautils", "pgmq", "pg_repack", "hypopg",
    "pgcrypto", "uuid-ossp", "pg_safeupdate", "safeupdate", "pg_backtrace", "plpgsql_check",
    "pgtap", "pg_plan_filter", "rum", "timescaledb", "postgis", "vector", "pgrouting",
    "postgis_topology", "postgis_raster", "postgis_tiger_geocoder", "address_standardizer",
    "address_standardizer_data_us", "pg_walinspect", "pgstattuple", "pg_buffercache",
    "pg_prewarm", "pg_trgm", "citext", "ltree", "hstore", "moddatetime", "unaccent",
})  # fmt: skip
# Schemas of Supabase's platform services: their objects are not the application's data.
PLATFORM_SCHEMAS = frozenset({
    "auth", "storage", "graphql", "graphql_public", "realtime", "_realtime", "supabase_functions",
    "supabase_migrations", "vault", "pgsodium", "pgsodium_masks", "net", "extensions",
    "_analytics", "pgbouncer", "cron", "pgtle", "pgmq", "_timescaledb_catalog",
})  # fmt: skip
# Schemas an extension's own script creates (so the dump never does): `WITH SCHEMA` names
# only where the extension is installed.
EXTENSION_CREATES_SCHEMAS = {
    "pg_cron": {"cron"},
    "pg_net": {"net"},
    "pgsodium": {"pgsodium_masks"},
    "pg_tle": {"pgtle"},
    "pgmq": {"pgmq"},
    "timescaledb": {"_timescaledb_catalog", "_timescaledb_internal", "_timescaledb_config",
                    "_timescaledb_cache", "_timescaledb_functions", "timescaledb_information",
                    "timescaledb_experimental"},
    "postgis_topology": {"topology"},
    "postgis_tiger_geocoder": {"tiger", "tiger_data"},
}

_TOC = re.compile(
    rb"^-- (?:Data for )?Name: (.*); Type: (.*); Schema: (.*); Owner: ?(.*?)\r?$"
)
_CONNECT = re.compile(rb"^\\connect\s+(.*?)\s*$")
_CREATE_EXTENSION = re.compile(
    rb'^CREATE EXTENSION (?:IF NOT EXISTS )?("(?:[^"]|"")+"|[\w-]+)'
    rb'(?: WITH SCHEMA ("(?:[^"]|"")+"|\w+))?'
)
_QUALIFIED = re.compile(r'"?([A-Za-z_][\w$]*)"?\."?[A-Za-z_][\w$]*')
_SCHEMA_IN_MESSAGE = re.compile(r'schema "([^"]+)"')
_KIND_PREFIX = re.compile(r"^(?:TABLE|VIEW|MATERIALIZED VIEW|SEQUENCE|FUNCTION|PROCEDURE|TYPE|"
                          r"DOMAIN|SCHEMA|EXTENSION|COLUMN|INDEX|TRIGGER|POLICY|RULE|"
                          r"CONSTRAINT|AGGREGATE) ")
# Entry types that hold rows: losing one loses data.
_DATA_TYPES = frozenset({"TABLE", "TABLE DATA", "SEQUENCE SET"})


def unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name


_FIRST_TOKEN = re.compile(r'^("(?:[^"]|"")+"|[^\s(]+)')


def _object_name(entry_name: str) -> str:
    """'TABLE "jobs"' → 'jobs'; 'FUNCTION "sign"("payload" json)' → 'sign'; 'job jobid'
    (a column default) → 'job': the object an entry is about, as its CREATE entry names it."""
    name = _KIND_PREFIX.sub("", entry_name.strip())
    match = _FIRST_TOKEN.match(name)
    return unquote(match.group(1)) if match else name


class Kind(StrEnum):
    IGNORED = "ignored"
    WARNING = "warning"
    BLOCKING = "blocking"


@dataclass(frozen=True)
class TocEntry:
    database: str | None
    name: str
    type: str
    schema: str  # "-" when the object has none

    @property
    def label(self) -> str:
        name = _object_name(self.name)
        return name if self.schema in ("-", "") else f"{self.schema}.{name}"


@dataclass
class MissingExtension:
    name: str
    schemas: set[str]
    platform: bool


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str


@dataclass
class SkippedCopy:
    database: str | None
    table: str  # schema.table
    rows: int
    reason: str = ""
    causes: list[MissingExtension] = field(default_factory=list)  # extensions its table needs

    def describe(self) -> str:
        where = f" in database {self.database}" if self.database else ""
        return f"COPY {self.table}{where}: {self.rows} row(s) not restored ({self.reason})"


@dataclass
class ScriptTrace:
    """Built while a script streams into psql; judges psql's errors afterwards."""

    available_extensions: frozenset[str]
    platform: bool  # a Supabase backup: its platform extensions may be missing
    database: str | None = None
    _lines: list[int] = field(default_factory=list)
    _entries: list[TocEntry] = field(default_factory=list)
    missing: dict[str | None, dict[str, MissingExtension]] = field(default_factory=dict)
    failed: dict[tuple[str | None, str], list[MissingExtension]] = field(default_factory=dict)
    warned: set[tuple[str | None, str]] = field(default_factory=set)
    _created_labels: set[tuple[str | None, str]] | None = None

    # -- while streaming -------------------------------------------------------------------------
    def note(self, line_no: int, line: bytes) -> None:
        """Look at one script line outside COPY data (cheap: most lines match nothing)."""
        if line.startswith(b"-- ") and b"; Type: " in line:
            match = _TOC.match(line)
            if match:
                name, type_, schema, _owner = (g.decode(errors="replace") for g in match.groups())
                self.add_entry(line_no, TocEntry(self.database, name, type_, schema))
        elif line.startswith(b"\\connect"):
            match = _CONNECT.match(line)
            if match:
                self.database = _connect_target(match.group(1).decode(errors="replace"))
                self.add_entry(line_no, TocEntry(self.database, "", "CONNECT", "-"))
        elif line.startswith(b"CREATE EXTENSION"):
            created = parse_create_extension(line)
            if created:
                self.add_extension(*created)

    def add_entry(self, position: int, entry: TocEntry) -> None:
        """An entry of the dump's table of contents, at its script line (or list position)."""
        self._lines.append(position)
        self._entries.append(entry)
        self._created_labels = None

    def add_extension(self, name: str, schema: str | None) -> None:
        """The dump creates extension `name` (WITH SCHEMA `schema`) in the current database."""
        if name in self.available_extensions:
            return
        schemas = set(EXTENSION_CREATES_SCHEMAS.get(name, ()))
        if schema and schema not in ("pg_catalog", "public"):
            schemas.add(schema)
        self.missing.setdefault(self.database, {})[name] = MissingExtension(
            name, schemas, self.platform and name in PLATFORM_EXTENSIONS
        )

    def has_missing(self) -> bool:
        return bool(self.missing.get(self.database))

    def copy_cause(self, schema: str) -> list[MissingExtension]:
        """Missing extensions of the current database that live in or create `schema`."""
        return [e for e in self.missing.get(self.database, {}).values() if schema in e.schemas]

    # -- afterwards ------------------------------------------------------------------------------
    def judge_copy(self, skipped: SkippedCopy) -> Kind:
        """After `judge` saw every error: is losing this COPY's rows the platform's loss?"""
        causes = skipped.causes or self.failed.get((skipped.database, skipped.table), [])
        schema = skipped.table.split(".", 1)[0]
        if not causes:
            skipped.reason = "its table could not be created; see the restore errors"
            return Kind.BLOCKING
        names = ", ".join(sorted(c.name for c in causes))
        if all(c.platform for c in causes) and (
            schema in PLATFORM_SCHEMAS or any(schema in c.schemas for c in causes)
        ):
            skipped.reason = f"its table needs platform extension {names}, not installed here"
            return Kind.IGNORED
        skipped.reason = f"its table needs extension {names}, not installed here"
        return Kind.BLOCKING

    def entry_at(self, line_no: int) -> TocEntry | None:
        index = bisect_right(self._lines, line_no) - 1
        return self._entries[index] if index >= 0 else None

    def judge(self, line_no: int | None, message: str) -> Verdict | None:
        """The verdict on one psql error, or None when no missing extension explains it."""
        return self.judge_entry(self.entry_at(line_no) if line_no is not None else None, message)

    def judge_entry(self, entry: TocEntry | None, message: str) -> Verdict | None:
        """The verdict on an error of `entry`, or None when no missing extension explains it."""
        if entry is None or entry.type == "CONNECT":
            return None
        if (self.platform and entry.type == "EVENT TRIGGER"
                and message.startswith("permission denied to change owner of event trigger")):
            # Supabase's postgres role owned its event triggers before it was demoted; an
            # event trigger's owner must be a superuser, so the trigger stays the drill's.
            return Verdict(Kind.IGNORED, "Supabase event trigger owned by its non-superuser "
                                         "postgres role; the trigger itself is restored")
        missing = self.missing.get(entry.database, {})
        if not missing:
            return None
        culprits, what = self._culprits(entry, message, missing)
        if not culprits:
            return None
        key = (entry.database, entry.label)
        if what.endswith(" was not created"):
            # A later entry about an object whose failure is already judged: that verdict
            # (blocking, warning or ignored) stands for both.
            return Verdict(Kind.IGNORED, f"follows from {what.removesuffix(' was not created')}"
                                         " not being restored, reported above")
        if entry.type not in ("ACL", "COMMENT", "DEFAULT ACL"):
            self.failed.setdefault(key, culprits)
        names = ", ".join(sorted(e.name for e in culprits))
        if len(culprits) > 1:
            names = f"one of {names}"
        foreign = [e.name for e in culprits if not e.platform]
        if foreign:
            return Verdict(Kind.BLOCKING, (
                f"{entry.type} {entry.label} needs extension {', '.join(sorted(foreign))}, "
                "which this PostgreSQL does not have: install it, or restore with an "
                "installation that has it (--pg-bindir)"))
        application = entry.schema not in ("-", "") and entry.schema not in PLATFORM_SCHEMAS \
            and not any(entry.schema in e.schemas for e in missing.values())
        if application and entry.type in _DATA_TYPES:
            return Verdict(Kind.BLOCKING, (
                f"application {entry.type.lower()} {entry.label} depends on platform extension "
                f"{names}, not installed here: it and its rows are not restored"))
        if application:
            first = (entry.database, entry.label) not in self.warned
            self.warned.add((entry.database, entry.label))
            return Verdict(Kind.WARNING if first else Kind.IGNORED, (
                f"application {entry.type.lower()} {entry.label} depends on platform extension "
                f"{names}, not installed here: not restored"))
        return Verdict(Kind.IGNORED, f"platform extension {names} not installed here ({what})")

    def _culprits(
        self, entry: TocEntry, message: str, missing: dict[str, MissingExtension]
    ) -> tuple[list[MissingExtension], str]:
        if entry.type in ("EXTENSION", "COMMENT"):
            name = unquote(entry.name.removeprefix("EXTENSION "))
            if name in missing and (entry.type == "EXTENSION" or entry.name.startswith("EXT")):
                what = "its CREATE EXTENSION" if entry.type == "EXTENSION" else "its comment"
                return [missing[name]], what
        failed = self.failed.get((entry.database, entry.label))
        if failed:
            return failed, f"{entry.label} was not created"
        for match in _QUALIFIED.finditer(message):  # e.g. an index on a table that failed
            name = match.group(0).replace('"', "")
            failed = self.failed.get((entry.database, name))
            if failed:
                return failed, f"{name} was not created"
        if entry.type in ("ACL", "COMMENT") and not self._created(entry):
            # Grants on an object the dump never creates: a member of a missing extension
            # (one its script, or an event trigger during it, created).
            return list(missing.values()), f"{entry.label} belongs to a missing extension"
        schemas = {m.group(1) for m in _QUALIFIED.finditer(message)}
        schemas |= set(_SCHEMA_IN_MESSAGE.findall(message))
        if entry.type == "ACL" and entry.name.startswith("SCHEMA "):
            schemas.add(unquote(entry.name.removeprefix("SCHEMA ")))
        for schema in schemas:
            found = [e for e in missing.values() if schema in e.schemas]
            if found:
                return found, f"{message.split(' does not exist')[0]} is the extension's"
        return [], ""


    def _created(self, entry: TocEntry) -> bool:
        if self._created_labels is None:
            self._created_labels = {
                (e.database, e.label) for e in self._entries
                if e.type not in ("ACL", "COMMENT", "DEFAULT ACL", "CONNECT")
            }
        return (entry.database, entry.label) in self._created_labels


def parse_create_extension(line: bytes) -> tuple[str, str | None] | None:
    """(name, WITH SCHEMA or None) of a `CREATE EXTENSION` statement's first line."""
    match = _CREATE_EXTENSION.match(line)
    if not match:
        return None
    name = unquote(match.group(1).decode(errors="replace"))
    schema = unquote(match.group(2).decode(errors="replace")) if match.group(2) else None
    return name, schema


def _connect_target(argument: str) -> str:
    """`\\connect "db"`, `\\connect db`, `\\connect -reuse-previous=on "dbname='db'"`."""
    argument = argument.removeprefix("-reuse-previous=on").strip()
    value = unquote(argument)
    match = re.search(r"dbname='((?:[^']|'')*)'", value)
    return match.group(1).replace("''", "'") if match else value
