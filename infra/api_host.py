"""ApiHost: one VM that runs Prism's API container and cloudflared, both under systemd.

Nothing connects *to* the host: its security group has no inbound rule and public traffic
arrives through the Cloudflare tunnel that cloudflared dials out. Operators use SSM Session
Manager. Secrets never pass through user data (pulumi-aws 7 stores it in clear text): the
script only holds SSM parameter *names*; values are fetched at every service start into
root-only env files, and DATABASE_URL is assembled on the host from the RDS endpoint and the
RDS-managed master secret, so the managed password rotation needs no redeploy.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import yaml

from infra.config import HEREDOC_MARKER, ApiHostConfig, ConfigError, full_key, resource_tags

USER_DATA_LIMIT = 16 * 1024  # EC2 rejects larger user data
ENV_DIR = "/etc/prism"
COMPOSE_FILE = f"{ENV_DIR}/compose.yaml"
API_ENV_FILE = f"{ENV_DIR}/api.env"
TUNNEL_ENV_FILE = f"{ENV_DIR}/cloudflared.env"

# Outbound ports the host always needs: HTTPS (SSM, Secrets Manager, image registries,
# Cloudflare API) and 7844 tcp+udp, where cloudflared reaches the Cloudflare edge.
_TUNNEL_EDGE_PORT = 7844
_HTTPS = 443


def parameter_prefix(stack: str) -> str:
    """Every runtime parameter of a stack lives under this path; the host may read only it."""
    return f"/prism/{stack}"


@dataclass(frozen=True)
class DatabaseParameterNames:
    """SSM parameters the host combines into DATABASE_URL at boot."""

    host: str
    port: str
    name: str
    secret_arn: str

    @staticmethod
    def for_stack(stack: str) -> DatabaseParameterNames:
        base = f"{parameter_prefix(stack)}/database"
        return DatabaseParameterNames(
            host=f"{base}/host",
            port=f"{base}/port",
            name=f"{base}/name",
            secret_arn=f"{base}/secret-arn",
        )


@dataclass(frozen=True)
class UserDataSpec:
    stack: str
    region: str
    settings: ApiHostConfig
    secret_parameters: Mapping[str, str]  # env var → SSM SecureString name
    database: DatabaseParameterNames
    tunnel_token_parameter: str


class UserDataTooLarge(ValueError):
    """The rendered boot script exceeds what EC2 accepts."""


def compose_literal(value: str) -> str:
    """`value` as Compose reads it literally: Compose substitutes `$VAR` / `${VAR}` in the
    file's values, and `$$` is its escape for one `$`."""
    return value.replace("$", "$$")


def render_compose(spec: UserDataSpec) -> str:
    s = spec.settings
    environment = {name: compose_literal(value) for name, value in s.env.items()}
    service = {
        "image": s.image,
        "restart": "unless-stopped",
        "env_file": [API_ENV_FILE],
        # PORT and IMPORT_UPLOAD_DIR come from their own keys (config refuses them in env).
        "environment": {
            **environment,
            "PORT": str(s.port),
            "IMPORT_UPLOAD_DIR": s.import_upload_dir,
        },
        # Loopback only: cloudflared on the host is the one way in.
        "ports": [f"127.0.0.1:{s.port}:{s.port}"],
        "volumes": [f"{s.import_upload_dir}:{s.import_upload_dir}"],
        "logging": {"driver": "journald"},
    }
    return yaml.safe_dump({"services": {"api": service}}, sort_keys=False)


_FETCH_ENV_HEADER = r"""#!/bin/bash
# Fetch the API's secrets into a root-only env file. Re-run hourly by a timer, which restarts
# the API when a value changed (e.g. after RDS rotated the managed master password).
set -euo pipefail
umask 077
param() {
  aws ssm get-parameter --region "$REGION" --with-decryption --name "$1" \
    --query Parameter.Value --output text
}
# Compose reads single-quoted values literally; refuse the two characters that would break it.
line() {
  case "$2" in
    *"'"* | *$'\n'*) echo "prism-fetch-env: $1 holds a quote or newline" >&2; exit 1 ;;
  esac
  printf "%s='%s'\n" "$1" "$2"
}
"""


