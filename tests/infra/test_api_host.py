"""infra/api_host.py: a host nobody can connect to, whose boot script holds no secret."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from infra import boot
from infra.api_host import COMPOSE_FILE, compose_literal, parameter_prefix
from infra.downloads import PINNED
from infra.host_rules import ENV_BYTES_LIMIT, ENV_MAX_ENTRIES, USER_DATA_LIMIT
from infra.offline import OfflineRun, ResourceRecord, Secret
from tests.infra.conftest import FAKE_SECRETS, clear_strings, config_error, run_stack

SG = "aws:ec2/securityGroup:SecurityGroup"


def _instance(run: OfflineRun) -> ResourceRecord:
    return run.one("aws:ec2/instance:Instance")


def _user_data(run: OfflineRun) -> str:
    return _instance(run).inputs["userData"]


def _heredoc(user_data: str, path: str) -> str:
    start = user_data.index(f"cat >{path} <<'PRISM_EOF'\n") + len(f"cat >{path} <<'PRISM_EOF'\n")
    return user_data[start : user_data.index("\nPRISM_EOF\n", start)]


def test_host_security_group_has_no_inbound_rule(each_stack: OfflineRun) -> None:
    sg = each_stack.one(SG, "api-host-sg")
    assert "ingress" not in sg.inputs
    ingress = each_stack.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert [r for r in ingress if r.inputs["securityGroupId"] == sg.id] == []
    assert _instance(each_stack).inputs["vpcSecurityGroupIds"] == [sg.id]


def test_host_egress_is_https_tunnel_and_database(each_stack: OfflineRun) -> None:
    sg = each_stack.one(SG, "api-host-sg")
    egress = {
        (r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["cidrIpv4"])
        for r in each_stack.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.inputs["securityGroupId"] == sg.id
    }
    vpc_cidr = each_stack.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"]
    assert egress == {
        ("tcp", 443, "0.0.0.0/0"),
        ("tcp", 7844, "0.0.0.0/0"),
        ("udp", 7844, "0.0.0.0/0"),
        ("tcp", 5432, vpc_cidr),
        # Redis: anywhere on staging; on prod only to the configured endpoint's network.
        ("tcp", 6379, "192.0.2.0/24" if each_stack.stack == "prod" else "0.0.0.0/0"),
    }


def test_prod_refuses_redis_egress_to_anywhere() -> None:
    from tests.infra.conftest import config_error

    message = config_error("prod", {"prism-infra:apiHost.extraEgressCidr": "0.0.0.0/0"})
    assert message.startswith("prism-infra:apiHost.extraEgressCidr must name the Redis")


def test_imdsv2_required_and_containers_cannot_reach_it(each_stack: OfflineRun) -> None:
    metadata = _instance(each_stack).inputs["metadataOptions"]
    assert metadata["httpTokens"] == "required"
    assert metadata["httpPutResponseHopLimit"] == 1


def test_root_volume_encrypted(each_stack: OfflineRun) -> None:
    root = _instance(each_stack).inputs["rootBlockDevice"]
    assert root["encrypted"] is True
    assert root["volumeType"] == "gp3"


def test_amazon_linux_2023_arm64(each_stack: OfflineRun) -> None:
    instance = _instance(each_stack)
    assert instance.inputs["ami"] == "ami-offline-al2023-ami-kernel-default-arm64"
    assert instance.inputs["instanceType"].split(".")[0].endswith("g")  # Graviton
    assert instance.ignore_changes == ("ami",)  # a new AMI release does not replace the host
    assert instance.inputs["userDataReplaceOnChange"] is True


def test_instance_profile_role_and_its_permissions(each_stack: OfflineRun) -> None:
    instance = _instance(each_stack)
    profile = each_stack.one("aws:iam/instanceProfile:InstanceProfile")
    role = each_stack.one("aws:iam/role:Role")
    assert instance.inputs["iamInstanceProfile"] == profile.outputs["name"]
    assert profile.inputs["role"] == role.outputs["name"]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}

    attachments = each_stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert [a.inputs["policyArn"] for a in attachments] == [
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    ]
    statements = [
        st
        for p in each_stack.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs["role"] == role.outputs["name"]
        for st in json.loads(p.inputs["policy"])["Statement"]
    ]
    prefix = parameter_prefix(each_stack.stack)
    by_sid = {st["Sid"]: st for st in statements}
    assert set(by_sid) == {"ReadOwnParameters", "DenyOtherStacksParameters", "ReadSecret"}
    own = [
        f"arn:aws:ssm:us-east-1:123456789012:parameter{prefix}",
        f"arn:aws:ssm:us-east-1:123456789012:parameter{prefix}/*",
    ]
    assert by_sid["ReadOwnParameters"]["Resource"] == own
    assert by_sid["DenyOtherStacksParameters"] == {
        "Sid": "DenyOtherStacksParameters",
        "Effect": "Deny",
        "Action": "ssm:GetParameter*",
        "NotResource": own,
    }
    # The application role's secret: the host never reads the master secret.
    assert by_sid["ReadSecret"]["Resource"] == each_stack.outputs["dbAppSecretArn"]
    assert each_stack.outputs["dbAppSecretArn"] != each_stack.outputs["dbMasterSecretArn"]
    for st in statements:  # no wildcard grant (the Deny may be broad)
        if st["Effect"] == "Allow":
            assert "*" not in st["Action"] and st["Resource"] != "*"


def test_no_secret_value_anywhere_in_clear(each_stack: OfflineRun) -> None:
    # The whole program ran with fake secret values (and the mocks' fake tunnel token): none
    # is in any input outside a Secret (the host's user data, tags, parameters, ...), nor in
    # any output.
    token = each_stack.one("aws:ssm/parameter:Parameter", "api-tunnel-token").inputs["value"]
    assert isinstance(token, Secret) and token.value.startswith("offline-tunnel-token-")
    secrets = [*FAKE_SECRETS.values(), token.value]
    for record in each_stack.resources:
        for text in clear_strings(record.inputs):
            for value in secrets:
                assert value not in text, f"{record.name} exposes a secret"
    for text in clear_strings(each_stack.outputs):
        assert not any(value in text for value in secrets)


def test_user_data_fits_what_ec2_accepts(each_stack: OfflineRun) -> None:
    assert len(_user_data(each_stack).encode()) <= USER_DATA_LIMIT


def test_user_data_installs_and_runs_everything(each_stack: OfflineRun) -> None:
    user_data = _user_data(each_stack)
    assert user_data.startswith("#!/bin/bash\n")
    assert "dnf install -y docker jq" in user_data
    assert "/usr/local/lib/docker/cli-plugins/docker-compose" in user_data
    assert "docker-compose-linux-aarch64" in user_data
    assert "cloudflared-linux-aarch64.rpm" in user_data
    units = (
        "docker.service prism-api.service prism-cloudflared.service prism-env-refresh.timer "
        "prism-auth-watch.service"
    )
    # Every unit enabled first, then started without waiting on any (item 1 of issue 6).
    assert f"systemctl enable {units}\nsystemctl start --no-block {units}\n" in user_data
    assert "--now" not in user_data
    restart = {
        "prism-api.service": "Restart=on-failure",  # a oneshot; docker restarts the container
        "prism-cloudflared.service": "Restart=always",
        "prism-auth-watch.service": "Restart=always",
    }
    for unit, policy in restart.items():
        body = _heredoc(user_data, f"/etc/systemd/system/{unit}")
        assert policy in body
        assert "WantedBy=multi-user.target" in body  # enabled: starts again after a reboot
    timer = _heredoc(user_data, "/etc/systemd/system/prism-env-refresh.timer")
    assert "OnUnitActiveSec=5min" in timer


def test_compose_file_is_rendered_from_config(each_stack: OfflineRun) -> None:
    compose = yaml.safe_load(_heredoc(_user_data(each_stack), COMPOSE_FILE))
    api = compose["services"]["api"]
    expected_image = {
        "staging": "ghcr.io/example/prism-api:staging",
        "prod": "ghcr.io/example/prism-api@sha256:" + "0" * 64,
    }
    # The image reaches the host through its parameter, never through user data.
    parameter = each_stack.one("aws:ssm/parameter:Parameter", "api-host-image")
    assert parameter.inputs["name"] == f"/prism/{each_stack.stack}/release/image"
    assert parameter.inputs["insecureValue"] == expected_image[each_stack.stack]
    assert each_stack.outputs["apiImage"] == expected_image[each_stack.stack]
    assert expected_image[each_stack.stack] not in _user_data(each_stack)
    assert api["image"] == "${PRISM_API_IMAGE:?written by prism-fetch-env}"
    assert api["ports"] == ["127.0.0.1:8080:8080"]  # loopback only: the tunnel is the way in
    assert api["environment"]["PORT"] == "8080"
    assert api["environment"]["APP_ENV"] in ("staging", "production")
    assert api["env_file"] == ["/etc/prism/api.env"]


def test_a_new_digest_changes_the_parameter_not_the_instance() -> None:
    # user_data_replace_on_change replaces the host when its script changes: a new image must
    # leave the script as it was and change only the parameter the host refreshes from.
    digest = "ghcr.io/acme/prism-api@sha256:" + "b" * 64
    before = run_stack("prod")
    after = run_stack("prod", {"prism-infra:apiHost.image": digest})
    assert _user_data(after) == _user_data(before)
    image = after.one("aws:ssm/parameter:Parameter", "api-host-image")
    assert image.inputs["insecureValue"] == digest


def _compose(run: OfflineRun) -> dict:
    return yaml.safe_load(_heredoc(_user_data(run), COMPOSE_FILE))


def _compose_interpolate(value: str) -> str:
    """What Compose makes of a value in the file: `$$` is one `$`; any other `$` starts a
    variable (here: unset, so empty). Enough of Compose's rules to see a value survive."""
    return re.sub(
        r"\$\$|\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*", lambda m: "$" if m[0] == "$$" else "", value
    )


