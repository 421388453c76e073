"""Every policy of the pack, in one list: what it checks, how to fix it, how strict it is.

Mandatory unless advisory by nature. Advisory:
- `rds-prod-multi-az`: multi-AZ buys availability (a failover instead of a restore), not
  recoverability; the RPO and RTO are met by backups, so a single-AZ prod is a cost decision
  the reviewer should see, not one the pack should block. (The stack config still requires it.)
Everything else guards a backup, a way back, or a secret, and blocks the update.
"""

from __future__ import annotations

from policy import access, drill, host, rds, tunnel
from policy.base import ResourceRule, Rule, StackRule

_RDS = frozenset({rds.INSTANCE})
_EC2 = frozenset({host.INSTANCE})
_SECURITY_GROUPS = frozenset(
    {host.SECURITY_GROUP, host.DEFAULT_SECURITY_GROUP, host.INGRESS_RULE, host.LEGACY_RULE}
)
_ENV = ("environment",)  # prod and drill rules depend on it
_RETENTION = ("environment", "minRetentionDays", "prodMinRetentionDays")

RULES: list[Rule] = [
    ResourceRule(
        name="rds-backup-retention",
        description="RDS automated backups are kept at least 7 days (30 on prod; drills exempt).",
        fix="Set backupRetentionPeriod (prism-infra:database.backupRetentionDays) to the floor.",
        types=_RDS,
        check=rds.retention,
        config_fields=_RETENTION,
    ),
    ResourceRule(
        name="rds-backup-window",
        description="RDS has a fixed daily backup window of at least 30 minutes.",
        fix="Set backupWindow (prism-infra:database.backupWindow), e.g. 03:00-03:30 UTC.",
        types=_RDS,
        check=rds.backup_window,
        config_fields=_ENV,
    ),
    ResourceRule(
        name="rds-storage-encrypted",
        description="RDS storage, and so its backups, is encrypted.",
        fix=(
            "Set storageEncrypted: true (an existing instance: restore an encrypted copy "
            "of a snapshot)."
        ),
        types=_RDS,
        check=rds.encrypted,
    ),
    ResourceRule(
        name="rds-not-public",
        description="RDS is never publicly accessible.",
        fix="Set publiclyAccessible: false; clients reach it from the VPC.",
        types=_RDS,
        check=rds.not_public,
    ),
    ResourceRule(
        name="rds-copy-tags-to-snapshot",
        description="RDS copies its tags to its snapshots.",
        fix="Set copyTagsToSnapshot: true.",
        types=_RDS,
        check=rds.copy_tags,
    ),
    ResourceRule(
        name="rds-storage-headroom",
        description="RDS storage can grow: maxAllocatedStorage is at least 1.1 x allocatedStorage.",
        fix="Set maxAllocatedStorage (database.maxAllocatedStorageGb) >= 1.1 x allocated.",
        types=_RDS,
        check=rds.storage_headroom,
        config_fields=("storageHeadroom",),
    ),
    ResourceRule(
        name="rds-prod-deletion-protection",
        description="Prod RDS has deletion protection.",
        fix="Set deletionProtection: true (prism-infra:database.deletionProtection).",
        types=_RDS,
        check=rds.prod_deletion_protection,
        config_fields=_ENV,
    ),
    ResourceRule(
        name="rds-prod-final-snapshot",
        description="Deleting prod RDS leaves a final snapshot.",
        fix="Set skipFinalSnapshot: false and a finalSnapshotIdentifier (database.finalSnapshot).",
        types=_RDS,
        check=rds.prod_final_snapshot,
        config_fields=_ENV,
    ),
    ResourceRule(
        name="rds-prod-keep-automated-backups",
        description="Deleting prod RDS keeps its automated backups.",
        fix="Set deleteAutomatedBackups: false.",
        types=_RDS,
        check=rds.prod_keep_automated_backups,
        config_fields=_ENV,
    ),
    ResourceRule(
        name="rds-prod-multi-az",
        description="Prod RDS is multi-AZ (advisory: availability, not recoverability).",
        fix="Set multiAz: true (prism-infra:database.multiAz).",
        types=_RDS,
        check=rds.prod_multi_az,
        enforcement="advisory",
        config_fields=_ENV,
    ),
    StackRule(
        name="rds-prod-backup-replication",
        description="Prod RDS automated backups are replicated to a second region (30 days).",
        fix="Enable prism-infra:database.backupReplication (region, retentionDays >= 30).",
        check=rds.prod_backup_replication,
        config_fields=("environment", "prodMinRetentionDays"),
    ),
    ResourceRule(
        name="no-inbound-from-internet",
        description="No security group admits inbound traffic from 0.0.0.0/0 or ::/0.",
        fix="Remove the rule: the API is reached through the Cloudflare tunnel, operators use SSM.",
        types=_SECURITY_GROUPS,
        check=host.no_inbound_from_internet,
    ),
    ResourceRule(
        name="host-imdsv2-required",
        description="Hosts require IMDSv2 session tokens for instance metadata.",
        fix="Set metadataOptions.httpTokens: required.",
        types=frozenset({host.INSTANCE, host.LAUNCH_TEMPLATE}),
        check=host.imdsv2_required,
    ),
    ResourceRule(
        name="host-root-volume-encrypted",
        description="Host volumes are encrypted.",
        fix="Set rootBlockDevice.encrypted: true (and encrypted on every EBS device).",
        types=frozenset({host.INSTANCE, host.LAUNCH_TEMPLATE}),
        check=host.root_volume_encrypted,
    ),
    ResourceRule(
        name="host-no-secret-in-user-data",
        description="User data holds no secret value (it is stored and shown in clear text).",
        fix="Store the value in SSM (SecureString) and fetch it on the host at service start.",
        types=_EC2 | {host.LAUNCH_TEMPLATE},
        check=host.no_secret_in_user_data,
    ),
    StackRule(
        name="instance-role-own-parameters-only",
        description="An instance role cannot read another stack's SSM parameters.",
        fix=(
            "Narrow the grant to arn:...:parameter/prism/<stack>/*, or add a Deny of "
            "ssm:GetParameter* with NotResource set to the stack's own prefix."
        ),
        check=access.instance_roles_read_own_parameters_only,
        config_fields=("parameterPrefix",),
    ),
    ResourceRule(
        name="tunnel-catch-all-last",
        description="The tunnel's ingress rules end with one catch-all rule.",
        fix="End config.ingresses with a rule without hostname: service http_status:404.",
        types=frozenset({tunnel.TUNNEL_CONFIG}),
        check=tunnel.ends_with_catch_all,
    ),
    ResourceRule(
        name="drill-resources-tagged",
        description="Drill resources carry prism:drill and an RFC 3339 prism:expires-at.",
        fix="Pass extra_tags {prism:drill, prism:expires-at} to every component of the drill.",
        types=None,
        check=drill.tagged,
        config_fields=_ENV,
    ),
    ResourceRule(
        name="drill-resources-deletable",
        description="No drill resource has deletion protection.",
        fix="Drill stacks set deletionProtection: false, no termination protection, no protect.",
        types=None,
        check=drill.deletable,
        config_fields=_ENV,
    ),
]

BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}
SETTINGS: dict[str, tuple[str, ...]] = {rule.name: rule.config_fields for rule in RULES}
