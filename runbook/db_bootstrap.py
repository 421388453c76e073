"""`prism-dr db bootstrap --stack S`: the API's application role on the stack's database.

The stack creates the role's secret (on the stack's key) and names it in the parameter
`/prism/<stack>/database/secret-arn`, which the host reads too; this creates the role on the
database with it, and its grants (recovery/app_role.py), connected as
the instance's master user through its RDS-managed secret. Idempotent: run it after the first
`pulumi up`, after a restore, or after changing the secret. The database is private: run it
on the API host (Session Manager) or through a port forward (`--host 127.0.0.1 --port N`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from botocore.exceptions import ClientError
from psycopg.conninfo import make_conninfo

from infra.boot import DatabaseParameterNames
from infra.errors import BadInput, NotFound
from recovery.app_role import DEFAULT_SCHEMAS, RoleReport, ensure_app_role
from recovery.aws import Target, aws_errors, describe_instance, error_code, require_available

# verify-full checks the chain and the host name; through a port forward the name is
# 127.0.0.1, which the certificate does not carry, so only the chain can be checked there.
SSL_MODES = ("verify-full", "verify-ca")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = ""

    def __repr__(self) -> str:  # never the password, in a traceback or a log
        return f"Credentials(username={self.username!r})"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    dbname: str


def read_credentials(secrets: Any, secret_id: str, what: str) -> Credentials:
    """`{"username", "password"}` from a Secrets Manager secret (RDS's and the stack's shape)."""
    with aws_errors(f"reading {what}"):
        try:
            value = secrets.get_secret_value(SecretId=secret_id)
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                raise NotFound(
                    f"{what} ({secret_id}) does not exist: run `pulumi up` for the stack again"
                ) from None
            raise
    try:
        body = json.loads(value["SecretString"])
        return Credentials(str(body["username"]), str(body["password"]))
    except (KeyError, TypeError, ValueError):
        raise BadInput(f"{what} ({secret_id}) is not JSON with username and password") from None


def app_secret_arn(ssm: Any, stack: str) -> str:
    """The secret the host builds DATABASE_URL from: the stack's application role's."""
    name = DatabaseParameterNames.for_stack(stack).secret_arn
    with aws_errors(f"reading {name}"):
        try:
            return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
        except ClientError as error:
            if error_code(error) == "ParameterNotFound":
                raise NotFound(
                    f"{name} does not exist: run `pulumi up` for stack {stack} first"
                ) from None
            raise


def master_secret_arn(instance: dict[str, Any]) -> str:
    arn = (instance.get("MasterUserSecret") or {}).get("SecretArn")
    if not arn:
        raise BadInput(
            f"DB instance {instance.get('DBInstanceIdentifier')} has no RDS-managed master "
            "secret (manage_master_user_password): the stacks always set one"
        )
    return str(arn)


def bootstrap(
    target: Target,
    *,
    rds: Any,
    secrets: Any,
    ssm: Any,
    host: str | None = None,
    port: int | None = None,
    sslmode: str = "verify-full",
    sslrootcert: str | None = None,
    schemas: Sequence[str] = DEFAULT_SCHEMAS,
    connect: Callable[[str], psycopg.Connection] = psycopg.connect,
) -> RoleReport:
    if target.stack is None:
        raise BadInput("db bootstrap needs --stack: the role's secret belongs to a stack")
    instance = describe_instance(rds, target.db_instance)
    require_available(instance, "create the application role")
    endpoint = Endpoint(
        host=host or instance["Endpoint"]["Address"],
        port=port or int(instance["Endpoint"]["Port"]),
        dbname=instance.get("DBName") or "postgres",
    )
    master = read_credentials(secrets, master_secret_arn(instance), "the master secret")
    app_arn = app_secret_arn(ssm, target.stack)
    if app_arn == master_secret_arn(instance):
        raise BadInput(
            f"stack {target.stack} points the API at the master secret: `pulumi up` the stack "
            "with its application role first"
        )
    app = read_credentials(secrets, app_arn, "the application secret")
    conninfo = make_conninfo(
        host=endpoint.host,
        port=str(endpoint.port),
        dbname=endpoint.dbname,
        user=master.username,
        password=master.password,
        sslmode=sslmode,
        connect_timeout="10",
        **({"sslrootcert": sslrootcert} if sslrootcert else {}),
    )
    try:
        conn = connect(conninfo)
    except psycopg.OperationalError as error:
        # libpq's message names host and user, never the password.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "no answer"
        raise BadInput(
            f"cannot connect to {endpoint.host}:{endpoint.port}/{endpoint.dbname} as "
            f"{master.username} ({sslmode}): {reason}; run it on the API host or through a "
            "port forward (--host 127.0.0.1 --port N)"
        ) from None
    with conn:
        missing = [
            s
            for s in schemas
            if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (s,)).fetchone()
            is None
        ]
        if missing:
            raise BadInput(f"--schema {missing[0]} does not exist in {endpoint.dbname}")
        return ensure_app_role(conn, app.username, app.password, schemas)