def test_dollar_signs_in_env_reach_the_api_unchanged() -> None:
    value = "price $5, ${HOME} and $$ stay as written"
    run = run_stack("staging", {"prism-infra:apiHost.env": {"APP_ENV": "staging", "NOTE": value}})
    rendered = _compose(run)["services"]["api"]["environment"]["NOTE"]
    assert rendered == "price $$5, $${HOME} and $$$$ stay as written"
    assert _compose_interpolate(rendered) == value


# The worst cases config allows (infra/config.py: ENV_BYTES_LIMIT, ENV_MAX_ENTRIES): values
# whose characters grow the most when rendered, filling every byte config admits.
def _filled(char: str, entries: int) -> dict[str, str]:
    per_entry = ENV_BYTES_LIMIT // entries
    env = {}
    for i in range(entries):
        name = f"V{i}"
        env[name] = char * ((per_entry - len(name)) // len(char.encode()))
    return env


@pytest.mark.parametrize("char", ["\U0001f600", "\u4e2d", "\xe9", "$", "'", '"', "\\", "- "])
@pytest.mark.parametrize("entries", [1, ENV_MAX_ENTRIES])
def test_the_largest_env_config_allows_fits_in_user_data(char: str, entries: int) -> None:
    env = _filled(char, entries)
    size = sum(len(k) + len(v.encode()) for k, v in env.items())
    assert ENV_BYTES_LIMIT - 4 * entries < size <= ENV_BYTES_LIMIT  # all that config admits
    run = run_stack("prod", {"prism-infra:apiHost.env": env})
    assert len(_user_data(run).encode()) <= USER_DATA_LIMIT
    assert _compose(run)["services"]["api"]["environment"]["V0"] == compose_literal(env["V0"])


def test_user_data_over_the_limit_is_a_config_error_naming_the_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Config's bound makes this unreachable with today's script; the check behind it stays.
    monkeypatch.setattr(boot, "USER_DATA_LIMIT", 4096)
    message = config_error("staging", {})
    assert message.startswith("prism-infra:apiHost.env makes the boot script too large (")
    assert message.endswith("EC2 allows 4096): shorten or remove entries")


def test_secrets_are_fetched_at_boot_into_a_root_only_file(each_stack: OfflineRun) -> None:
    script = _heredoc(_user_data(each_stack), "/usr/local/bin/prism-fetch-env")
    prefix = parameter_prefix(each_stack.stack)
    assert "umask 077" in script
    for env in ("CLERK_SECRET_KEY", "CLERK_PUBLISHABLE_KEY", "REDIS_URL"):
        assert f"param {prefix}/api/{env}" in script
    # DATABASE_URL: endpoint parameters + the RDS-managed secret, assembled on the host.
    assert f"param {prefix}/database/secret-arn" in script
    assert "aws secretsmanager get-secret-value" in script
    assert "line DATABASE_URL" in script
    assert "chmod 0700 /usr/local/bin/prism-fetch-env" in _user_data(each_stack)
    token = _heredoc(_user_data(each_stack), "/usr/local/bin/prism-fetch-tunnel-token")
    assert f"--name {prefix}/tunnel/token" in token


def test_user_data_and_helpers_are_valid_bash(each_stack: OfflineRun, tmp_path) -> None:
    user_data = _user_data(each_stack)
    for name, text in {
        "user-data": user_data,
        "fetch-env": _heredoc(user_data, "/usr/local/bin/prism-fetch-env"),
        "fetch-token": _heredoc(user_data, "/usr/local/bin/prism-fetch-tunnel-token"),
    }.items():
        path = tmp_path / name
        path.write_text(text)
        subprocess.run(["bash", "-n", str(path)], check=True)


def test_x86_hosts_get_x86_binaries() -> None:
    run = run_stack(
        "staging",
        {
            "prism-infra:apiHost.architecture": "x86_64",
            "prism-infra:apiHost.instanceType": "t3.small",
        },
    )
    user_data = _user_data(run)
    assert _instance(run).inputs["ami"] == "ami-offline-al2023-ami-kernel-default-x86_64"
    assert (
        "docker-compose-linux-x86_64" in user_data and "cloudflared-linux-x86_64.rpm" in user_data
    )
    # Each checked against its own architecture's pinned checksum.
    assert f"{PINNED['cloudflared']['2026.9.3']['x86_64']}  cloudflared.rpm" in user_data
    assert f"{PINNED['compose']['v5.4.0']['x86_64']}  docker-compose" in user_data


def test_allow_reading_secret_grants_one_secret_to_the_host() -> None:
    # The AWS drill's use: the restored instance's own managed secret, next to the stack's.
    from infra.api_host import ApiHost
    from infra.stack import main

    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-drill-AbCdEf"

    def program() -> None:
        stack = main(examples_allowed=True)
        host: ApiHost = stack.host
        host.allow_reading_secret("drill-db", arn)

    run = run_stack("staging", program=program)
    role = run.one("aws:iam/role:Role")
    policy = run.one("aws:iam/rolePolicy:RolePolicy", "api-host-read-drill-db")
    assert policy.inputs["role"] == role.outputs["name"]
    assert policy.parent == next(r.urn for r in run.resources if r.type == "prism:infra:ApiHost")
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Resource"] == arn
    assert statement["Action"] == ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    assert run.one("aws:iam/rolePolicy:RolePolicy", "api-host-read-database-secret")
