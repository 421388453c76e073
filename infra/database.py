"""PrismDatabase: RDS PostgreSQL with Prism's backup, PITR and safe-deletion posture.

One component for every kind of stack: prod and staging create an instance; a recovery or
drill stack passes `restore` and gets a *new* instance from a backup point, with subnet
group, security group and parameter group always explicit (RDS would otherwise fall back to
the default VPC's groups). The old instance is never touched, so it stays for forensics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.config import DatabaseConfig, RestoreSpec, resource_tags
from infra.options import child_options

# Settings that make the server side of DR observable: slow queries, connection churn,
# lock waits and temp-file spills all show up in the CloudWatch log export.
_LOG_PARAMETERS = {
    "log_connections": "1",
    "log_disconnections": "1",
    "log_lock_waits": "1",
    "log_temp_files": "0",
    "log_autovacuum_min_duration": "10000",
}

# After a restore these inputs describe where the data came from, not desired state: a later
# `pulumi up` must not replace the instance because they changed (a new point, a new source).
# Never remove the restore block from a stack whose database was restored; it stays as the
# record of the instance's origin. Removed, the instance would be replaced: these inputs would
# no longer be ignored, db_name/username would appear, and the final-snapshot suffix would
# change; with a fixed identifier the replacement fails besides. The one safe way to drop the
# block is to put `restoredFrom: <its description>` in its place in the same change (see
# DatabaseConfig.restored_from): the inputs stay ignored, db_name/username stay unset and the
# suffix keeps its keeper.
RESTORE_IGNORED_INPUTS = ["restore_to_point_in_time", "snapshot_identifier"]

EVENT_LOG_EXPORTS = ["postgresql", "upgrade"]
# RDS creates the log group of each export on first write, untagged and kept forever; declared
# here first (`/aws/rds/instance/<id>/<log>`, the name RDS writes to: AWS RDS User Guide,
# "Publishing PostgreSQL logs to Amazon CloudWatch Logs"), they carry the stack's tags and a
# retention, and go with the stack. CloudWatch accepts only listed values (30 and 7 are).
LOG_RETENTION_DAYS = 30
EPHEMERAL_LOG_RETENTION_DAYS = 7


def log_group_name(identifier: str, log: str) -> str:
    return f"/aws/rds/instance/{identifier}/{log}"


@dataclass(frozen=True)
class PrismDatabaseArgs:
    """Inputs of PrismDatabase.

    settings: the validated `prism-infra:database` model (identifier, sizes, windows, ...).
    vpc_id / subnet_ids: where the instance lives; subnet_ids must span two AZs.
    subnet_group_name: reuse an existing DB subnet group instead (a drill restoring into
        the source's subnet group); exactly one of subnet_ids and subnet_group_name.
    client_security_group_ids: the only sources allowed to reach the port.
    restore: build the instance from a backup point instead of empty (see RestoreSpec).
    restored_from: for an instance restored earlier whose restore block is gone: its origin
        (RestoreSpec.description); keeps the instance as the restore left it. Not with restore.
    protect: Pulumi `protect` on the instance, the replication and its key (prod).
    extra_tags: added to every resource (e.g. prism:drill, prism:expires-at).
    ephemeral: a drill's instance: backups off, automated backups deleted with it, no final
        snapshot (nothing of a drill outlives its teardown).
    master_secret_key_arn: the KMS key of the RDS-managed master secret (the stack's key).
    """

    settings: DatabaseConfig
    stack: str
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]] | None = None
    subnet_group_name: pulumi.Input[str] | None = None
    client_security_group_ids: Sequence[pulumi.Input[str]] = ()
    restore: RestoreSpec | None = None
    restored_from: str | None = None
    protect: bool = False
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    ephemeral: bool = False
    # The stack's own KMS key for the RDS-managed master secret (None: aws/secretsmanager,
    # which every principal of the account allowed GetSecretValue can use).
    master_secret_key_arn: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        # Checked here, when the arguments are built: before any resource is registered.
        if (self.subnet_ids is None) == (self.subnet_group_name is None):
            raise ValueError(
                "PrismDatabaseArgs needs exactly one of subnet_ids and subnet_group_name"
            )
        if self.restore is not None and self.restored_from is not None:
            raise ValueError("PrismDatabaseArgs takes restore or restored_from, not both")
        if self.restore is not None:
            # Programs (drills) build RestoreSpec directly; same rules as the stack config.
            self.restore.check("PrismDatabaseArgs.restore", self.settings.identifier)

    @property
    def origin(self) -> str | None:
        """Where the instance's data came from; None for an instance created empty."""
        return self.restore.description if self.restore is not None else self.restored_from


def restore_arguments(restore: RestoreSpec | None) -> dict[str, object]:
    """The aws.rds.Instance keyword arguments that perform the restore."""
    if restore is None:
        return {}
    if restore.kind == "snapshot":
        return {"snapshot_identifier": restore.snapshot_id}
    return {
        "restore_to_point_in_time": aws.rds.InstanceRestoreToPointInTimeArgs(
            source_db_instance_identifier=restore.source_identifier,
            source_db_instance_automated_backups_arn=restore.source_automated_backups_arn,
            use_latest_restorable_time=True if restore.kind == "latest" else None,
            restore_time=restore.restore_time,
        )
    }


class PrismDatabase(pulumi.ComponentResource):
    identifier: pulumi.Output[str]
    arn: pulumi.Output[str]
    address: pulumi.Output[str]
    port: pulumi.Output[int]
    endpoint: pulumi.Output[str]
    latest_restorable_time: pulumi.Output[str]
    master_secret_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    subnet_group_name: pulumi.Output[str]
    parameter_group_name: pulumi.Output[str]
    backup_replication_arn: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: PrismDatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("prism:infra:PrismDatabase", name, None, opts)
        s = args.settings
        extra = dict(args.extra_tags)
        origin = args.origin
        if origin is not None:
            extra["prism:restored-from"] = origin[:256]
        tags = resource_tags(args.stack, "database", extra)
        self._opts = opts
        child = child_options(self, opts)

        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            # Constant: a changed description replaces the group (docs/stacks.md lists such
            # inputs), so neither the port nor the identifier belongs in it.
            description="Prism PostgreSQL: reachable from the API host only",
            tags=tags,
            opts=child,
        )
        for i, client in enumerate(args.client_security_group_ids):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-client-{i}",
                security_group_id=sg.id,
                referenced_security_group_id=client,
                ip_protocol="tcp",
                from_port=s.port,
                to_port=s.port,
                description="PostgreSQL from an allowed client security group",
                tags=tags,
                opts=child,
            )

        if args.subnet_group_name is not None:
            subnet_group_name = pulumi.Output.from_input(args.subnet_group_name)
        else:
            subnet_group = aws.rds.SubnetGroup(
                f"{name}-subnets",
                subnet_ids=list(args.subnet_ids or []),
                description=f"Private subnets of {s.identifier}",
                tags=tags,
                opts=child,
            )
            subnet_group_name = subnet_group.name

        params = aws.rds.ParameterGroup(
            f"{name}-params",
            family=f"postgres{s.engine_major}",
            description=f"{s.identifier}: TLS only, DR-useful logging",
            parameters=[
                aws.rds.ParameterGroupParameterArgs(
                    name="rds.force_ssl", value="1", apply_method="immediate"
                ),
                aws.rds.ParameterGroupParameterArgs(
                    name="log_min_duration_statement",
                    value=str(s.log_min_duration_statement_ms),
                    apply_method="immediate",
                ),
                *(
                    aws.rds.ParameterGroupParameterArgs(name=k, value=v, apply_method="immediate")
                    for k, v in _LOG_PARAMETERS.items()
                ),
            ],
            tags=tags,
            opts=child,
        )

        # A fixed final-snapshot name fails the second time an instance of that identifier is
        # deleted (the first snapshot still exists). The suffix is new whenever the instance
        # is recreated: with the stack (destroy/up), or when identifier or backup source change.
        suffix = random.RandomId(
            f"{name}-final-snapshot-suffix",
            byte_length=4,
            keepers={
                "identifier": s.identifier,
                "restore": origin or "none",
            },
            opts=child,
        )

        log_groups = [
            aws.cloudwatch.LogGroup(
                f"{name}-log-{log}",
                name=log_group_name(s.identifier, log),
                retention_in_days=(
                    EPHEMERAL_LOG_RETENTION_DAYS if args.ephemeral else LOG_RETENTION_DAYS
                ),
                tags=tags,
                opts=child,
            )
            for log in EVENT_LOG_EXPORTS
        ]

        restored = origin is not None
        instance_opts = child_options(
            self,
            opts,
            protect=args.protect,
            ignore_changes=RESTORE_IGNORED_INPUTS if restored else None,
            # The groups exist before RDS first writes to them (else RDS creates them untagged
            # and the create here fails on the existing name); destroyed after the instance.
            depends_on=log_groups,
        )
        instance = aws.rds.Instance(
            f"{name}-instance",
            identifier=s.identifier,
            engine="postgres",
            engine_version=s.engine_version,
            instance_class=s.instance_class,
            allocated_storage=s.allocated_storage_gb,
            max_allocated_storage=s.max_allocated_storage_gb,
            storage_type=s.storage_type,
            storage_encrypted=True,
            # A restore takes the database name and master user from its source.
            db_name=None if restored else s.db_name,
            username=None if restored else s.master_username,
            manage_master_user_password=True,
            master_user_secret_kms_key_id=args.master_secret_key_arn,
            port=s.port,
            db_subnet_group_name=subnet_group_name,
            vpc_security_group_ids=[sg.id],
            parameter_group_name=params.name,
            publicly_accessible=False,
            multi_az=s.multi_az,
            backup_retention_period=0 if args.ephemeral else s.backup_retention_days,
            backup_window=s.backup_window,
            maintenance_window=s.maintenance_window,
            copy_tags_to_snapshot=True,
            delete_automated_backups=args.ephemeral,
            skip_final_snapshot=args.ephemeral or not s.final_snapshot,
            final_snapshot_identifier=pulumi.Output.concat(s.identifier, "-final-", suffix.hex)
            if s.final_snapshot and not args.ephemeral
            else None,
            deletion_protection=s.deletion_protection,
            auto_minor_version_upgrade=True,
            allow_major_version_upgrade=False,
            apply_immediately=s.apply_immediately,
            enabled_cloudwatch_logs_exports=EVENT_LOG_EXPORTS,
            tags=tags,
            opts=instance_opts,
            **restore_arguments(args.restore),  # type: ignore[arg-type]
        )

        self.backup_replication_arn = None
        if s.backup_replication.enabled:
            self.backup_replication_arn = self._replicate_backups(name, args, instance, tags)

        self.identifier = instance.identifier
        self.arn = instance.arn
        self.address = instance.address
        self.port = instance.port
        self.endpoint = instance.endpoint
        self.latest_restorable_time = instance.latest_restorable_time
        self.master_secret_arn = instance.master_user_secrets.apply(
            lambda secrets: secrets[0].secret_arn if secrets else None
        )
        self.security_group_id = sg.id
        self.subnet_group_name = subnet_group_name
        self.parameter_group_name = params.name
        self.register_outputs(
            {
                "identifier": self.identifier,
                "arn": self.arn,
                "endpoint": self.endpoint,
                "latest_restorable_time": self.latest_restorable_time,
                "security_group_id": self.security_group_id,
                "backup_replication_arn": self.backup_replication_arn,
            }
        )

    def _replicate_backups(
        self, name: str, args: PrismDatabaseArgs, instance: aws.rds.Instance, tags: dict[str, str]
    ) -> pulumi.Output[str]:
        """Copy automated backups (snapshots + transaction logs) to the DR region."""
        repl = args.settings.backup_replication
        # The replication resource lives in the destination region, hence its own provider.
        dr = aws.Provider(
            f"{name}-dr-region", region=repl.region, opts=child_options(self, self._opts)
        )
        in_dr = child_options(self, self._opts, provider=dr, protect=args.protect)
        # The source is encrypted, so the copies need a key that exists in the DR region.
        # Deleting this key would make every replicated backup unreadable: long window, protected.
        key = aws.kms.Key(
            f"{name}-dr-backup-key",
            description=f"{args.settings.identifier} automated backups replicated to {repl.region}",
            deletion_window_in_days=30,
            enable_key_rotation=True,
            tags=tags,
            opts=in_dr,
        )
        aws.kms.Alias(
            f"{name}-dr-backup-key-alias",
            name=f"alias/prism-{args.stack}-{args.settings.identifier}-backups",
            target_key_id=key.key_id,
            opts=child_options(self, self._opts, provider=dr),
        )
        replication = aws.rds.InstanceAutomatedBackupsReplication(
            f"{name}-backup-replication",
            source_db_instance_arn=instance.arn,
            kms_key_id=key.arn,
            retention_period=args.settings.replication_retention_days,
            opts=in_dr,
        )
        return replication.id
