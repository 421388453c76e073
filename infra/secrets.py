"""RuntimeSecrets: what the API host reads at boot, all under `/prism/<stack>/`, encrypted
with the stack's own KMS key.

- `/prism/<stack>/api/<ENV>`: one SecureString per runtime secret from config (Clerk keys,
  REDIS_URL); the host exports each as the environment variable <ENV>.
- `/prism/<stack>/registry/password`: the private registry's password, when configured.
- `/prism/<stack>/database/{host,port,name,secret-arn}`: plain Strings. DATABASE_URL is not
  stored anywhere: the host assembles it at boot from these and the RDS-managed master secret
  (Secrets Manager), so RDS can rotate the password without a redeploy and no password sits
  in SSM, in user data or in Pulumi outputs.
- the stack's customer-managed KMS key. Its key policy is the whole story of who can decrypt:
  the stack's host role (through SSM only) and the stack's deploy role, named from the role
  table (infra/ci_roles.py) or `prism-infra:deployRoleArns`, never "whoever ran the last up".
  The account root keeps only reading the key (describe, list, get) and cancelling a
  deletion: no decryption, and neither `kms:CreateGrant` nor `kms:PutKeyPolicy`, either of
  which would let any admin of the account give itself decryption. So no other principal,
  another stack's host included, can decrypt, whatever its IAM policies say. The deploy roles
  administer the key; KMS's lockout safety check then requires `up` to run as one of them.
  Under the AWS-managed `aws/ssm` key, any principal allowed `ssm:GetParameter` could.

This component owns no IAM of the host: the host's policy is the host's (infra/api_host.py).

After a restore (§4.1), re-running the stack points these parameters at the new instance;
the host's hourly refresh (or a restart of prism-api) picks the change up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.boot import DatabaseParameterNames, parameter_prefix, registry_password_parameter
from infra.ci_roles import deploy_role_for, role_arn
from infra.config import resource_tags
from infra.options import child_options

# What the account root keeps: seeing the key and undoing a scheduled deletion. No use of the
# key, and nothing that hands use out: kms:CreateGrant or kms:PutKeyPolicy (both under the
# `kms:Create*` / `kms:Put*` of AWS's default admin statement) let the grantee decrypt.
ACCOUNT_KEY_ACTIONS = [
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListResourceTags",
    "kms:ListKeyPolicies",
    "kms:ListGrants",
    "kms:CancelKeyDeletion",
]
# What the deploy role does to the key: Pulumi updates its policy, tags, rotation and alias,
# and deletes it with the stack. kms:CreateGrant stays out: SSM parameters use the key
# directly, and a grant would outlive the key policy's review.
KEY_ADMIN_ACTIONS = [
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:EnableKeyRotation",
    "kms:DisableKeyRotation",
    "kms:UpdateKeyDescription",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
]
# What Pulumi does with a SecureString: write it (Encrypt through SSM) and read it back.
DEPLOYER_KEY_ACTIONS = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
]


def secret_parameter_names(stack: str, env_names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """env var → the SSM SecureString the host reads it from."""
    return {env: f"{parameter_prefix(stack)}/api/{env}" for env in env_names}


def tunnel_token_parameter(stack: str) -> str:
    return f"{parameter_prefix(stack)}/tunnel/token"


def key_policy(
    *,
    partition: str,
    account: str,
    region: str,
    deployer_arns: Sequence[str],
    reader_role_arn: str | None,
) -> dict[str, Any]:
    one = len(deployer_arns) == 1
    deployers: str | list[str] = deployer_arns[0] if one else list(deployer_arns)
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountReadsKeyOnly",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
            "Action": ACCOUNT_KEY_ACTIONS,
            "Resource": "*",
        },
        {
            "Sid": "DeployRoleAdministersKey",
            "Effect": "Allow",
            "Principal": {"AWS": deployers},
            "Action": KEY_ADMIN_ACTIONS,
            "Resource": "*",
        },
        {
            "Sid": "DeployRoleUsesKey",
            "Effect": "Allow",
            "Principal": {"AWS": deployers},
            "Action": DEPLOYER_KEY_ACTIONS,
            "Resource": "*",
        },
    ]
    if reader_role_arn is not None:
        statements.append(
            {
                "Sid": "HostDecryptsThroughSsm",
                "Effect": "Allow",
                "Principal": {"AWS": reader_role_arn},
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com"}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


@dataclass(frozen=True)
class RuntimeSecretsArgs:
    stack: str
    secret_env: Mapping[str, pulumi.Output[str]]  # env var → secret value
    database_address: pulumi.Input[str]
    database_port: pulumi.Input[int]
    database_name: str
    database_secret_arn: pulumi.Input[str]
    # Unused since the host owns its IAM (ApiHost.allow_reading_secret); kept for callers.
    reader_role_name: pulumi.Input[str] | None = None
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    # The host role that may decrypt the stack's key (through SSM only).
    reader_role_arn: pulumi.Input[str] | None = None
    # The private registry's password or token (a secret), stored for the host's login.
    registry_password: pulumi.Input[str] | None = None
    region: str | None = None  # default: the provider's
    key_deletion_window_days: int = 30
    # Who deploys the stack (and so may use and administer its key): the stack's environment's
    # role in infra/ci_roles.py in the stack's account, unless these ARNs are given.
    environment: str = "staging"
    deployer_arns: Sequence[str] = ()


class RuntimeSecrets(pulumi.ComponentResource):
    parameter_names: dict[str, str]
    key_arn: pulumi.Output[str]
    key_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: RuntimeSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("prism:infra:RuntimeSecrets", name, None, opts)
        tags = resource_tags(args.stack, "secrets", args.extra_tags)
        child = child_options(self, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)

        partition = aws.get_partition_output(opts=invoke).partition
        # Only the account is taken from the caller; the principals come from the role table.
        account = aws.get_caller_identity_output(opts=invoke).account_id
        role = deploy_role_for(args.environment)
        explicit = list(args.deployer_arns)
        region = (
            pulumi.Output.from_input(args.region)
            if args.region
            else aws.get_region_output(opts=invoke).region
        )
        policy = pulumi.Output.all(partition, account, region, args.reader_role_arn).apply(
            lambda v: json.dumps(
                key_policy(
                    partition=v[0],
                    account=v[1],
                    region=v[2],
                    deployer_arns=explicit or [role_arn(role, partition=v[0], account=v[1])],
                    reader_role_arn=v[3],
                )
            )
        )
        key = aws.kms.Key(
            f"{name}-key",
            description=f"Prism {args.stack}: runtime secrets in SSM",
            deletion_window_in_days=args.key_deletion_window_days,
            enable_key_rotation=True,
            policy=policy,
            tags=tags,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/prism-{args.stack}-secrets",
            target_key_id=key.key_id,
            opts=child,
        )
        self.key_arn = key.arn
        self.key_id = key.key_id

        self.parameter_names = secret_parameter_names(args.stack, tuple(args.secret_env))
        secure = dict(args.secret_env)
        labels = {env: env.lower().replace("_", "-") for env in secure}
        names = dict(self.parameter_names)
        if args.registry_password is not None:
            secure["REGISTRY_PASSWORD"] = args.registry_password  # type: ignore[assignment]
            labels["REGISTRY_PASSWORD"] = "registry-password"
            names["REGISTRY_PASSWORD"] = registry_password_parameter(args.stack)
        for env, value in secure.items():
            aws.ssm.Parameter(
                f"{name}-{labels[env]}",
                name=names[env],
                type="SecureString",
                key_id=key.arn,
                value=pulumi.Output.secret(value),
                description=f"{env} for the Prism API host",
                tags=tags,
                opts=child,
            )

        db = DatabaseParameterNames.for_stack(args.stack)
        plain: dict[str, tuple[str, pulumi.Input[str]]] = {
            "db-host": (db.host, args.database_address),
            "db-port": (db.port, pulumi.Output.from_input(args.database_port).apply(str)),
            "db-name": (db.name, args.database_name),
            "db-secret-arn": (db.secret_arn, args.database_secret_arn),
        }
        for label, (param_name, value) in plain.items():
            aws.ssm.Parameter(
                f"{name}-{label}",
                name=param_name,
                type="String",
                # Not secret: `value` would be masked everywhere, `insecure_value` stays readable.
                insecure_value=value,
                description="Where the Prism API finds its database (not a secret)",
                tags=tags,
                opts=child,
            )
        self.register_outputs({"parameter_names": self.parameter_names, "key_arn": self.key_arn})
