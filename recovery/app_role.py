"""The API's PostgreSQL role: created or brought up to date on a database, idempotently.

Used by `prism-dr db bootstrap` (runbook/db_bootstrap.py) on a stack's database, and meant for
drills and recoveries, which set a new password for the role on the instance they restored,
connected with that instance's own master secret (set_app_role_password): prod's application
secret is never read for that.

The role logs in and reads and writes the application's schemas (and may create objects in
them: the API runs its migrations), and nothing else: no superuser, no CREATEROLE, no
CREATEDB, so it cannot make roles or databases or read pg_authid. The password reaches the
server as a SCRAM-SHA-256 verifier computed here (libpq's PQencryptPasswordConn), so the clear
password is in no statement the server could log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from infra.errors import WrongState

DEFAULT_SCHEMAS = ("public",)


@dataclass(frozen=True)
class RoleReport:
    role: str
    created: bool  # False: it existed and was brought up to date
    database: str
    schemas: tuple[str, ...]


def _verifier(conn: psycopg.Connection, role: str, password: str) -> str:
    encrypted = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return encrypted.decode()


def _refuse_privileged(conn: psycopg.Connection, role: str) -> None:
    row = conn.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
        " FROM pg_roles WHERE rolname = %s",
        (role,),
    ).fetchone()
    if row is not None and any(row):
        # Only a superuser could take these away; RDS's master user is not one.
        raise WrongState(
            f"role {role} exists with privileges the API must not have (superuser, createrole, "
            "createdb, replication or bypassrls): drop or fix it by hand, then run again"
        )


def set_app_role_password(conn: psycopg.Connection, role: str, password: str) -> bool:
    """Create `role` (LOGIN, no other privilege) or set its password; True if created."""
    _refuse_privileged(conn, role)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    # CREATE ROLE's defaults are NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    # NOBYPASSRLS; naming the superuser-only ones would need a superuser even to repeat them.
    verb = "ALTER ROLE" if exists else "CREATE ROLE"
    conn.execute(
        sql.SQL("{} {} WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD {}").format(
            sql.SQL(verb), sql.Identifier(role), sql.Literal(_verifier(conn, role, password))
        )
    )
    return exists is None


def ensure_app_role(
    conn: psycopg.Connection,
    role: str,
    password: str,
    schemas: Sequence[str] = DEFAULT_SCHEMAS,
) -> RoleReport:
    """The role and its grants on the connected database; safe to run again (it converges).

    `conn` is the master user's, in autocommit or not: everything runs in one transaction."""
    database = conn.info.dbname
    with conn.transaction():
        created = set_app_role_password(conn, role, password)
        ident = sql.Identifier(role)
        conn.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(database), ident
            )
        )
        for schema in schemas:
            s = sql.Identifier(schema)
            statements = [
                # CREATE: the API's migrations add tables and indexes of their own.
                "GRANT USAGE, CREATE ON SCHEMA {s} TO {r}",
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}",
                "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
                # Tables the master user creates later (a manual fix, a restore) too.
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {s}"
                " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {r}",
            ]
            for statement in statements:
                conn.execute(sql.SQL(statement).format(s=s, r=ident))
    return RoleReport(role=role, created=created, database=database, schemas=tuple(schemas))


def reset_on_restored(
    master_dsn: str,
    role: str,
    password: str,
    schemas: Sequence[str] = DEFAULT_SCHEMAS,
) -> RoleReport:
    """On an instance restored from a backup (a drill's, a recovery's): the role gets the
    restoring stack's own password (the backup carries prod's), and its grants if the backup
    predates them, connected as the instance's own master user (`master_dsn`); then the API's
    login is tried as the API makes it, over the same route. psycopg errors propagate."""
    with psycopg.connect(master_dsn, autocommit=True) as conn:
        report = ensure_app_role(conn, role, password, schemas)
    with psycopg.connect(make_conninfo(master_dsn, user=role, password=password)) as conn:
        conn.execute("SELECT 1")
    return report
