"""The CI roles and what each may do: one table, read by the account bootstrap (bootstrap/),
`prism-dr iam policy ROLE` and the tests. Nothing here imports Pulumi or boto3.

A role's policy is the union of
- what its commands call (COMMANDS, from the boto3 calls in runbook/, drills/aws/, recovery/);
- for the roles that run a Pulumi program, what the provider calls for each resource type the
  programs declare (RESOURCE_TYPES: read for a preview, read and write for an `up`), derived
  from the type: the provider's own calls cannot run here, and
  tests/infra/test_ci_roles.py fails when a program declares a type this table lacks;
- the state bucket and the stack's secrets-provider key (STATE_KEY_USERS).

Writes are scoped to the stack: by name where the program fixes it (SSM parameters under
`/prism/<stack>/`, the KMS alias, the database identifier), otherwise by the `prism:stack` tag
every resource carries (`aws:ResourceTag` on changes, `aws:RequestTag` on creates) where the
service supports those keys. Reads stay on "*" except SSM parameter values, which are scoped.
KMS keys are gated by their key policies (infra/secrets.py, bootstrap/): the identity
statement on `key/*` only delegates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ROLES = ("preview", "deploy-staging", "deploy-prod", "drill", "audit", "prune")
ROLE_PATH = "/prism-ci/"
Mode = Literal["read", "write"]


def role_name(role: str) -> str:
    return f"prism-{role}"


def role_arn(role: str, *, partition: str = "aws", account: str) -> str:
    return f"arn:{partition}:iam::{account}:role{ROLE_PATH}{role_name(role)}"


def deploy_role_for(environment: str) -> str:
    """The role that runs `up` of a stack of this environment (a recovery stack is prod)."""
    return {"prod": "deploy-prod", "staging": "deploy-staging", "drill": "drill"}[environment]


# Who may use each secrets-provider key (Pulumi's `awskms://`: the stack config's data key).
# Pulumi encrypts the data key once (kms:Encrypt at `stack init`); later runs only decrypt.
STATE_KEY_USERS: dict[str, tuple[str, ...]] = {
    "staging": ("deploy-staging", "preview"),
    "prod": ("deploy-prod",),
    "drill": ("drill",),
}


def state_key_alias(key: str) -> str:
    return f"alias/prism-state-{key}"


def state_key_for(stack: str) -> str:
    """`drill-*` stacks share the drill key; a `recovery-*` stack becomes prod."""
    if stack.startswith("drill-"):
        return "drill"
    if stack.startswith("recovery-"):
        return "prod"
    return stack


@dataclass(frozen=True)
class Need:
    """Actions on resources (ARN templates: {partition} {account} {region} {stack} {db}
    {bucket}), under an optional condition (same placeholders in its values)."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...] = ("*",)
    condition: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def _tagged(kind: str) -> dict[str, dict[str, str]]:
    return {"StringLike": {f"aws:{kind}/prism:stack": "{stack}"}}


PARAMS = "arn:{partition}:ssm:{region}:{account}:parameter/prism/{stack}/*"
# AWS's public parameters have no account in their ARN; `*` matches the empty field too.
AMI_PARAM = "arn:{partition}:ssm:{region}:*:parameter/aws/service/ami-amazon-linux-latest/*"
DB = "arn:{partition}:rds:{region}:{account}:db:{db}"
KEYS = "arn:{partition}:kms:{region}:{account}:key/*"

