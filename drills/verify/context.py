"""What every check receives: the target, the manifest, the tier, connections and the catalog."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

import psycopg
from psycopg import sql

from drills.verify.catalog import Catalog, Table, discover
from drills.verify.manifest import Manifest, TableExpectation
from drills.verify.model import Status, Tier
from drills.verify.target import VerifyTarget

APPLICATION_NAME = "prism-drill-verify"
CONNECT_TIMEOUT_SECONDS = 10
# The live source is production: a lock held there must not hang the drill, and nothing the
# drill runs may write to it.
SOURCE_STATEMENT_TIMEOUT_MS = 300_000

TIER_RANK = {Tier.QUICK: 0, Tier.STANDARD: 1, Tier.DEEP: 2}


class Outcome(NamedTuple):
    status: Status
    detail: str


def passed(detail: str) -> Outcome:
    return Outcome(Status.PASS, detail)


def failed(detail: str) -> Outcome:
    return Outcome(Status.FAIL, detail)


def warned(detail: str) -> Outcome:
    return Outcome(Status.WARN, detail)


def skipped(detail: str) -> Outcome:
    return Outcome(Status.SKIP, detail)


class Unreachable(Exception):
    """The restored database cannot be reached or described: every database check fails."""


@dataclass
class Context:
    target: VerifyTarget
    manifest: Manifest
    tier: Tier
    _db: psycopg.Connection | None = None
    _catalog: Catalog | None = None
    _db_error: str | None = None
    _source: psycopg.Connection | None = None
    _source_error: str | None = None
    _connections: list[psycopg.Connection] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """Whether this tier may read whole tables (standard and deep) or only bounded parts."""
        return TIER_RANK[self.tier] >= TIER_RANK[Tier.STANDARD]

    @property
    def seed(self) -> int:
        # Each drill samples different rows, yet re-running one drill samples the same ones.
        return int(self.target.drill_started.timestamp())

    def rng(self, salt: str) -> random.Random:
        return random.Random(f"{self.seed}:{salt}")

    # -- the restored database -------------------------------------------------------------
    @property
    def db(self) -> psycopg.Connection:
        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        if self._db_error is not None:
            raise Unreachable(self._db_error)
        try:
            self._db = self._connect(self.target.dsn)
        except psycopg.Error as err:
            self._db_error = f"cannot connect to the restored database: {self.one_line(err)}"
            raise Unreachable(self._db_error) from None
        return self._db

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            try:
                self._catalog = discover(self.db, self.manifest)
            except psycopg.Error as err:
                self._db_error = (
                    f"cannot read the restored database's catalog: {self.one_line(err)}"
                )
                raise Unreachable(self._db_error) from None
        return self._catalog

    def expected_tables(self) -> list[tuple[str, TableExpectation, Table | None]]:
        tables = self.manifest.tables.items()
        return [(name, spec, self.catalog.find(name)) for name, spec in tables]

    def major_tables(self) -> list[Table]:
        """The expected tables that exist, or every discovered table when none is expected."""
        if not self.manifest.tables:
            return list(self.catalog.tables)
        return [table for _, _, table in self.expected_tables() if table is not None]

    def missing_org_table(self) -> Outcome:
        """Without an organizations table nothing is org-scoped: a failure only if expected."""
        name = self.manifest.org.table
        if name in self.manifest.tables:
            return failed(f"organizations table {name} missing: org scoping cannot hold")
        return skipped(f"no {name} table, so nothing is org-scoped")

    # -- the live source ---------------------------------------------------------------------
    @property
    def has_source(self) -> bool:
        return bool(self.target.source_dsn)

    def source(self) -> psycopg.Connection | None:
        """The source connection, or None when absent or unreachable (see `source_error`)."""
        if not self.target.source_dsn or self._source_error is not None:
            return None
        if self._source is None or self._source.closed or self._source.broken:
            try:
                self._source = connect_source(self.target.source_dsn, self._connections)
            except psycopg.Error as err:
                self._source_error = f"source database unreachable: {self.one_line(err)}"
                return None
        return self._source

    @property
    def source_error(self) -> str | None:
        return self._source_error

    def source_query_failed(self, err: psycopg.Error, what: str) -> str:
        """A one-line note for a source query that failed; a cancelled one gives the source up.

        A source that held one query past its statement timeout (a lock taken in production)
        would hold every later one as long, so nothing more is asked of it.
        """
        if isinstance(err, psycopg.errors.QueryCanceled):
            self._source_error = (
                f"source query on {what} stopped: {self.one_line(err)} (the limit is "
                f"{source_timeout_text()}); the rest was not compared with the source")
            return self._source_error
        return f"{what} not comparable with the source ({self.one_line(err)})"

    # -- helpers -----------------------------------------------------------------------------
    def one_line(self, err: BaseException | str) -> str:
        text = str(err).strip().splitlines()
        return self.target.scrub(text[0].strip() if text else type(err).__name__)

    def _connect(self, dsn: str) -> psycopg.Connection:
        return _connect(dsn, self._connections)

    def close(self) -> None:
        for conn in self._connections:
            conn.close()
        self._connections.clear()
        self._db = self._source = None


def connect_source(
    dsn: str, opened: list[psycopg.Connection] | None = None
) -> psycopg.Connection:
    """A session on the live source: read-only, and no statement may run past the timeout.

    Both are set at connection start (libpq `options`), so they hold before the first query,
    and again as SETs: PgBouncer either rejects the `options` startup parameter (then the
    connection is retried without it) or, configured to ignore it, drops it silently.
    """
    settings = {"statement_timeout": str(SOURCE_STATEMENT_TIMEOUT_MS),
                "default_transaction_read_only": "on"}
    options = " ".join(f"-c {name}={value}" for name, value in settings.items())
    try:
        return _connect(dsn, opened, settings, options=options)
    except psycopg.OperationalError as err:
        if "options" not in str(err):
            raise
    return _connect(dsn, opened, settings)


def source_timeout_text() -> str:
    return fmt_duration(timedelta(milliseconds=SOURCE_STATEMENT_TIMEOUT_MS))


def _connect(
    dsn: str, opened: list[psycopg.Connection] | None, settings: dict[str, str] | None = None,
    **kwargs,
) -> psycopg.Connection:
    conn = psycopg.connect(
        dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
        application_name=APPLICATION_NAME, **kwargs,
    )
    if opened is not None:
        opened.append(conn)
    try:
        for name, value in (settings or {}).items():
            conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        # Verification only reads; UTC and ISO make row hashes comparable across servers.
        conn.execute("SET default_transaction_read_only = on")
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET DateStyle = 'ISO, YMD'")
        conn.execute("SET IntervalStyle = 'iso_8601'")
        conn.execute("SET extra_float_digits = 1")
    except BaseException:
        conn.close()
        raise
    return conn


def fmt_duration(delta: timedelta) -> str:
    """'2d 3h', '3h 05m', '4m 12s', '12s'; negative durations keep their sign."""
    seconds = round(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        major, minor = f"{days}d", f" {hours}h" if hours else ""
    elif hours:
        major, minor = f"{hours}h", f" {minutes:02d}m" if minutes else ""
    elif minutes:
        major, minor = f"{minutes}m", f" {secs:02d}s" if secs else ""
    else:
        major, minor = f"{secs}s", ""
    return sign + major + minor


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 table', '8 tables', '1,024 rows'."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def fmt_hours(hours: float) -> str:
    return f"{hours:g}h"
