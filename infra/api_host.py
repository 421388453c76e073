"""ApiHost: one VM that runs Prism's API container and cloudflared, both under systemd.

Nothing connects *to* the host: its security group has no inbound rule and public traffic
arrives through the Cloudflare tunnel that cloudflared dials out. Operators use SSM Session
Manager. Secrets never pass through user data (pulumi-aws 7 stores it in clear text): the
script only holds SSM parameter *names*; values are fetched at every service start and every
5 minutes into root-only env files, and DATABASE_URL is assembled on the host from the RDS
endpoint and the API's application-role secret, so a new password needs no redeploy. The
image is a parameter too, so a new digest does not replace the instance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.boot import (
    API_ENV_FILE,
    COMPOSE_FILE,
    DatabaseParameterNames,
    UserDataSpec,
    UserDataTooLarge,
    compose_literal,
    ecr_registry,
    image_parameter,
    parameter_prefix,
    render_user_data,
)
from infra.config import ApiHostConfig, ConfigError, full_key, resource_tags
from infra.options import child_options

# Boot-script names re-exported for the components and programs that build on the host.
__all__ = [
    "API_ENV_FILE",
    "COMPOSE_FILE",
    "ApiHost",
    "ApiHostArgs",
    "DatabaseParameterNames",
    "UserDataSpec",
    "compose_literal",
    "parameter_prefix",
    "render_user_data",
]

# Outbound ports the host always needs: HTTPS (SSM, Secrets Manager, image registries,
# Cloudflare API) and 7844 tcp+udp, where cloudflared reaches the Cloudflare edge.
_TUNNEL_EDGE_PORT = 7844
_HTTPS = 443
SSM_CORE_POLICY = "AmazonSSMManagedInstanceCore"
# What the host does with ECR, when its image is there (the login token and the pull).
ECR_PULL_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
]
PARAMETER_READ_ACTIONS = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]


def host_policy(
    *, partition: str, region: str, account: str, stack: str, image: str
) -> dict[str, object]:
    """The host role's own inline policy: this stack's parameters only, and an explicit Deny
    of every other parameter, which also overrides the `ssm:GetParameter*` on `*` that
    AmazonSSMManagedInstanceCore grants (Session Manager needs the rest of that policy)."""
    base = f"arn:{partition}:ssm:{region}:{account}:parameter"
    prefix = parameter_prefix(stack)
    own = [f"{base}{prefix}", f"{base}{prefix}/*"]
    statements: list[dict[str, object]] = [
        {
            "Sid": "ReadOwnParameters",
            "Effect": "Allow",
            "Action": PARAMETER_READ_ACTIONS,
            "Resource": own,
        },
        {
            "Sid": "DenyOtherStacksParameters",
            "Effect": "Deny",
            "Action": "ssm:GetParameter*",
            "NotResource": own,
        },
    ]
    ecr = ecr_registry(image)
    if ecr is not None:
        ecr_account, _, rest = ecr.partition(".dkr.ecr.")
        ecr_region = rest.split(".", 1)[0]
        repository = image.split("/", 1)[1].split("@", 1)[0].split(":", 1)[0]
        statements += [
            {
                # The login token is account-wide: ECR takes no resource for it.
                "Sid": "EcrLogin",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {
                "Sid": "EcrPullApiImage",
                "Effect": "Allow",
                "Action": ECR_PULL_ACTIONS,
                "Resource": f"arn:{partition}:ecr:{ecr_region}:{ecr_account}:repository/"
                f"{repository}",
            },
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def secret_read_policy(secret_arn: str) -> dict[str, object]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # That one secret. On the stacks it is the API role's, encrypted with the
                # stack's key: the key's policy (infra/secrets.py) must let this role decrypt
                # through Secrets Manager; IAM cannot grant that by itself.
                "Sid": "ReadSecret",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": secret_arn,
            }
        ],
    }


@dataclass(frozen=True)
class ApiHostArgs:
    settings: ApiHostConfig
    stack: str
    region: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    public_ip: bool
    secret_parameters: Mapping[str, str]
    database_parameters: DatabaseParameterNames
    tunnel_token_parameter: str
    database_port: int = 5432
    extra_tags: Mapping[str, str] = field(default_factory=dict)


def al2023_ami_parameter(architecture: str) -> str:
    """AWS's public SSM parameter naming the latest Amazon Linux 2023 AMI (default kernel)."""
    return f"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{architecture}"