# Pulumi type → (reads a preview needs, writes an `up` adds, how writes are scoped).
# The provider's reads are Describe/Get/List calls; writes are its create/update/delete calls.
RESOURCE_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "aws:ec2/vpc:Vpc": (
        ("ec2:DescribeVpcs", "ec2:DescribeVpcAttribute"),
        ("ec2:CreateVpc", "ec2:DeleteVpc", "ec2:ModifyVpcAttribute", "ec2:CreateTags"),
        "tag",
    ),
    "aws:ec2/subnet:Subnet": (
        ("ec2:DescribeSubnets",),
        ("ec2:CreateSubnet", "ec2:DeleteSubnet", "ec2:ModifySubnetAttribute", "ec2:CreateTags"),
        "tag",
    ),
    "aws:ec2/internetGateway:InternetGateway": (
        ("ec2:DescribeInternetGateways",),
        (
            "ec2:CreateInternetGateway",
            "ec2:DeleteInternetGateway",
            "ec2:AttachInternetGateway",
            "ec2:DetachInternetGateway",
            "ec2:CreateTags",
        ),
        "tag",
    ),
    "aws:ec2/routeTable:RouteTable": (
        ("ec2:DescribeRouteTables",),
        (
            "ec2:CreateRouteTable",
            "ec2:DeleteRouteTable",
            "ec2:CreateRoute",
            "ec2:DeleteRoute",
            "ec2:CreateTags",
        ),
        "tag",
    ),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": (
        ("ec2:DescribeRouteTables",),
        ("ec2:AssociateRouteTable", "ec2:DisassociateRouteTable"),
        "tag",
    ),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": (
        ("ec2:DescribeSecurityGroups",),
        ("ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress", "ec2:CreateTags"),
        "tag",
    ),
    "aws:ec2/securityGroup:SecurityGroup": (
        ("ec2:DescribeSecurityGroups",),
        (
            "ec2:CreateSecurityGroup",
            "ec2:DeleteSecurityGroup",
            "ec2:RevokeSecurityGroupEgress",
            "ec2:CreateTags",
        ),
        "tag",
    ),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (
        ("ec2:DescribeSecurityGroupRules",),
        ("ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", "ec2:CreateTags"),
        "tag",
    ),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        ("ec2:DescribeSecurityGroupRules",),
        ("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:CreateTags"),
        "tag",
    ),
    "aws:ec2/instance:Instance": (
        ("ec2:DescribeInstances", "ec2:DescribeInstanceAttribute", "ec2:DescribeVolumes"),
        (
            "ec2:RunInstances",
            "ec2:TerminateInstances",
            "ec2:StopInstances",
            "ec2:StartInstances",
            "ec2:ModifyInstanceAttribute",
            "ec2:ModifyInstanceMetadataOptions",
            "ec2:CreateTags",
        ),
        "tag",
    ),
    "aws:iam/role:Role": (
        ("iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"),
        ("iam:CreateRole", "iam:DeleteRole", "iam:UpdateAssumeRolePolicy", "iam:TagRole"),
        "tag",
    ),
    "aws:iam/rolePolicy:RolePolicy": (
        ("iam:GetRolePolicy",),
        ("iam:PutRolePolicy", "iam:DeleteRolePolicy"),
        "tag",
    ),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (
        ("iam:ListAttachedRolePolicies",),
        ("iam:AttachRolePolicy", "iam:DetachRolePolicy"),
        "tag",
    ),
    "aws:iam/instanceProfile:InstanceProfile": (
        ("iam:GetInstanceProfile",),
        (
            "iam:CreateInstanceProfile",
            "iam:DeleteInstanceProfile",
            "iam:AddRoleToInstanceProfile",
            "iam:RemoveRoleFromInstanceProfile",
            "iam:TagInstanceProfile",
        ),
        "tag",
    ),
    "aws:kms/key:Key": (
        ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"),
        (
            "kms:CreateKey",
            "kms:PutKeyPolicy",
            "kms:EnableKeyRotation",
            "kms:UpdateKeyDescription",
            "kms:TagResource",
            "kms:UntagResource",
            "kms:ScheduleKeyDeletion",
        ),
        "key-policy",
    ),
    "aws:kms/alias:Alias": (
        ("kms:ListAliases",),
        ("kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"),
        "key-policy",
    ),
    "aws:ssm/parameter:Parameter": (
        ("ssm:DescribeParameters", "ssm:GetParameter", "ssm:ListTagsForResource"),
        ("ssm:PutParameter", "ssm:DeleteParameter", "ssm:AddTagsToResource"),
        "params",
    ),
    "aws:rds/instance:Instance": (
        ("rds:DescribeDBInstances", "rds:ListTagsForResource"),
        (
            "rds:CreateDBInstance",
            "rds:ModifyDBInstance",
            "rds:DeleteDBInstance",
            "rds:RebootDBInstance",
            "rds:AddTagsToResource",
            "rds:RemoveTagsFromResource",
        ),
        "tag",
    ),
    "aws:rds/parameterGroup:ParameterGroup": (
        ("rds:DescribeDBParameterGroups", "rds:DescribeDBParameters"),
        (
            "rds:CreateDBParameterGroup",
            "rds:ModifyDBParameterGroup",
            "rds:DeleteDBParameterGroup",
            "rds:AddTagsToResource",
        ),
        "tag",
    ),
    "aws:rds/subnetGroup:SubnetGroup": (
        ("rds:DescribeDBSubnetGroups",),
        (
            "rds:CreateDBSubnetGroup",
            "rds:ModifyDBSubnetGroup",
            "rds:DeleteDBSubnetGroup",
            "rds:AddTagsToResource",
        ),
        "tag",
    ),
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication": (
        ("rds:DescribeDBInstanceAutomatedBackups",),
        (
            "rds:StartDBInstanceAutomatedBackupsReplication",
            "rds:StopDBInstanceAutomatedBackupsReplication",
        ),
        "tag",
    ),
    "aws:rds/eventSubscription:EventSubscription": (
        ("rds:DescribeEventSubscriptions",),
        (
            "rds:CreateEventSubscription",
            "rds:ModifyEventSubscription",
            "rds:DeleteEventSubscription",
            "rds:AddTagsToResource",
        ),
        "tag",
    ),
    "aws:sns/topic:Topic": (
        ("sns:GetTopicAttributes", "sns:ListTagsForResource"),
        ("sns:CreateTopic", "sns:DeleteTopic", "sns:SetTopicAttributes", "sns:TagResource"),
        "tag",
    ),
    "aws:sns/topicPolicy:TopicPolicy": (
        ("sns:GetTopicAttributes",),
        ("sns:SetTopicAttributes",),
        "tag",
    ),
    "aws:sns/topicSubscription:TopicSubscription": (
        ("sns:GetSubscriptionAttributes", "sns:ListSubscriptionsByTopic"),
        ("sns:Subscribe", "sns:Unsubscribe", "sns:SetSubscriptionAttributes"),
        "tag",
    ),
    "aws:secretsmanager/secret:Secret": (
        ("secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy"),
        (
            "secretsmanager:CreateSecret",
            "secretsmanager:UpdateSecret",
            "secretsmanager:DeleteSecret",
            "secretsmanager:TagResource",
            "secretsmanager:UntagResource",
        ),
        "tag",
    ),
    "aws:secretsmanager/secretVersion:SecretVersion": (
        ("secretsmanager:GetSecretValue", "secretsmanager:ListSecretVersionIds"),
        ("secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"),
        "tag",
    ),
    "aws:cloudwatch/logGroup:LogGroup": (
        ("logs:DescribeLogGroups", "logs:ListTagsForResource"),
        (
            "logs:CreateLogGroup",
            "logs:DeleteLogGroup",
            "logs:PutRetentionPolicy",
            "logs:TagResource",
            "logs:UntagResource",
        ),
        "tag",
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        ("cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource"),
        ("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource"),
        "tag",
    ),
}
# The programs' data sources (invokes): the AMI public parameter, AZs, the adopted VPC.
INVOKE_READS = (
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeVpcs",
    "ec2:DescribeImages",
)
# Created by another provider, outside AWS's IAM (Cloudflare's tunnel, DNS record).
NON_AWS_PREFIXES = ("cloudflare:", "random:", "pulumi:", "prism:")


