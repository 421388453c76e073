"""What a new AWS account needs before prism-infra's first real run:

- GitHub's OIDC provider, so CI jobs get short-lived credentials and no access keys exist;
- one role per CI job (preview, deploy-staging, deploy-prod, drill, audit), each trusting only
  its workflow's `sub` claim and holding the policy generated from infra/ci_roles.py;
- the Pulumi state bucket: versioned (old versions expire), encrypted with SSE-KMS, public
  access blocked, TLS only;
- one KMS key per stack for Pulumi's `awskms://` secrets provider, whose key policy lets only
  that stack's roles use it (STATE_KEY_USERS) and the admin manage it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.ci_roles import (
    OIDC_HOST,
    ROLE_PATH,
    ROLE_TABLE,
    ROLES,
    STATE_KEY_USERS,
    Placeholders,
    policy_document,
    role_name,
    state_key_alias,
    state_key_policy,
    trust_policy,
)
from infra.errors import ConfigError

NAMESPACE = "prism-bootstrap"
# The drill runs two restores and their teardowns in one job (drill.yml asks for 4 h).
SESSION_SECONDS = {"drill": 4 * 3600}
DEFAULT_SESSION_SECONDS = 3600
# AWS's limit on a role's inline policies, in characters without whitespace ("IAM and AWS STS
# quotas", docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
ROLE_POLICY_LIMIT = 10_240


@dataclass(frozen=True)
class BootstrapConfig:
    region: str
    repo: str
    admin_arn: str
    db_instance: str = "prism-prod"
    noncurrent_version_days: int = 90


def load() -> BootstrapConfig:
    config = pulumi.Config(NAMESPACE)
    region = pulumi.Config("aws").get("region") or ""
    repo = config.get("repo") or ""
    admin = config.get("adminArn") or ""
    db = config.get("dbInstance") or "prism-prod"
    days = config.get_int("noncurrentVersionDays")
    days = 90 if days is None else days
    key = f"{NAMESPACE}:"
    if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", region):
        raise ConfigError("aws:region", f"must be an AWS region (got {region!r})")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo):
        raise ConfigError(key + "repo", f"must be <owner>/<repository> (got {repo!r})")
    if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+", admin):
        raise ConfigError(
            key + "adminArn", f"must be the IAM role or user ARN that applies this (got {admin!r})"
        )
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", db):
        raise ConfigError(key + "dbInstance", f"must be an RDS identifier (got {db!r})")
    if not 1 <= days <= 3650:
        raise ConfigError(key + "noncurrentVersionDays", f"must be 1-3650 (got {days})")
    return BootstrapConfig(region, repo, admin, db, days)


def main() -> None:
    build(load())


def build(cfg: BootstrapConfig) -> dict[str, Any]:
    caller = aws.get_caller_identity_output()
    partition = aws.get_partition_output().partition
    tags = {"prism:component": "bootstrap", "managed-by": "pulumi"}

    aws.iam.OpenIdConnectProvider(
        "github",
        url=f"https://{OIDC_HOST}",
        client_id_lists=["sts.amazonaws.com"],
        tags=tags,
    )

    bucket = state_bucket(caller.account_id, cfg, tags)
    keys = {
        key: secrets_key(key, partition, caller.account_id, cfg.admin_arn, tags)
        for key in STATE_KEY_USERS
    }

    roles: dict[str, pulumi.Output[str]] = {}
    for role in ROLES:
        where = pulumi.Output.all(partition, caller.account_id, bucket.bucket).apply(
            lambda v, r=role: _placeholders(cfg, v[0], v[1], v[2])
        )
        trust = pulumi.Output.all(partition, caller.account_id).apply(
            lambda v, r=role: json.dumps(
                trust_policy(r, repo=cfg.repo, partition=v[0], account=v[1])
            )
        )
        made = aws.iam.Role(
            f"role-{role}",
            name=role_name(role),
            path=ROLE_PATH,
            description=ROLE_TABLE[role].description[:1000],
            assume_role_policy=trust,
            max_session_duration=SESSION_SECONDS.get(role, DEFAULT_SESSION_SECONDS),
            tags=tags,
        )
        aws.iam.RolePolicy(
            f"role-{role}-policy",
            role=made.name,
            policy=where.apply(lambda w, r=role: _document(r, w)),
        )
        roles[role] = made.arn

    pulumi.export("stateBucket", bucket.bucket)
    pulumi.export("backendUrl", bucket.bucket.apply(lambda b: f"s3://{b}"))
    pulumi.export("roleArns", roles)
    pulumi.export(
        "secretsProviders",
        {k: f"awskms://{state_key_alias(k)}?region={cfg.region}" for k in keys},
    )
    return {"bucket": bucket, "keys": keys, "roles": roles}


def _placeholders(cfg: BootstrapConfig, partition: str, account: str, bucket: str) -> Placeholders:
    return Placeholders(
        account=account, partition=partition, region=cfg.region, db=cfg.db_instance, bucket=bucket
    )


def _document(role: str, where: Placeholders) -> str:
    text = json.dumps(policy_document(role, where=where), separators=(",", ":"))
    if len(text) > ROLE_POLICY_LIMIT:  # AWS would refuse it at apply time; say so now
        raise ConfigError(
            f"infra/ci_roles.py ({role})",
            f"makes a {len(text)}-character policy, over IAM's {ROLE_POLICY_LIMIT}",
        )
    return text


def state_bucket(account: pulumi.Input[str], cfg: BootstrapConfig, tags: dict[str, str]) -> Any:
    bucket = aws.s3.Bucket(
        "state",
        bucket=pulumi.Output.from_input(account).apply(lambda a: f"prism-pulumi-state-{a}"),
        tags=tags,
        opts=pulumi.ResourceOptions(protect=True),  # every stack's state lives here
    )
    aws.s3.BucketVersioning(
        "state-versioning",
        bucket=bucket.id,
        versioning_configuration={"status": "Enabled"},
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        "state-encryption",
        bucket=bucket.id,
        rules=[
            {
                "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"},
                "bucket_key_enabled": True,
            }
        ],
    )
    aws.s3.BucketPublicAccessBlock(
        "state-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    aws.s3.BucketPolicy(
        "state-tls-only",
        bucket=bucket.id,
        policy=bucket.arn.apply(lambda arn: json.dumps(tls_only_policy(arn))),
    )
    aws.s3.BucketLifecycleConfiguration(
        "state-old-versions",
        bucket=bucket.id,
        rules=[
            {
                "id": "expire-old-state-versions",
                "status": "Enabled",
                "filter": {"prefix": ""},
                "noncurrent_version_expiration": {"noncurrent_days": cfg.noncurrent_version_days},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            }
        ],
    )
    return bucket


def tls_only_policy(bucket_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def secrets_key(
    key: str,
    partition: pulumi.Input[str],
    account: pulumi.Input[str],
    admin_arn: str,
    tags: dict[str, str],
) -> Any:
    policy = pulumi.Output.all(partition, account).apply(
        lambda v: json.dumps(
            state_key_policy(key, partition=v[0], account=v[1], admin_arn=admin_arn)
        )
    )
    made = aws.kms.Key(
        f"secrets-{key}",
        description=f"Pulumi secrets provider of prism-infra's {key} stacks",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=policy,
        tags={**tags, "prism:stack": key},
        opts=pulumi.ResourceOptions(protect=True),  # losing it loses the stack's secrets
    )
    aws.kms.Alias(f"secrets-{key}-alias", name=state_key_alias(key), target_key_id=made.key_id)
    return made
