"""Reaching the database: which instance, in which region, through which endpoint.

The database is named by a stack (`--stack prod`: its identifier and region from
`Pulumi.prod.yaml`, validated by `infra.config`) or directly (`--db-instance ID`).
boto3 reads AWS_ENDPOINT_URL itself (the moto server in tests, a VPC endpoint in CI); the
region is the stack's `aws:region`, else AWS_REGION, else AWS_DEFAULT_REGION.
Every AWS failure that is not about the database itself (no credentials, no route, access
denied) becomes one BadInput line (exit 2) instead of a botocore traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from infra.errors import BadInput, NotFound, WrongState

if TYPE_CHECKING:
    from infra.config import DatabaseConfig

_STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Bounded retries: a runbook command fails in seconds, not minutes, when AWS is unreachable.
_RETRIES = {"max_attempts": 4, "mode": "standard"}


@dataclass(frozen=True)
class Target:
    """The database a command works on, and what its stack says it should be."""

    db_instance: str
    region: str
    stack: str | None = None
    environment: str | None = None  # staging, prod, ... from the stack file
    database: DatabaseConfig | None = None  # the stack's validated database settings
    stack_config: dict[str, Any] | None = None  # the whole `config:` mapping (recover)

    @property
    def label(self) -> str:
        return f"{self.db_instance} (stack {self.stack})" if self.stack else self.db_instance


def env_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def resolve_target(
    stack: str | None, db_instance: str | None, project_dir: Path | None = None
) -> Target:
    """Exactly one of `--stack` and `--db-instance`; a stack's file must be valid."""
    if (stack is None) == (db_instance is None):
        raise BadInput("name the database with --stack STACK or --db-instance ID (exactly one)")
    if db_instance is not None:
        region = env_region()
        if region is None:
            raise BadInput("no AWS region: set AWS_REGION (or use --stack, whose file has one)")
        return Target(db_instance=db_instance, region=region)
    assert stack is not None
    if not _STACK_NAME.fullmatch(stack):
        raise BadInput(f"--stack {stack!r} is not a stack name (letters, digits, . _ -)")
    # Here, not at the top: infra loads pulumi, which only --stack needs.
    from infra.config import ConfigError, full_key, parse_section
    from infra.offline import read_stack_config

    config = read_stack_config(stack, project_dir)
    database = parse_section("database", config.get(full_key("database")))
    region = config.get("aws:region")
    if not isinstance(region, str) or not region:
        raise ConfigError("aws:region", f"is not set in Pulumi.{stack}.yaml")
    environment = config.get(full_key("environment"))
    return Target(
        db_instance=database.identifier,  # type: ignore[attr-defined]
        region=region,
        stack=stack,
        environment=environment if isinstance(environment, str) else None,
        database=database,  # type: ignore[arg-type]
        stack_config=config,
    )


def client(service: str, region: str) -> Any:
    """A boto3 client; boto3 itself applies AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>)."""
    import boto3  # here: every prism-dr command would otherwise pay for loading it
    from botocore.config import Config

    config = Config(retries=_RETRIES, connect_timeout=10)  # type: ignore[arg-type]
    try:
        return boto3.session.Session().client(service, region_name=region, config=config)
    except (NoRegionError, BotoCoreError) as error:
        raise BadInput(f"cannot build an AWS {service} client for {region}: {error}") from None


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn credential, network and permission failures into one line and exit 2."""
    try:
        yield
    except NoCredentialsError:
        raise BadInput(
            f"{action}: no AWS credentials; set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY (CI: configure-aws-credentials)"
        ) from None
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "") or str(error)
        raise BadInput(f"{action}: AWS refused ({error_code(error)}): {message}") from None
    except BotoCoreError as error:
        raise BadInput(f"{action}: cannot reach AWS: {error}") from None


def describe_instance(rds: Any, db_instance: str) -> dict[str, Any]:
    """The instance's description; NotFound (exit 2) when it does not exist."""
    with aws_errors(f"describing DB instance {db_instance}"):
        try:
            found = rds.describe_db_instances(DBInstanceIdentifier=db_instance)
        except ClientError as error:
            if error_code(error) == "DBInstanceNotFound":
                raise NotFound(
                    f"DB instance {db_instance} does not exist in {rds.meta.region_name}; "
                    "check --stack/--db-instance and the region (AWS_REGION)"
                ) from None
            raise
    instances = found.get("DBInstances", [])
    if not instances:
        raise NotFound(f"DB instance {db_instance} does not exist in {rds.meta.region_name}")
    return instances[0]


def require_available(instance: dict[str, Any], doing: str) -> None:
    status = instance.get("DBInstanceStatus")
    if status != "available":
        raise WrongState(
            f"DB instance {instance.get('DBInstanceIdentifier')} is {status!r}, not 'available': "
            f"refusing to {doing}; retry once it is available"
        )


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in resource.get("TagList") or []}
