"""The AWS drill stack as an inline Pulumi program, built from the same `infra` components
as prod: a restored PrismDatabase, an ApiHost running the same image against it, an
ApiTunnel on `drill-<id>.<zone>`, and the RuntimeSecrets the host boots from.

Drill-only settings (no deletion protection, no final snapshot, backups off, automated
backups deleted, single-AZ, the drill's instance class) are applied to the drill's copy of
the database settings, never to the source stack's. Every resource carries
`prism:drill=<id>` and `prism:expires-at=<ISO>` through the components' `extra_tags`.
The database and the host do not depend on each other: they are created in parallel.

The API connects as its application role (APP_ROLE), with the drill stack's own secret for
it (a new random password, on the drill's key): the runner sets that password on the restored
instance, connected as the instance's own master user (drills/aws/runner.py), before it waits
for `/ready`. Prod's application secret is never read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drills.aws.plan import AwsDrillPlan
from recovery.engine import Program


def drill_program(
    plan: AwsDrillPlan, secrets: Mapping[str, str], registry_password: str | None = None
) -> Program:
    """The program the engine runs; `secrets` (the drill's own runtime values from
    `/prism/drill/`, drills/aws/runtime.py: never the source stack's) reach the drill stack's
    own parameters as Pulumi secrets only, and so does the private registry's password when
    the stack's image needs one."""

    def program() -> None:
        build_drill(plan, secrets, registry_password)

    return program


def drill_config(plan: AwsDrillPlan) -> dict[str, str]:
    """The drill stack's plain config: its region, and its expiry for the reaper besides the
    `prism:expires-at` stack tag (which self-managed backends keep only since Pulumi 3.211)."""
    return {
        "aws:region": plan.region,
        "prism-infra:environment": "drill",
        "prism-infra:drillExpiresAt": plan.drill_tags()["prism:expires-at"],
        "prism-infra:drillSource": plan.target.db_instance,
    }


def build_drill(
    plan: AwsDrillPlan, secrets: Mapping[str, str], registry_password: str | None = None
) -> dict[str, Any]:
    import pulumi

    from infra.api_host import ApiHost, ApiHostArgs, DatabaseParameterNames
    from infra.config import NetworkConfig, RestoreSpec, TunnelConfig
    from infra.database import PrismDatabase, PrismDatabaseArgs
    from infra.network import Network, NetworkArgs
    from infra.secrets import APP_ROLE, secret_parameter_names, tunnel_token_parameter
    from infra.tunnel import ApiTunnel, ApiTunnelArgs

    name = plan.stack_name
    tags = {"prism:environment": "drill", **plan.drill_tags()}
    cfg = plan.cfg

    if plan.network is not None:
        net = plan.network
        network_settings = NetworkConfig(
            mode="adopt",
            vpc_id=net.vpc_id,
            private_subnet_ids=list(net.private_subnet_ids),
            host_subnet_id=net.host_subnet_id,
            host_public_ip=net.host_public_ip,
        )
    else:
        network_settings = NetworkConfig(mode="create", cidr_block=cfg.network.cidr_block)
    network = Network(
        "network", NetworkArgs(settings=network_settings, stack=name, extra_tags=tags)
    )

    secret_env = {env: pulumi.Output.secret(value) for env, value in secrets.items()}
    token_parameter = tunnel_token_parameter(name)
    # No egress to prod's Redis: port 6379 only with a Redis configured for drills, only to it.
    redis = "REDIS_URL" in secrets and plan.settings.redis_egress_cidr is not None
    host_settings = cfg.api_host.model_copy(
        update={
            "instance_type": plan.host_instance_type,
            "extra_egress_tcp_ports": [6379] if redis else [],
            "extra_egress_cidr": plan.settings.redis_egress_cidr if redis else "0.0.0.0/0",
        }
    )
    host = ApiHost(
        "api-host",
        ApiHostArgs(
            settings=host_settings,
            stack=name,
            region=plan.region,
            vpc_id=network.vpc_id,
            vpc_cidr=network.vpc_cidr,
            subnet_id=network.host_subnet_id,
            public_ip=network.host_public_ip,
            secret_parameters=secret_parameter_names(name, tuple(secret_env)),
            database_parameters=DatabaseParameterNames.for_stack(name),
            tunnel_token_parameter=token_parameter,
            database_port=cfg.database.port,
            extra_tags=tags,
        ),
    )

    registry = pulumi.Output.secret(registry_password) if registry_password else None
    # First: its key also encrypts the restored instance's master secret and the role's secret.
    secrets_ = runtime_secrets(name, host, secret_env, plan.region, tags, registry)

    storage = plan.storage_gb
    ceiling = cfg.database.max_allocated_storage_gb
    if ceiling is not None:  # RDS wants the ceiling at least 10 % above the allocation
        ceiling = max(ceiling, -(-storage * 11 // 10))
    db_settings = cfg.database.model_copy(
        update={
            "identifier": plan.db_identifier,
            "allocated_storage_gb": storage,
            "max_allocated_storage_gb": ceiling,
            "instance_class": plan.instance_class,
            "multi_az": False,
            "deletion_protection": False,
            "final_snapshot": False,
            "apply_immediately": True,
            "backup_replication": cfg.database.backup_replication.model_copy(
                update={"enabled": False}
            ),
            "restore": None,
            "restored_from": None,
        }
    )
    restore = RestoreSpec(
        point=plan.point.text if plan.point.kind != "time" else _stamp(plan),
        source_identifier=plan.source.source_identifier,
        source_automated_backups_arn=plan.source.automated_backups_arn,
    )
    subnets: dict[str, Any] = (
        {"subnet_group_name": plan.network.subnet_group_name}
        if plan.network is not None
        else {"subnet_ids": network.private_subnet_ids}
    )
    database = PrismDatabase(
        "database",
        PrismDatabaseArgs(
            settings=db_settings,
            stack=name,
            vpc_id=network.vpc_id,
            client_security_group_ids=[host.security_group_id],
            restore=restore,
            protect=False,
            extra_tags=tags,
            ephemeral=True,
            master_secret_key_arn=secrets_.key_arn,
            **subnets,
        ),
    )
    assert secrets_.app_secret_arn is not None
    secrets_.point_host_at_database(
        address=database.address,
        port=database.port,
        database_name=cfg.database.db_name,
        secret_arn=secrets_.app_secret_arn,
    )
    # The host reads the role's secret and only that: never the master secret.
    host.allow_reading_secret("database-secret", secrets_.app_secret_arn)

    tunnel = None
    if plan.hostname is not None:
        tunnel = ApiTunnel(
            "api-tunnel",
            ApiTunnelArgs(
                settings=TunnelConfig(
                    account_id=cfg.tunnel.account_id,
                    zone_id=cfg.tunnel.zone_id,
                    hostname=plan.hostname,
                ),
                stack=name,
                api_port=cfg.api_host.port,
                token_parameter=token_parameter,
                key_id=secrets_.key_arn,
                extra_tags=tags,
            ),
        )

    exports: dict[str, Any] = {
        "drillId": plan.run_id,
        "expiresAt": tags["prism:expires-at"],
        "dbIdentifier": database.identifier,
        "dbAddress": database.address,
        "dbPort": database.port,
        "dbName": cfg.database.db_name,
        "dbMasterSecretArn": database.master_secret_arn,  # the ARN, never the value
        "dbAppRole": APP_ROLE,
        "dbAppSecretArn": secrets_.app_secret_arn,  # the ARN, never the value
        "apiHostId": host.instance_id,
        "region": plan.region,
    }
    if tunnel is not None:
        exports["tunnelId"] = tunnel.tunnel_id
        exports["apiHostname"] = tunnel.hostname
    for key, value in exports.items():
        pulumi.export(key, value)
    return exports


def runtime_secrets(
    name: str,
    host: Any,
    secret_env: Mapping[str, Any],
    region: str,
    tags: Mapping[str, str],
    registry_password: Any = None,
) -> Any:
    """The drill stack's own `/prism/drill-<id>/` parameters and application-role secret,
    encrypted with its own key, which only the drill host (and the drill role) may decrypt."""
    from infra.secrets import RuntimeSecrets, RuntimeSecretsArgs

    return RuntimeSecrets(
        "runtime-secrets",
        RuntimeSecretsArgs(
            stack=name,
            secret_env=secret_env,
            reader_role_arn=host.role_arn,
            registry_password=registry_password,
            region=region,
            # Nothing of a drill outlives it for long: the shortest window KMS allows.
            key_deletion_window_days=7,
            environment="drill",  # the drill role deploys it and so may use its key
            extra_tags=tags,
            app_role=True,
        ),
    )


def _stamp(plan: AwsDrillPlan) -> str:
    assert plan.point.time is not None
    return plan.point.time.strftime("%Y-%m-%dT%H:%M:%SZ")