def _fetch_env_script(spec: UserDataSpec) -> str:
    """Writes the API env file from SSM + Secrets Manager at every start of the API."""
    db = spec.database
    q = shlex.quote
    lines = [
        f"REGION={q(spec.region)}",
        f"tmp=$(mktemp {ENV_DIR}/api.env.XXXXXX)",
        "trap 'rm -f \"$tmp\"' EXIT",
        f"db_host=$(param {q(db.host)})",
        f"db_port=$(param {q(db.port)})",
        f"db_name=$(param {q(db.name)})",
        f"secret_arn=$(param {q(db.secret_arn)})",
        'secret=$(aws secretsmanager get-secret-value --region "$REGION" --secret-id "$secret_arn" '
        "--query SecretString --output text)",
        "db_user=$(jq -er '.username | @uri' <<<\"$secret\")",
        "db_pass=$(jq -er '.password | @uri' <<<\"$secret\")",
        'line DATABASE_URL "postgres://${db_user}:${db_pass}@${db_host}:${db_port}/${db_name}'
        '?sslmode=require" >>"$tmp"',
    ]
    for env, name in sorted(spec.secret_parameters.items()):
        lines += [f"value=$(param {q(name)})", f'line {env} "$value" >>"$tmp"']
    lines += [
        f'if cmp -s "$tmp" {API_ENV_FILE}; then exit 0; fi',
        f'mv "$tmp" {API_ENV_FILE}',
        'if [ "${1:-}" = --restart-if-changed ]; then systemctl restart prism-api.service; fi',
    ]
    return _FETCH_ENV_HEADER + "\n".join(lines) + "\n"


def _tunnel_env_script(spec: UserDataSpec) -> str:
    q = shlex.quote
    return (
        "#!/bin/bash\n"
        "# cloudflared reads TUNNEL_TOKEN from its environment: the token stays off argv.\n"
        "set -euo pipefail\n"
        "umask 077\n"
        f"token=$(aws ssm get-parameter --region {q(spec.region)} --with-decryption "
        f"--name {q(spec.tunnel_token_parameter)} --query Parameter.Value --output text)\n"
        f'printf "TUNNEL_TOKEN=\'%s\'\\n" "$token" >{TUNNEL_ENV_FILE}.new\n'
        f"mv {TUNNEL_ENV_FILE}.new {TUNNEL_ENV_FILE}\n"
    )


_API_UNIT = f"""[Unit]
Description=Prism API (docker compose)
Requires=docker.service
After=docker.service network-online.target
Wants=network-online.target
# Keep retrying while the database or its parameters are still being created.
StartLimitIntervalSec=0

[Service]
ExecStartPre=/usr/local/bin/prism-fetch-env
ExecStart=/usr/bin/docker compose -f {COMPOSE_FILE} up --remove-orphans
ExecStop=/usr/bin/docker compose -f {COMPOSE_FILE} down
Restart=always
RestartSec=15

[Install]
WantedBy=multi-user.target
"""

_TUNNEL_UNIT = f"""[Unit]
Description=Cloudflare tunnel for the Prism API
After=network-online.target prism-api.service
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
ExecStartPre=/usr/local/bin/prism-fetch-tunnel-token
# Sourced at exec time (the file is written by ExecStartPre just before).
ExecStart=/bin/bash -c \\
  'set -a; . {TUNNEL_ENV_FILE}; exec /usr/bin/cloudflared --no-autoupdate tunnel run'
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

_REFRESH_SERVICE = """[Unit]
Description=Refresh the Prism API secrets and restart the API if they changed

[Service]
Type=oneshot
ExecStart=/usr/local/bin/prism-fetch-env --restart-if-changed
"""

_REFRESH_TIMER = """[Unit]
Description=Hourly refresh of the Prism API secrets

[Timer]
OnBootSec=15min
OnUnitActiveSec=1h

[Install]
WantedBy=timers.target
"""


def _heredoc(path: str, body: str, mode: str) -> str:
    """Shell that writes `body` to `path` verbatim (quoted marker: no expansion).

    Config refuses the marker in everything it can put into a file (infra/config.py), so this
    guards the code, not the user's settings."""
    marker = HEREDOC_MARKER
    if marker in body:
        raise ValueError(f"{path}: content contains the heredoc marker {marker}")
    if not body.endswith("\n"):
        body += "\n"
    return f"cat >{path} <<'{marker}'\n{body}{marker}\nchmod {mode} {path}\n"


