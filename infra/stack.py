"""One stack of Prism: network, API host, database, tunnel, runtime secrets and alarms.

Order matters only where one part needs another's output: the database admits the host's
security group; the secrets point the host at the database; the alarms watch both. The host
itself does not wait for the database: it boots in parallel and its services retry until
the database parameters exist, which keeps a full rebuild well inside the 4 h RTO.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.alarms import Alarms, AlarmsArgs
from infra.api_host import ApiHost, ApiHostArgs
from infra.boot import DatabaseParameterNames
from infra.config import StackConfig, load_config
from infra.database import PrismDatabase, PrismDatabaseArgs
from infra.network import Network, NetworkArgs
from infra.secrets import (
    APP_ROLE,
    RuntimeSecrets,
    RuntimeSecretsArgs,
    secret_parameter_names,
    tunnel_token_parameter,
)
from infra.tunnel import ApiTunnel, ApiTunnelArgs


@dataclass(frozen=True)
class PrismStack:
    network: Network
    host: ApiHost
    database: PrismDatabase
    tunnel: ApiTunnel
    secrets: RuntimeSecrets
    alarms: Alarms


def build(cfg: StackConfig) -> PrismStack:
    """Declare every resource of the stack and export what runbooks and drills look up."""
    env_tag = {"prism:environment": cfg.environment}
    network = Network(
        "network", NetworkArgs(settings=cfg.network, stack=cfg.stack, extra_tags=env_tag)
    )

    token_parameter = tunnel_token_parameter(cfg.stack)
    host = ApiHost(
        "api-host",
        ApiHostArgs(
            settings=cfg.api_host,
            stack=cfg.stack,
            region=cfg.region,
            vpc_id=network.vpc_id,
            vpc_cidr=network.vpc_cidr,
            subnet_id=network.host_subnet_id,
            public_ip=network.host_public_ip,
            secret_parameters=secret_parameter_names(cfg.stack, tuple(cfg.secret_env)),
            database_parameters=DatabaseParameterNames.for_stack(cfg.stack),
            tunnel_token_parameter=token_parameter,
            database_port=cfg.database.port,
            extra_tags=env_tag,
        ),
    )

    # First: its key also encrypts the database's master secret and the API's role secret.
    secrets = RuntimeSecrets(
        "runtime-secrets",
        RuntimeSecretsArgs(
            stack=cfg.stack,
            secret_env=cfg.secret_env,
            reader_role_arn=host.role_arn,
            registry_password=cfg.registry_password,
            region=cfg.region,
            key_deletion_window_days=30 if cfg.is_prod else 7,
            environment=cfg.environment,
            deployer_arns=cfg.deploy_role_arns,
            extra_tags=env_tag,
            app_role=True,
        ),
    )
    assert secrets.app_secret_arn is not None

    database = PrismDatabase(
        "database",
        PrismDatabaseArgs(
            settings=cfg.database,
            stack=cfg.stack,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            client_security_group_ids=[host.security_group_id],
            restore=cfg.database.restore,
            restored_from=cfg.database.restored_from,
            protect=cfg.is_prod,
            extra_tags=env_tag,
            master_secret_key_arn=secrets.key_arn,
        ),
    )
    # The API connects as its application role, never as the master user.
    secrets.point_host_at_database(
        address=database.address,
        port=database.port,
        database_name=cfg.database.db_name,
        secret_arn=secrets.app_secret_arn,
    )
    # Each component owns its IAM: the host grants itself the role's secret, and only that.
    host.allow_reading_secret("database-secret", secrets.app_secret_arn)

    tunnel = ApiTunnel(
        "api-tunnel",
        ApiTunnelArgs(
            settings=cfg.tunnel,
            stack=cfg.stack,
            api_port=cfg.api_host.port,
            token_parameter=token_parameter,
            key_id=secrets.key_arn,
            extra_tags=env_tag,
        ),
    )

    alarms = Alarms(
        "alarms",
        AlarmsArgs(
            settings=cfg.alarms,
            stack=cfg.stack,
            db_identifier=database.identifier,
            host_instance_id=host.instance_id,
            extra_tags=env_tag,
        ),
    )

    pulumi.export("environment", cfg.environment)
    pulumi.export("dbIdentifier", database.identifier)
    pulumi.export("dbEndpoint", database.endpoint)
    pulumi.export("dbArn", database.arn)
    pulumi.export("dbLatestRestorableTime", database.latest_restorable_time)
    pulumi.export("dbMasterSecretArn", database.master_secret_arn)  # the ARN, never the value
    pulumi.export("dbAppRole", APP_ROLE)
    pulumi.export("dbAppSecretArn", secrets.app_secret_arn)  # the ARN, never the value
    pulumi.export("apiImage", cfg.api_host.image)
    if cfg.deployed_commit is not None:
        # Read by the next deploy: its migrations are those of deployedCommit..HEAD.
        pulumi.export("deployedCommit", cfg.deployed_commit)
    pulumi.export("dbBackupRetentionDays", cfg.database.backup_retention_days)
    if database.backup_replication_arn is not None:
        pulumi.export("dbBackupReplicationArn", database.backup_replication_arn)
        pulumi.export("dbBackupReplicationRegion", cfg.database.backup_replication.region)
    pulumi.export("apiHostId", host.instance_id)
    pulumi.export("tunnelId", tunnel.tunnel_id)
    pulumi.export("apiHostname", tunnel.hostname)
    pulumi.export("alarmTopicArn", alarms.topic_arn)
    return PrismStack(network, host, database, tunnel, secrets, alarms)


def main(*, examples_allowed: bool = False) -> PrismStack:
    """The program `pulumi up` runs (via __main__.py): load the config once, build."""
    return build(load_config(examples_allowed=examples_allowed))