class ApiHost(pulumi.ComponentResource):
    instance_id: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    role_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    user_data: str

    def __init__(
        self, name: str, args: ApiHostArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        s = args.settings
        # Rendered first: a script EC2 would refuse stops the program before any resource.
        try:
            user_data = render_user_data(
                UserDataSpec(
                    stack=args.stack,
                    region=args.region,
                    settings=s,
                    secret_parameters=args.secret_parameters,
                    database=args.database_parameters,
                    tunnel_token_parameter=args.tunnel_token_parameter,
                )
            )
        except UserDataTooLarge as exc:
            # The env is the only part of the script that config can grow without bound.
            raise ConfigError(
                f"{full_key('apiHost')}.env",
                f"makes the boot script too large ({exc}): shorten or remove entries",
            ) from None
        super().__init__("prism:infra:ApiHost", name, None, opts)
        self._name = name
        tags = resource_tags(args.stack, "api-host", args.extra_tags)
        child = child_options(self, opts)
        self._child = child
        invoke = pulumi.InvokeOutputOptions(parent=self)

        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            # Constant: a changed description replaces the group.
            description="Prism API host: outbound only, no inbound rule",
            tags=tags,
            opts=child,
        )
        egress = [
            ("https", "tcp", _HTTPS, "0.0.0.0/0"),
            ("tunnel-tcp", "tcp", _TUNNEL_EDGE_PORT, "0.0.0.0/0"),
            ("tunnel-udp", "udp", _TUNNEL_EDGE_PORT, "0.0.0.0/0"),
            ("postgres", "tcp", args.database_port, args.vpc_cidr),
            *((f"tcp-{p}", "tcp", p, s.extra_egress_cidr) for p in s.extra_egress_tcp_ports),
        ]
        for label, protocol, port, cidr in egress:
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-egress-{label}",
                security_group_id=sg.id,
                ip_protocol=protocol,
                from_port=port,
                to_port=port,
                cidr_ipv4=cidr,
                description=f"outbound {label}",
                tags=tags,
                opts=child,
            )

        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ec2.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            description=f"Prism API host of {args.stack}",
            tags=tags,
            opts=child,
        )
        self._role_name = role.name
        partition = aws.get_partition_output(opts=invoke).partition
        account = aws.get_caller_identity_output(opts=invoke).account_id
        # Session Manager (operators, and the AWS drill's port forwarding) needs this policy.
        # It also allows ssm:GetParameter(s) on "*": the inline policy's Deny takes that back.
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm-core",
            role=role.name,
            policy_arn=partition.apply(lambda p: f"arn:{p}:iam::aws:policy/{SSM_CORE_POLICY}"),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-read-parameters",
            role=role.name,
            policy=pulumi.Output.all(partition, account).apply(
                lambda pa: json.dumps(
                    host_policy(
                        partition=pa[0],
                        region=args.region,
                        account=pa[1],
                        stack=args.stack,
                        image=s.image,
                    )
                )
            ),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, tags=tags, opts=child)

        # AWS publishes the current AL2023 AMI id per region in a public parameter: no name
        # filter to keep in step with AWS's image naming.
        ami = aws.ssm.get_parameter_output(name=al2023_ami_parameter(s.architecture), opts=invoke)
        # The image lives in a parameter, not in user data: a new approved digest reaches the
        # host through `pulumi up` and the host's refresh (within 5 minutes), and the instance,
        # which a changed user data would replace, stays.
        self.image_parameter = aws.ssm.Parameter(
            f"{name}-image",
            name=image_parameter(args.stack),
            type="String",
            insecure_value=s.image,
            description="The Prism API image the host runs (by digest on prod)",
            tags=tags,
            opts=child,
        )
        self.user_data = user_data
        instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=ami.value,
            instance_type=s.instance_type,
            subnet_id=args.subnet_id,
            associate_public_ip_address=args.public_ip,
            vpc_security_group_ids=[sg.id],
            iam_instance_profile=profile.name,
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",  # IMDSv2 only
                # One hop: containers behind docker's bridge cannot reach the instance role.
                http_put_response_hop_limit=1,
            ),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                encrypted=True,
                volume_type="gp3",
                volume_size=s.root_volume_gb,
                delete_on_termination=True,
                tags=tags,
            ),
            user_data=self.user_data,
            # User data runs on first boot only: a changed script means a new host.
            user_data_replace_on_change=True,
            tags={**tags, "Name": f"prism-{args.stack}-api"},
            # A newer AMI alone should not replace a running host; roll it with `--replace`.
            opts=child_options(self, opts, ignore_changes=["ami"]),
        )

        self.instance_id = instance.id
        self.security_group_id = sg.id
        self.role_name = role.name
        self.role_arn = role.arn
        self.register_outputs(
            {
                "instance_id": self.instance_id,
                "security_group_id": self.security_group_id,
                "role_name": self.role_name,
                "role_arn": self.role_arn,
            }
        )

    def allow_reading_secret(self, name: str, secret_arn: pulumi.Input[str]) -> aws.iam.RolePolicy:
        """Let the host read one Secrets Manager secret (e.g. a database's managed master
        secret): a child RolePolicy `<host>-read-<name>` on exactly that ARN."""
        return aws.iam.RolePolicy(
            f"{self._name}-read-{name}",
            role=self._role_name,
            policy=pulumi.Output.from_input(secret_arn).apply(
                lambda arn: json.dumps(secret_read_policy(arn))
            ),
            opts=self._child,
        )
