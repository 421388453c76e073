"""recovery/app_role.py against a real PostgreSQL: what the API's role can and cannot do."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from infra.errors import WrongState
from recovery.app_role import ensure_app_role, reset_on_restored, set_app_role_password

ROLE = "prism_api_t"
PASSWORD = "Approle0first0password0letters0digits"


def _as_role(dsn: str, password: str) -> psycopg.Connection:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    info |= {"user": ROLE, "password": password}
    return psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True)


@pytest.fixture
def app_db(fresh_db: str) -> Iterator[str]:
    """A database with application tables made by the master user, as on a restored stack."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE organizations (id bigserial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO organizations (name) VALUES ('acme')")
    yield fresh_db
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        # Roles are cluster-wide: leave none behind for the next test's fresh database.
        conn.execute(f"DROP OWNED BY {ROLE}")
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")


def test_the_role_reads_and_writes_the_applications_tables(app_db: str) -> None:
    with psycopg.connect(app_db) as master:
        report = ensure_app_role(master, ROLE, PASSWORD)
    assert report.created and report.schemas == ("public",)
    with _as_role(app_db, PASSWORD) as app:
        assert app.execute("SELECT name FROM organizations").fetchall() == [("acme",)]
        app.execute("INSERT INTO organizations (name) VALUES ('globex')")
        app.execute("UPDATE organizations SET name = 'acme inc' WHERE name = 'acme'")
        app.execute("DELETE FROM organizations WHERE name = 'globex'")
        # Its migrations create tables of their own.
        app.execute("CREATE TABLE buildings (id bigserial PRIMARY KEY, org bigint)")
        app.execute("INSERT INTO buildings (org) VALUES (1)")


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE ROLE intruder",
        "CREATE DATABASE elsewhere",
        "SELECT rolpassword FROM pg_authid",
        "ALTER ROLE prism_api_t CREATEROLE",
    ],
)
def test_the_role_cannot_reach_beyond_the_application(app_db: str, statement: str) -> None:
    with psycopg.connect(app_db) as master:
        ensure_app_role(master, ROLE, PASSWORD)
    with _as_role(app_db, PASSWORD) as app, pytest.raises(errors.InsufficientPrivilege):
        app.execute(statement)


def test_running_again_converges_and_sets_the_new_password(app_db: str) -> None:
    with psycopg.connect(app_db) as master:
        ensure_app_role(master, ROLE, PASSWORD)
        master.execute("CREATE TABLE reports (id bigserial PRIMARY KEY)")  # after the first run
        master.commit()
        again = ensure_app_role(master, ROLE, "Rotated0password0of0forty0characters00")
    assert not again.created
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _as_role(app_db, PASSWORD)
    with _as_role(app_db, "Rotated0password0of0forty0characters00") as app:
        assert app.execute("SELECT count(*) FROM reports").fetchone() == (0,)


def test_the_password_never_reaches_the_server_in_clear(app_db: str) -> None:
    # What a server logging every statement (log_statement = all) would write: the text sent.
    with psycopg.connect(app_db, autocommit=True) as master:
        statements: list[str] = []
        original = master.execute

        def spy(query, params=None, **kw):  # type: ignore[no-untyped-def]
            text = query.as_string(master) if hasattr(query, "as_string") else str(query)
            statements.append(text)
            return original(query, params, **kw)

        master.execute = spy  # type: ignore[method-assign]
        set_app_role_password(master, ROLE, PASSWORD)
    role_statement = next(s for s in statements if "ROLE" in s and "PASSWORD" in s)
    assert PASSWORD not in role_statement and "SCRAM-SHA-256$" in role_statement


def test_a_role_with_too_much_is_refused_not_trusted(app_db: str) -> None:
    with psycopg.connect(app_db, autocommit=True) as master:
        master.execute(f"CREATE ROLE {ROLE} LOGIN CREATEDB")
        with pytest.raises(WrongState, match=f"role {ROLE} exists with privileges"):
            ensure_app_role(master, ROLE, PASSWORD)


# --- on a restored instance (drills, recoveries) -------------------------------------------------

PROD_PASSWORD = "Prod0password0the0backup0carries0000000"


def test_a_restored_role_takes_the_new_password_and_the_backups_stops_working(
    app_db: str,
) -> None:
    with psycopg.connect(app_db) as master:  # what prod's bootstrap left in the backup
        ensure_app_role(master, ROLE, PROD_PASSWORD)
    report = reset_on_restored(app_db, ROLE, PASSWORD)
    assert not report.created
    with _as_role(app_db, PASSWORD) as app:
        assert app.execute("SELECT count(*) FROM organizations").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _as_role(app_db, PROD_PASSWORD)


def test_a_backup_without_the_role_gets_it_with_its_grants(app_db: str) -> None:
    report = reset_on_restored(app_db, ROLE, PASSWORD)
    assert report.created
    with _as_role(app_db, PASSWORD) as app:
        assert app.execute("SELECT name FROM organizations").fetchall() == [("acme",)]


def test_a_restored_role_with_too_much_is_refused_before_any_login(app_db: str) -> None:
    with psycopg.connect(app_db, autocommit=True) as master:
        master.execute(f"CREATE ROLE {ROLE} LOGIN CREATEROLE PASSWORD '{PROD_PASSWORD}'")
    with pytest.raises(WrongState, match="privileges the API must not have"):
        reset_on_restored(app_db, ROLE, PASSWORD)
    # Nothing changed: the backup's password still stands.
    _as_role(app_db, PROD_PASSWORD).close()