def unlisted(types: Iterable[str]) -> set[str]:
    """The resource types a program declares that this table cannot grant (tests fail on any)."""
    return {t for t in types if not t.startswith(NON_AWS_PREFIXES) and t not in RESOURCE_TYPES}


# The commands' own boto3 calls, by command. Resources use the same placeholders as Need.
COMMANDS: dict[str, tuple[Need, ...]] = {
    "audit": (
        Need(
            "AuditReadsBackups",
            (
                "rds:DescribeDBInstances",
                "rds:DescribeDBInstanceAutomatedBackups",
                "rds:DescribeDBSnapshots",
                "rds:ListTagsForResource",
                "tag:GetResources",
            ),
        ),
    ),
    "snapshot create": (
        Need("SnapshotReads", ("rds:DescribeDBInstances", "rds:DescribeDBSnapshots")),
        Need(
            "SnapshotCreate",
            ("rds:CreateDBSnapshot", "rds:AddTagsToResource"),
            (DB, "arn:{partition}:rds:{region}:{account}:snapshot:{db}-premig-*"),
        ),
    ),
    "snapshot prune": (
        Need(
            "SnapshotPruneReads",
            ("rds:DescribeDBInstances", "rds:DescribeDBSnapshots", "rds:ListTagsForResource"),
        ),
        Need(
            "SnapshotPrune",
            ("rds:DeleteDBSnapshot",),
            ("arn:{partition}:rds:{region}:{account}:snapshot:{db}-premig-*",),
        ),
    ),
    "drill plan": (
        Need(
            "DrillFindsSource",
            (
                "rds:DescribeDBInstances",
                "rds:DescribeDBInstanceAutomatedBackups",
                "rds:DescribeDBSnapshots",
                "ec2:DescribeVpcs",
                "ec2:DescribeSubnets",
                "ec2:DescribeInstances",
                "ec2:DescribeRouteTables",
            ),
        ),
        Need(
            "DrillReadsDrillSecrets",
            ("ssm:GetParameters", "ssm:GetParameter"),
            ("arn:{partition}:ssm:{region}:{account}:parameter/prism/drill/*",),
        ),
    ),
    "drill restore": (
        Need(
            "DrillRestoresFromSource",
            ("rds:RestoreDBInstanceToPointInTime", "rds:RestoreDBInstanceFromDBSnapshot"),
            (
                DB,
                "arn:{partition}:rds:{region}:{account}:db:{db}-drill-*",
                "arn:{partition}:rds:{region}:{account}:snapshot:*",
                "arn:{partition}:rds:{region}:{account}:auto-backup:*",
                "arn:{partition}:rds:{region}:{account}:subgrp:*",
                "arn:{partition}:rds:{region}:{account}:pg:*",
                "arn:{partition}:rds:{region}:{account}:og:*",
            ),
        ),
        Need(
            "DrillManagedMasterSecret",
            ("secretsmanager:CreateSecret", "secretsmanager:TagResource"),
            ("arn:{partition}:secretsmanager:{region}:{account}:secret:rds!db-*",),
        ),
        # RDS copies the instance's tags to its managed secret when it creates it
        # (hashicorp/terraform-provider-aws#41337): the restored instance's prism:stack.
        Need(
            "DrillReadsRestoredSecret",
            ("secretsmanager:GetSecretValue",),
            ("arn:{partition}:secretsmanager:{region}:{account}:secret:rds!db-*",),
            {"StringLike": {"aws:ResourceTag/prism:stack": "drill-*"}},
        ),
        # The password the runner sets for the API's role on the restored instance: the drill
        # stack's own secret (prod's application secret is under prism/prod/, out of reach).
        Need(
            "DrillReadsAppSecret",
            ("secretsmanager:GetSecretValue",),
            ("arn:{partition}:secretsmanager:{region}:{account}:secret:prism/drill-*",),
            {"StringLike": {"aws:ResourceTag/prism:stack": "drill-*"}},
        ),
        Need(
            "DrillPortForward",
            ("ssm:StartSession",),
            (
                "arn:{partition}:ec2:{region}:{account}:instance/*",
                "arn:{partition}:ssm:{region}::document/AWS-StartPortForwardingSessionToRemoteHost",
            ),
        ),
        Need(
            "DrillEndsItsSessions",
            ("ssm:TerminateSession",),
            ("arn:{partition}:ssm:{region}:{account}:session/*",),
        ),
    ),
    # The reaper and the drill's own sweep (drills/aws/reaper.py): find by tag, re-read each
    # resource's tags right before deleting it, delete only what carries prism:drill.
    "drill reap": (
        Need(
            "ReapFinds",
            (
                "tag:GetResources",
                "ec2:DescribeTags",
                "ec2:DescribeInstances",
                "ec2:DescribeSecurityGroupRules",
                "ec2:DescribeRouteTables",
                "ec2:DescribeInternetGateways",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
                "rds:DescribeDBInstances",
                "rds:DescribeDBSnapshots",
                "rds:ListTagsForResource",
                "rds:DescribeDBParameterGroups",
                "rds:DescribeDBSubnetGroups",
                "ssm:ListTagsForResource",
                "secretsmanager:ListSecrets",
                "secretsmanager:DescribeSecret",
                "logs:ListTagsForResource",
                "kms:ListResourceTags",
                "kms:DescribeKey",
                "kms:ListAliases",
                "iam:ListRoles",
                "iam:ListRoleTags",
                "iam:GetInstanceProfile",
                "iam:ListInstanceProfilesForRole",
                "iam:ListAttachedRolePolicies",
                "iam:ListRolePolicies",
            ),
        ),
        Need(
            "ReapDeletesDrillResources",
            (
                "ec2:TerminateInstances",
                "ec2:DeleteSecurityGroup",
                "ec2:RevokeSecurityGroupIngress",
                "ec2:RevokeSecurityGroupEgress",
                "ec2:DisassociateRouteTable",
                "ec2:DeleteRouteTable",
                "ec2:DetachInternetGateway",
                "ec2:DeleteInternetGateway",
                "ec2:DeleteSubnet",
                "ec2:DeleteVpc",
                "rds:DeleteDBInstance",
                "rds:DeleteDBSnapshot",
                "rds:DeleteDBParameterGroup",
                "rds:DeleteDBSubnetGroup",
                "logs:DeleteLogGroup",
                "secretsmanager:DeleteSecret",
                "kms:ScheduleKeyDeletion",
                "iam:DeleteRole",
                "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy",
                "iam:DeleteInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
            ),
            condition={"StringLike": {"aws:ResourceTag/prism:drill": "*"}},
        ),
        Need(
            "ReapDeletesDrillAliases",
            ("kms:DeleteAlias",),
            (
                "arn:{partition}:kms:{region}:{account}:alias/prism-drill-*",
                "arn:{partition}:kms:{region}:{account}:key/*",
            ),
        ),
        Need(
            "ReapDeletesDrillParameters",
            ("ssm:DeleteParameter",),
            ("arn:{partition}:ssm:{region}:{account}:parameter/prism/drill-*",),
        ),
    ),
    "recover": (
        Need(
            "RecoverReadsProdSecrets",
            ("ssm:GetParameters",),
            ("arn:{partition}:ssm:{region}:{account}:parameter/prism/prod/*",),
        ),
        # The API role's password on the restored instance: the recovery stack's own secret,
        # set as the restored instance's master user (its managed secret carries the
        # instance's tags), through a port forward via the recovery host.
        Need(
            "RecoverReadsRecoverySecrets",
            ("secretsmanager:GetSecretValue",),
            (
                "arn:{partition}:secretsmanager:{region}:{account}:secret:rds!db-*",
                "arn:{partition}:secretsmanager:{region}:{account}:secret:prism/recovery-*",
            ),
            {"StringLike": {"aws:ResourceTag/prism:stack": "recovery-*"}},
        ),
        Need(
            "RecoverPortForward",
            ("ssm:StartSession",),
            (
                "arn:{partition}:ec2:{region}:{account}:instance/*",
                "arn:{partition}:ssm:{region}::document/AWS-StartPortForwardingSessionToRemoteHost",
            ),
        ),
        Need(
            "RecoverEndsItsSessions",
            ("ssm:TerminateSession",),
            ("arn:{partition}:ssm:{region}:{account}:session/*",),
        ),
        Need(
            "RecoverRestores",
            ("rds:RestoreDBInstanceToPointInTime", "rds:RestoreDBInstanceFromDBSnapshot"),
            (
                DB,
                "arn:{partition}:rds:{region}:{account}:db:{db}-rec-*",
                "arn:{partition}:rds:{region}:{account}:snapshot:*",
                "arn:{partition}:rds:{region}:{account}:auto-backup:*",
                "arn:{partition}:rds:{region}:{account}:subgrp:*",
                "arn:{partition}:rds:{region}:{account}:pg:*",
                "arn:{partition}:rds:{region}:{account}:og:*",
            ),
        ),
    ),
    "doctor": (
        Need(
            "DoctorChecks",
            (
                "iam:SimulatePrincipalPolicy",
                "iam:GetOpenIDConnectProvider",
                "iam:ListOpenIDConnectProviders",
                "kms:DescribeKey",
                "s3:GetBucketVersioning",
            ),
        ),
    ),
}


