"""RuntimeSecrets: what the API host reads at boot, all under `/prism/<stack>/`.

- `/prism/<stack>/api/<ENV>`: one SecureString per runtime secret from config (Clerk keys,
  REDIS_URL); the host exports each as the environment variable <ENV>.
- `/prism/<stack>/database/{host,port,name,secret-arn}`: plain Strings. DATABASE_URL is not
  stored anywhere: the host assembles it at boot from these and the RDS-managed master secret
  (Secrets Manager), so RDS can rotate the password without a redeploy and no password sits
  in SSM, in user data or in Pulumi outputs.
- the grant that lets the host role read that one master secret.

After a restore (§4.1), re-running the stack points these parameters at the new instance;
the host's hourly refresh (or a restart of prism-api) picks the change up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.api_host import DatabaseParameterNames, parameter_prefix
from infra.config import resource_tags


def secret_parameter_names(stack: str, env_names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """env var → the SSM SecureString the host reads it from."""
    return {env: f"{parameter_prefix(stack)}/api/{env}" for env in env_names}


def tunnel_token_parameter(stack: str) -> str:
    return f"{parameter_prefix(stack)}/tunnel/token"


@dataclass(frozen=True)
class RuntimeSecretsArgs:
    stack: str
    secret_env: Mapping[str, pulumi.Output[str]]  # env var → secret value
    database_address: pulumi.Input[str]
    database_port: pulumi.Input[int]
    database_name: str
    database_secret_arn: pulumi.Input[str]
    reader_role_name: pulumi.Input[str]
    extra_tags: Mapping[str, str] = field(default_factory=dict)


class RuntimeSecrets(pulumi.ComponentResource):
    parameter_names: dict[str, str]

    def __init__(
        self, name: str, args: RuntimeSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("prism:infra:RuntimeSecrets", name, None, opts)
        tags = resource_tags(args.stack, "secrets", args.extra_tags)
        child = pulumi.ResourceOptions(parent=self)

        self.parameter_names = secret_parameter_names(args.stack, tuple(args.secret_env))
        for env, value in args.secret_env.items():
            aws.ssm.Parameter(
                f"{name}-{env.lower().replace('_', '-')}",
                name=self.parameter_names[env],
                type="SecureString",
                value=pulumi.Output.secret(value),
                description=f"{env} for the Prism API",
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

        aws.iam.RolePolicy(
            f"{name}-read-master-secret",
            role=args.reader_role_name,
            policy=pulumi.Output.from_input(args.database_secret_arn).apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                # This instance's RDS-managed secret only. It is encrypted with
                                # the AWS-managed aws/secretsmanager key: no kms grant needed.
                                "Sid": "ReadDatabaseMasterSecret",
                                "Effect": "Allow",
                                "Action": [
                                    "secretsmanager:GetSecretValue",
                                    "secretsmanager:DescribeSecret",
                                ],
                                "Resource": arn,
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        self.register_outputs({"parameter_names": self.parameter_names})