def render_user_data(spec: UserDataSpec) -> str:
    """The first-boot script. Holds parameter names and public settings only."""
    s = spec.settings
    arch = "aarch64" if s.architecture == "arm64" else "x86_64"
    compose_url = f"https://github.com/docker/compose/releases/download/{s.compose_version}/docker-compose-linux-{arch}"
    cloudflared_url = (
        f"https://github.com/cloudflare/cloudflared/releases/download/{s.cloudflared_version}/"
        f"cloudflared-linux-{arch}.rpm"
    )
    parts = [
        "#!/bin/bash\n",
        f"# Prism API host bootstrap for stack {spec.stack}, rendered by infra/api_host.py.\n",
        "# No secret values here: they are read from SSM / Secrets Manager at service start.\n",
        "set -euo pipefail\n",
        "exec > >(tee -a /var/log/prism-bootstrap.log) 2>&1\n",
        "dnf install -y docker jq\n",
        "install -d -m 0755 /usr/local/lib/docker/cli-plugins\n",
        f"curl -fsSL --retry 5 -o /usr/local/lib/docker/cli-plugins/docker-compose {compose_url}\n",
        "chmod 0755 /usr/local/lib/docker/cli-plugins/docker-compose\n",
        f"dnf install -y {cloudflared_url}\n",
        f"install -d -m 0700 {ENV_DIR}\n",
        f"install -d -m 0750 {s.import_upload_dir}\n",
        _heredoc(COMPOSE_FILE, render_compose(spec), "0644"),
        _heredoc("/usr/local/bin/prism-fetch-env", _fetch_env_script(spec), "0700"),
        _heredoc("/usr/local/bin/prism-fetch-tunnel-token", _tunnel_env_script(spec), "0700"),
        _heredoc("/etc/systemd/system/prism-api.service", _API_UNIT, "0644"),
        _heredoc("/etc/systemd/system/prism-cloudflared.service", _TUNNEL_UNIT, "0644"),
        _heredoc("/etc/systemd/system/prism-env-refresh.service", _REFRESH_SERVICE, "0644"),
        _heredoc("/etc/systemd/system/prism-env-refresh.timer", _REFRESH_TIMER, "0644"),
        "systemctl daemon-reload\n",
        "systemctl enable --now docker.service\n",
        "systemctl enable --now prism-api.service prism-cloudflared.service\n",
        "systemctl enable --now prism-env-refresh.timer\n",
    ]
    script = "".join(parts)
    if len(script.encode()) > USER_DATA_LIMIT:
        raise UserDataTooLarge(
            f"user data is {len(script.encode())} bytes; EC2 allows {USER_DATA_LIMIT}"
        )
    return script


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


def _ami_name_filter(architecture: str) -> str:
    return f"al2023-ami-2023.*-kernel-*-{architecture}"


class ApiHost(pulumi.ComponentResource):
    instance_id: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    role_name: pulumi.Output[str]
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
        tags = resource_tags(args.stack, "api-host", args.extra_tags)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)

        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="Prism API host: outbound only, no inbound rule",
            tags=tags,
            opts=child,
        )
        egress = [
            ("https", "tcp", _HTTPS, "0.0.0.0/0"),
            ("tunnel-tcp", "tcp", _TUNNEL_EDGE_PORT, "0.0.0.0/0"),
            ("tunnel-udp", "udp", _TUNNEL_EDGE_PORT, "0.0.0.0/0"),
            ("postgres", "tcp", args.database_port, args.vpc_cidr),
            *((f"tcp-{p}", "tcp", p, "0.0.0.0/0") for p in s.extra_egress_tcp_ports),
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
        partition = aws.get_partition_output(opts=invoke).partition
        account = aws.get_caller_identity_output(opts=invoke).account_id
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm-core",
            role=role.name,
            policy_arn=partition.apply(
                lambda p: f"arn:{p}:iam::aws:policy/AmazonSSMManagedInstanceCore"
            ),
            opts=child,
        )
        prefix = parameter_prefix(args.stack)
        aws.iam.RolePolicy(
            f"{name}-read-parameters",
            role=role.name,
            policy=pulumi.Output.all(partition, account).apply(
                lambda pa: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                # Only this stack's parameters. SecureStrings use the AWS-managed
                                # aws/ssm key, whose policy already lets account principals decrypt
                                # through SSM, so no kms:Decrypt grant is needed.
                                "Sid": "ReadOwnParameters",
                                "Effect": "Allow",
                                "Action": [
                                    "ssm:GetParameter",
                                    "ssm:GetParameters",
                                    "ssm:GetParametersByPath",
                                ],
                                "Resource": [
                                    f"arn:{pa[0]}:ssm:{args.region}:{pa[1]}:parameter{prefix}",
                                    f"arn:{pa[0]}:ssm:{args.region}:{pa[1]}:parameter{prefix}/*",
                                ],
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, tags=tags, opts=child)

        ami = aws.ec2.get_ami_output(
            most_recent=True,
            owners=["amazon"],
            filters=[
                aws.ec2.GetAmiFilterArgs(name="name", values=[_ami_name_filter(s.architecture)]),
                aws.ec2.GetAmiFilterArgs(name="architecture", values=[s.architecture]),
                aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
            ],
            opts=invoke,
        )
        self.user_data = user_data
        instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=ami.id,
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
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ami"]),
        )

        self.instance_id = instance.id
        self.security_group_id = sg.id
        self.role_name = role.name
        self.register_outputs(
            {
                "instance_id": self.instance_id,
                "security_group_id": self.security_group_id,
                "role_name": self.role_name,
            }
        )