@dataclass(frozen=True)
class Role:
    """What a CI role runs: its commands, the stacks it previews or deploys, the state key."""

    commands: tuple[str, ...]
    program: Mode | None  # the Pulumi program: previewed (read) or applied (write)
    stack: str  # the stack its writes are scoped to (a pattern for drill stacks)
    state_key: str | None
    description: str


ROLE_TABLE: dict[str, Role] = {
    "preview": Role(("doctor",), "read", "staging", "staging", "pull requests: preview of staging"),
    "deploy-staging": Role(
        ("doctor",), "write", "staging", "staging", "main: `pulumi up` of staging"
    ),
    "deploy-prod": Role(
        ("doctor", "snapshot create", "recover"),
        "write",
        "prod",
        "prod",
        "main, `production` environment: preview, snapshot, `pulumi up` of prod; recovery",
    ),
    "drill": Role(
        ("doctor", "drill plan", "drill restore", "drill reap"),
        "write",
        "drill-*",
        "drill",
        "the quarterly drill: ephemeral `drill-*` stacks restored from prod's backups",
    ),
    "audit": Role(("doctor", "audit"), None, "prod", None, "weekly: the backup posture audit"),
    "prune": Role(
        ("snapshot prune",),
        None,
        "prod",
        None,
        "weekly: deletes prod's expired pre-migration snapshots (and nothing else)",
    ),
}

