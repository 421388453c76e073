"""`prism-dr db bootstrap`: the stack's secrets in moto, the role made on a real PostgreSQL.

moto holds what AWS would: the RDS instance with its managed master secret (moto creates the
secret like RDS does), the stack's application secret and the parameter naming it. The
instance's endpoint is a fake, so the database is reached the way an operator does through a
port forward: `--host 127.0.0.1 --port N`, here the ephemeral cluster (which has no TLS:
sslmode disable is passed to the library function only; the command accepts verify-full and
verify-ca).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import psycopg
import pytest

from infra.errors import BadInput, NotFound
from recovery.aws import resolve_target
from runbook.db_bootstrap import bootstrap
from tests.runbook.cli import run

ROLE = "prism_api_b"
APP_PASSWORD = "Bootstrap0app0password0letters0digits00"


@pytest.fixture
def secrets(moto: Any) -> Any:
    return boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def ssm(moto: Any) -> Any:
    return boto3.client("ssm", region_name="us-east-1")


@pytest.fixture
def stack_db(
    rds: Any, secrets: Any, ssm: Any, pg_cluster: Any, fresh_db: str
) -> dict[str, Any]:
    """prism-staging as the stack would leave it: a managed master secret holding the real
    master credentials, and the application secret the stack wrote."""
    dbname = psycopg.conninfo.conninfo_to_dict(fresh_db)["dbname"]
    # RDS refuses a master password together with ManageMasterUserPassword.
    instance = rds.create_db_instance(
        DBInstanceIdentifier="prism-staging",
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        EngineVersion="16.4",
        DBName=dbname,
        MasterUsername="prism_admin",
        ManageMasterUserPassword=True,
        AllocatedStorage=20,
    )["DBInstance"]
    master = {"username": pg_cluster.user, "password": pg_cluster.password}
    secrets.put_secret_value(
        SecretId=instance["MasterUserSecret"]["SecretArn"], SecretString=json.dumps(master)
    )
    app = secrets.create_secret(
        Name="prism/staging/database/app-0a1b2c3",
        SecretString=json.dumps({"username": ROLE, "password": APP_PASSWORD}),
    )
    ssm.put_parameter(
        Name="/prism/staging/database/secret-arn", Type="String", Value=app["ARN"]
    )
    yield {"dsn": fresh_db, "port": pg_cluster.port, "app_arn": app["ARN"], "instance": instance}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone():
            conn.execute(f"DROP OWNED BY {ROLE}")
            conn.execute(f"DROP ROLE {ROLE}")


def _bootstrap(rds: Any, secrets: Any, port: int) -> Any:
    return bootstrap(
        resolve_target("staging", None),
        rds=rds,
        secrets=secrets,
        ssm=boto3.client("ssm", region_name="us-east-1"),
        host="127.0.0.1",
        port=port,
        sslmode="disable",
    )


def test_the_role_is_made_from_the_stacks_secret_and_the_api_can_log_in(
    rds: Any, secrets: Any, stack_db: dict[str, Any]
) -> None:
    first = _bootstrap(rds, secrets, stack_db["port"])
    assert first.created and first.role == ROLE
    again = _bootstrap(rds, secrets, stack_db["port"])  # idempotent
    assert not again.created
    info = psycopg.conninfo.conninfo_to_dict(stack_db["dsn"]) | {
        "user": ROLE,
        "password": APP_PASSWORD,
    }
    with psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True) as app:
        app.execute("CREATE TABLE t (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("CREATE ROLE x")


def test_a_missing_application_secret_is_named(
    rds: Any, secrets: Any, stack_db: dict[str, Any]
) -> None:
    secrets.delete_secret(SecretId=stack_db["app_arn"], ForceDeleteWithoutRecovery=True)
    with pytest.raises(NotFound, match="the application secret"):
        _bootstrap(rds, secrets, stack_db["port"])


def test_a_stack_not_yet_up_is_named(
    rds: Any, secrets: Any, ssm: Any, stack_db: dict[str, Any]
) -> None:
    ssm.delete_parameter(Name="/prism/staging/database/secret-arn")
    with pytest.raises(NotFound, match="/prism/staging/database/secret-arn does not exist"):
        _bootstrap(rds, secrets, stack_db["port"])


def test_a_stack_still_pointing_at_the_master_secret_is_refused(
    rds: Any, secrets: Any, ssm: Any, stack_db: dict[str, Any]
) -> None:
    # A stack deployed before it had an application role: its host reads the master secret.
    master = stack_db["instance"]["MasterUserSecret"]["SecretArn"]
    ssm.put_parameter(
        Name="/prism/staging/database/secret-arn", Type="String", Value=master, Overwrite=True
    )
    with pytest.raises(BadInput, match="points the API at the master secret"):
        _bootstrap(rds, secrets, stack_db["port"])


def test_an_unreachable_database_is_bad_input_without_the_password(
    rds: Any, secrets: Any, stack_db: dict[str, Any], pg_cluster: Any
) -> None:
    closed = 1  # nothing listens on port 1 of 127.0.0.1
    with pytest.raises(BadInput, match=r"cannot connect to 127\.0\.0\.1:1/") as raised:
        _bootstrap(rds, secrets, closed)
    assert APP_PASSWORD not in str(raised.value)
    assert pg_cluster.password not in str(raised.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sslmode", "disable"], "--sslmode 'disable' is not one of verify-full, verify-ca"),
        (["--port", "5432"], "--port goes with --host"),
        (["--ca-bundle", "/nonexistent/rds.pem"], "--ca-bundle /nonexistent/rds.pem is not"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    done = run(capsys, "db", "bootstrap", "--stack", "staging", *args)
    assert done.code == 2
    assert message in done.err and len(done.err.strip().splitlines()) == 1


def test_a_stack_without_its_database_exits_2(
    capsys: pytest.CaptureFixture[str], moto: Any
) -> None:
    done = run(capsys, "db", "bootstrap", "--stack", "staging")
    assert done.code == 2
    assert "DB instance prism-staging does not exist" in done.err