# Each role trusts only its workflow's job: GitHub puts `environment:<name>` in the OIDC token's
# `sub` claim when the job names an environment, else `ref:<ref>` (docs.github.com, "About
# security hardening with OpenID Connect", example subject claims).
SUBJECTS: dict[str, str] = {
    "preview": "environment:preview",
    "deploy-staging": "environment:staging",
    "deploy-prod": "environment:production",
    "drill": "environment:drill",
    "audit": "ref:refs/heads/main",
    # The prune job names an environment (no reviewers) only to get a `sub` of its own: with
    # `ref:refs/heads/main` the read-only audit job could assume the role that deletes.
    "prune": "environment:prune",
}
OIDC_HOST = "token.actions.githubusercontent.com"


def oidc_provider_arn(*, partition: str = "aws", account: str) -> str:
    return f"arn:{partition}:iam::{account}:oidc-provider/{OIDC_HOST}"


def trust_policy(role: str, *, repo: str, partition: str = "aws", account: str) -> dict[str, Any]:
    """Who may assume `role`: GitHub's OIDC tokens for this repository's job, nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GitHubJob",
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn(partition=partition, account=account)},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{OIDC_HOST}:aud": "sts.amazonaws.com",
                        f"{OIDC_HOST}:sub": f"repo:{repo}:{SUBJECTS[role]}",
                    }
                },
            }
        ],
    }


READ_VERBS = ("Describe", "Get", "List")


def is_mutating(action: str) -> bool:
    """Reads are Describe*, Get*, List* (and the simulator); everything else changes state."""
    verb = action.split(":", 1)[1]
    return not verb.startswith(READ_VERBS) and verb != "SimulatePrincipalPolicy"


@dataclass(frozen=True)
class Placeholders:
    account: str = "123456789012"
    partition: str = "aws"
    region: str = "*"
    db: str = "prism-prod"
    bucket: str = "prism-pulumi-state-123456789012"

    def fill(self, template: str, stack: str) -> str:
        return template.format(
            partition=self.partition,
            account=self.account,
            region=self.region,
            stack=stack,
            db=self.db,
            bucket=self.bucket,
        )


def _statement(need: Need, where: Placeholders, stack: str) -> dict[str, Any]:
    st: dict[str, Any] = {
        "Sid": need.sid,
        "Effect": "Allow",
        "Action": sorted(set(need.actions)),
        "Resource": [where.fill(r, stack) for r in need.resources],
    }
    if need.condition:
        st["Condition"] = {
            op: {k: where.fill(v, stack) for k, v in tests.items()}
            for op, tests in need.condition.items()
        }
    return st


def program_needs(mode: Mode, stack: str, types: Iterable[str] | None = None) -> list[Need]:
    """What running the program (preview or up) needs for these resource types (all by
    default), scoped to `stack`."""
    chosen = [RESOURCE_TYPES[t] for t in (types or RESOURCE_TYPES)]
    values = ("ssm:Get", "secretsmanager:GetSecretValue")  # a secret's value: scoped below
    reads = {a for r, _, _ in chosen for a in r if not a.startswith(values)} | set(INVOKE_READS)
    secret_reads = {a for r, _, _ in chosen for a in r if a == "secretsmanager:GetSecretValue"}
    needs = [
        Need("ProgramReads", tuple(sorted(reads))),
        Need("ProgramReadsStackParameters", ("ssm:GetParameter",), (PARAMS,)),
        Need("ProgramReadsAmiParameter", ("ssm:GetParameter", "ssm:GetParameters"), (AMI_PARAM,)),
    ]
    if secret_reads:
        needs.append(
            Need(
                "ProgramReadsStackSecrets",
                tuple(sorted(secret_reads)),
                condition=_tagged("ResourceTag"),
            )
        )
    if mode == "write":
        by_scope: dict[str, set[str]] = {}
        for _, writes, scope in chosen:
            by_scope.setdefault(scope, set()).update(writes)
        creates = {a for a in by_scope.get("tag", set()) if _is_create(a)}
        creates |= by_scope["key-policy"] & STAR_ONLY_CREATES
        changes = by_scope.get("tag", set()) - creates
        needs += [
            Need("ProgramCreatesTagged", tuple(sorted(creates)), condition=_tagged("RequestTag")),
            Need("ProgramChangesOwn", tuple(sorted(changes)), condition=_tagged("ResourceTag")),
            Need("ProgramWritesStackParameters", tuple(sorted(by_scope["params"])), (PARAMS,)),
            Need(
                "ProgramKeys",
                tuple(sorted(by_scope["key-policy"] - STAR_ONLY_CREATES)),
                (KEYS, "arn:{partition}:kms:{region}:{account}:alias/prism-{stack}-secrets"),
            ),
            Need(
                "ProgramPassesHostRole",
                ("iam:PassRole",),
                ("arn:{partition}:iam::{account}:role/*",),
                {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            ),
        ]
    return needs


def _is_create(action: str) -> bool:
    verb = action.split(":", 1)[1]
    return verb.startswith(("Create", "Run")) and verb not in ("CreateTags", "CreateRoute")


# Creates whose only resource is "*" (the key does not exist yet): scoped by the request's tag.
STAR_ONLY_CREATES = frozenset({"kms:CreateKey"})


def state_needs(role: str, stack: str) -> list[Need]:
    """The state bucket (`.pulumi/` of Pulumi's self-managed backend) and the secrets key."""
    spec = ROLE_TABLE[role]
    if spec.state_key is None:
        return []
    bucket = "arn:{partition}:s3:::{bucket}"
    writes = ("s3:PutObject", "s3:DeleteObject")
    # A preview writes only its lock file; an up writes the stack's state and history.
    write_where = (
        (bucket + "/.pulumi/locks/*",) if spec.program == "read" else (bucket + "/.pulumi/*",)
    )
    key_actions = ("kms:Decrypt",) if spec.program == "read" else ("kms:Decrypt", "kms:Encrypt")
    return [
        Need("StateList", ("s3:ListBucket", "s3:GetBucketVersioning"), (bucket,)),
        Need("StateRead", ("s3:GetObject",), (bucket + "/.pulumi/*",)),
        Need("StateWrite", writes, write_where),
        # The key policy decides which stack's key (STATE_KEY_USERS); this only delegates.
        Need("StateSecretsKey", (*key_actions, "kms:DescribeKey"), (KEYS,)),
    ]


def policy_document(
    role: str, *, stack: str | None = None, where: Placeholders | None = None
) -> dict[str, Any]:
    """The identity policy of `role` (scoped to `stack`, default the role's own)."""
    if role not in ROLE_TABLE:
        from infra.errors import BadInput

        raise BadInput(f"role {role!r} is not one of {', '.join(ROLES)}")
    spec = ROLE_TABLE[role]
    where = where or Placeholders()
    stack = stack or spec.stack
    needs: list[Need] = []
    for command in spec.commands:
        needs += COMMANDS[command]
    if spec.program is not None:
        needs += program_needs(spec.program, stack)
    needs += state_needs(role, stack)
    merged: dict[str, dict[str, Any]] = {}
    for need in needs:
        st = _statement(need, where, stack)
        if st["Sid"] in merged:
            known = merged[st["Sid"]]
            known["Action"] = sorted(set(known["Action"]) | set(st["Action"]))
        else:
            merged[st["Sid"]] = st
    return {"Version": "2012-10-17", "Statement": list(merged.values())}


def state_key_policy(key: str, *, partition: str, account: str, admin_arn: str) -> dict[str, Any]:
    """The key policy of a secrets-provider key: only its stack's roles use it; the admin who
    applies the bootstrap manages it without using it; the rest of the account only reads it
    (no grants, no policy changes: those would hand decryption out)."""
    users = [role_arn(r, partition=partition, account=account) for r in STATE_KEY_USERS[key]]
    deployer = role_arn(deploy_role_for(key), partition=partition, account=account)
    readers = [u for u in users if u != deployer]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountReadsKeyOnly",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
            "Action": ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListResourceTags"],
            "Resource": "*",
        },
        {
            "Sid": "BootstrapAdminManagesKey",
            "Effect": "Allow",
            "Principal": {"AWS": admin_arn},
            "Action": [
                "kms:DescribeKey",
                "kms:GetKeyPolicy",
                "kms:PutKeyPolicy",
                "kms:EnableKeyRotation",
                "kms:GetKeyRotationStatus",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ListResourceTags",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion",
            ],
            "Resource": "*",
        },
        {
            "Sid": "DeployRoleUsesKey",
            "Effect": "Allow",
            "Principal": {"AWS": deployer},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
            "Resource": "*",
        },
    ]
    if readers:
        statements.append(
            {
                "Sid": "PreviewDecrypts",
                "Effect": "Allow",
                "Principal": {"AWS": readers},
                "Action": ["kms:Decrypt", "kms:DescribeKey"],
                "Resource": "*",
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
