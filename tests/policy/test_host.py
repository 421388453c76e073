"""Host policies: exposure, IMDSv2, disk encryption, secrets in user data. The passing cases are
the declared host, security groups and rules; each failing one changes a property."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from policy.host import secret_findings
from tests.policy.conftest import DROP, changed, check

EC2 = "aws:ec2/instance:Instance"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
LEGACY = "aws:ec2/securityGroupRule:SecurityGroupRule"
TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


@pytest.fixture(scope="module")
def host(prod_declared: dict) -> dict[str, Any]:
    return prod_declared[(EC2, "api-host-instance")]


def test_declared_groups_and_rules_admit_nothing_from_the_internet(
    prod_declared: dict, staging_declared: dict
) -> None:
    checked = 0
    for declared, stack in ((prod_declared, "prod"), (staging_declared, "staging")):
        for (type_, name), props in declared.items():
            if type_ in (SG, INGRESS, EGRESS):
                checked += 1
                assert check("no-inbound-from-internet", type_, props, stack=stack) == [], name
    # the host's egress to 0.0.0.0/0 (HTTPS, the tunnel edge) is outbound: not a finding
    assert checked >= 2 * 7


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", " 0.0.0.0/0", "0.0.0.0/0 ", "10.0.0.0/0"])
def test_inline_ingress_from_anywhere_fails(prod_declared: dict, cidr: str) -> None:
    sg = prod_declared[(SG, "api-host-sg")]
    rule = {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": [cidr]}
    [msg] = check("no-inbound-from-internet", SG, changed(sg, ingress=[rule]))
    assert "inbound from 0.0.0.0/0 (tcp 22)" in msg


def test_inline_ingress_from_anywhere_ipv6_fails(prod_declared: dict) -> None:
    sg = prod_declared[(SG, "api-host-sg")]
    for cidr in ("::/0", "::0/0"):
        rule = {"protocol": "tcp", "fromPort": 443, "toPort": 443, "ipv6CidrBlocks": [cidr]}
        [msg] = check("no-inbound-from-internet", SG, changed(sg, ingress=[rule]))
        assert "inbound from ::/0" in msg
    inside = {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.50.0.0/16"]}
    assert check("no-inbound-from-internet", SG, changed(sg, ingress=[inside])) == []


def test_ingress_rule_resource_from_anywhere_fails(prod_declared: dict) -> None:
    from_host = prod_declared[(INGRESS, "database-from-client-0")]
    assert "referencedSecurityGroupId" in from_host
    open_v4 = changed(from_host, referencedSecurityGroupId=DROP, cidrIpv4="0.0.0.0/0")
    [msg] = check("no-inbound-from-internet", INGRESS, open_v4)
    assert "inbound from 0.0.0.0/0 (tcp 5432)" in msg
    open_v6 = changed(from_host, referencedSecurityGroupId=DROP, cidrIpv6="::/0")
    assert check("no-inbound-from-internet", INGRESS, open_v6)


def test_legacy_rule_resource(prod_declared: dict) -> None:
    rule = {
        "type": "ingress",
        "protocol": "tcp",
        "fromPort": 80,
        "toPort": 80,
        "cidrBlocks": ["0.0.0.0/0"],
    }
    assert check("no-inbound-from-internet", LEGACY, rule)
    assert check("no-inbound-from-internet", LEGACY, {**rule, "type": "egress"}) == []


@pytest.mark.parametrize(
    "policy", ["host-imdsv2-required", "host-root-volume-encrypted", "host-no-secret-in-user-data"]
)
def test_declared_hosts_pass(policy: str, prod_declared: dict, staging_declared: dict) -> None:
    assert check(policy, EC2, prod_declared[(EC2, "api-host-instance")]) == []
    assert check(policy, EC2, staging_declared[(EC2, "api-host-instance")], stack="staging") == []


@pytest.mark.parametrize("tokens", ["optional", DROP])
def test_imdsv1_allowed_fails(host: dict, tokens: Any) -> None:
    options = changed(host["metadataOptions"], httpTokens=tokens)
    [msg] = check("host-imdsv2-required", EC2, changed(host, metadataOptions=options))
    assert "httpTokens is" in msg


def test_no_metadata_service_passes(host: dict) -> None:
    options = {"httpEndpoint": "disabled"}
    assert check("host-imdsv2-required", EC2, changed(host, metadataOptions=options)) == []
    assert check("host-imdsv2-required", EC2, changed(host, metadataOptions=DROP))


def test_launch_template_imds_and_volumes() -> None:
    template = {
        "metadataOptions": {"httpTokens": "optional"},
        "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}],
    }
    assert check("host-imdsv2-required", TEMPLATE, template)
    [msg] = check("host-root-volume-encrypted", TEMPLATE, template)
    assert "/dev/xvda is not encrypted" in msg
    good = {
        "metadataOptions": {"httpTokens": "required"},
        "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}}],
    }
    assert check("host-imdsv2-required", TEMPLATE, good) == []
    assert check("host-root-volume-encrypted", TEMPLATE, good) == []


@pytest.mark.parametrize("value", [False, DROP])
def test_root_volume_not_encrypted_fails(host: dict, value: Any) -> None:
    root = changed(host["rootBlockDevice"], encrypted=value)
    [msg] = check("host-root-volume-encrypted", EC2, changed(host, rootBlockDevice=root))
    assert "rootBlockDevice.encrypted is not true" in msg


def test_extra_unencrypted_volume_fails(host: dict) -> None:
    devices = [{"deviceName": "/dev/sdf", "volumeSize": 100}]
    [msg] = check("host-root-volume-encrypted", EC2, changed(host, ebsBlockDevices=devices))
    assert "/dev/sdf is not encrypted" in msg


# Values in the formats their issuers use (all invented); each must be found, and the message
# must never repeat the value.
SECRETS = {
    "aws key id": ("AWS_ACCESS_KEY_ID=AKIAZ7QX2R4MEXAMPLE9", "an AWS access key id"),
    "private key": ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n", "a private key"),
    "clerk": ("export CLERK_SECRET_KEY=sk_live_4f9Q2mZxPq8rTw1Lk0", "a Clerk or Stripe secret key"),
    "github": ("echo ghp_Zq4m8XtP2rLw9Yv1Ns6Kd3Fj0Hb7Gc5Ae2Ui", "a GitHub token"),
    "tunnel token": (
        "cloudflared tunnel run --token "
        "eyJhIjoiMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAiLCJ0IjoiYSJ9",
        "a JSON web token or tunnel token",
    ),
    "redis url": (
        "REDIS_URL=rediss://default:FAKEredisPass5a3f@redis.internal.test:6379",
        "a password inside a connection URL",
    ),
    "database url": (
        "DATABASE_URL='postgres://prism_admin:hunter2hunter2@db.internal:5432/prism'",
        "a password inside a connection URL",
    ),
    "assignment": ("DB_PASSWORD=Tr0ub4dor-and-3", "a literal password, secret or token assignment"),
}


@pytest.mark.parametrize("case", sorted(SECRETS))
def test_secret_in_user_data_fails(host: dict, case: str) -> None:
    line, label = SECRETS[case]
    script = host["userData"] + line + "\n"
    [msg] = check("host-no-secret-in-user-data", EC2, changed(host, userData=script))
    assert label in msg
    assert line not in msg and line.split("=")[-1] not in msg


def test_secret_in_base64_user_data_fails(host: dict) -> None:
    encoded = base64.b64encode(
        b"#!/bin/bash\nexport CLERK_SECRET_KEY=sk_test_4f9Q2mZxPq8rTw1Lk0\n"
    ).decode()
    props = changed(host, userData=DROP, userDataBase64=encoded)
    [msg] = check("host-no-secret-in-user-data", EC2, props)
    assert msg.startswith("userDataBase64 holds")


def test_shell_references_are_not_secrets() -> None:
    # How the stacks' boot script handles secrets fetched at run time.
    script = "\n".join(
        [
            'secret_arn=$(param "/prism/prod/database/secret-arn")',
            "db_pass=$(jq -er '.password | @uri' <<<\"$secret\")",
            'line DATABASE_URL "postgres://${db_user}:${db_pass}@${db_host}:${db_port}/${db_name}"',
            'printf "TUNNEL_TOKEN=\'%s\'\\n" "$token" >/etc/prism/cloudflared.env.new',
            "CLERK_SECRET_KEY=${CLERK_SECRET_KEY}",
            "API_TOKEN=<set-at-boot>",
        ]
    )
    assert secret_findings(script) == []


# --- each finding in full; malformed and unknown inputs ------------------------------------

ONLY_TUNNEL = "nothing may reach Prism's hosts from the internet (the tunnel dials out)"


def test_an_open_rule_is_described_with_its_sources_and_ports(prod_declared: dict) -> None:
    sg = prod_declared[(SG, "api-host-sg")]
    rule = {"protocol": "tcp", "fromPort": 8000, "toPort": 8080, "cidrBlocks": ["0.0.0.0/0"],
            "ipv6CidrBlocks": ["::/0"]}
    assert check("no-inbound-from-internet", SG, changed(sg, ingress=[rule])) == [
        f"inbound from 0.0.0.0/0, ::/0 (tcp 8000-8080): {ONLY_TUNNEL}"
    ]


def test_malformed_entries_do_not_hide_an_open_rule(prod_declared: dict) -> None:
    sg = prod_declared[(SG, "api-host-sg")]
    rule = {"protocol": "tcp", "fromPort": 22, "toPort": 22,
            "cidrBlocks": ["not-a-cidr", "0.0.0.0/0"]}
    assert check("no-inbound-from-internet", SG, changed(sg, ingress=["junk", rule])) == [
        f"inbound from 0.0.0.0/0 (tcp 22): {ONLY_TUNNEL}"
    ]


def test_ingress_only_the_update_knows_is_not_judged(prod_declared: dict) -> None:
    from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE

    sg = prod_declared[(SG, "api-host-sg")]
    assert check("no-inbound-from-internet", SG, changed(sg, ingress=UNKNOWN_ARRAY_VALUE)) == []


def test_a_legacy_rule_open_over_ipv6_fails_with_its_ports() -> None:
    rule = {"type": "ingress", "protocol": "tcp", "fromPort": 80, "toPort": 80,
            "ipv6CidrBlocks": ["::/0"]}
    assert check("no-inbound-from-internet", LEGACY, rule) == [
        f"inbound from ::/0 (tcp 80): {ONLY_TUNNEL}"
    ]


@pytest.mark.parametrize(("tokens", "shown"),
                         [("optional", "optional"), (DROP, "not set (IMDSv1 allowed)")])
def test_the_imds_finding_says_what_the_token_setting_is(host: dict, tokens: Any,
                                                        shown: str) -> None:
    options = changed(host["metadataOptions"], httpTokens=tokens)
    assert check("host-imdsv2-required", EC2, changed(host, metadataOptions=options)) == [
        f"metadataOptions.httpTokens is {shown}: a request forgery on the host could read the "
        "instance role's credentials without a session token"
    ]


def test_token_and_disk_settings_only_the_update_knows_are_not_judged(host: dict) -> None:
    from pulumi_policy.proxy import (
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_STRING_VALUE,
    )

    options = changed(host["metadataOptions"], httpTokens=UNKNOWN_STRING_VALUE)
    assert check("host-imdsv2-required", EC2, changed(host, metadataOptions=options)) == []
    root = changed(host["rootBlockDevice"], encrypted=UNKNOWN_BOOLEAN_VALUE)
    unknown_disks = changed(host, rootBlockDevice=root, ebsBlockDevices=UNKNOWN_ARRAY_VALUE)
    assert check("host-root-volume-encrypted", EC2, unknown_disks) == []
    template = {"blockDeviceMappings": UNKNOWN_ARRAY_VALUE}
    assert check("host-root-volume-encrypted", TEMPLATE, template) == []


def test_the_disk_findings_name_each_unencrypted_device(host: dict) -> None:
    root = changed(host["rootBlockDevice"], encrypted=False)
    devices = [{"deviceName": "/dev/sdf", "encrypted": True}, "junk", {"volumeSize": 10}]
    assert check("host-root-volume-encrypted", EC2,
                 changed(host, rootBlockDevice=root, ebsBlockDevices=devices)) == [
        "rootBlockDevice.encrypted is not true: the host's disk (imports, env files) is "
        "unencrypted",
        "ebsBlockDevices ? is not encrypted",
    ]
    mappings = [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}}, "junk",
                {"ebs": {"encrypted": False}}]
    assert check("host-root-volume-encrypted", TEMPLATE, {"blockDeviceMappings": mappings}) == [
        "blockDeviceMappings ? is not encrypted"
    ]


def test_the_secret_finding_lists_every_kind_found(host: dict) -> None:
    script = host["userData"] + "AWS_ACCESS_KEY_ID=AKIAZ7QX2R4MEXAMPLE9\necho ghp_" + "a" * 36
    assert check("host-no-secret-in-user-data", EC2, changed(host, userData=script)) == [
        "userData holds what looks like an AWS access key id, a GitHub token: user data is "
        "stored and shown in clear text; put the value in SSM and read it on the host"
    ]


def test_base64_user_data_that_is_not_utf8_is_still_read(host: dict) -> None:
    # A gzip header or any binary byte must not hide the text around it.
    payload = b"\x1f\x8b\xff#!/bin/bash\nexport CLERK_SECRET_KEY=sk_live_4f9Q2mZxPq8rTw1Lk0\n"
    props = changed(host, userData=DROP, userDataBase64=base64.b64encode(payload).decode())
    [msg] = check("host-no-secret-in-user-data", EC2, props)
    assert msg.startswith("userDataBase64 holds what looks like a Clerk or Stripe secret key")


def test_line_wrapped_base64_user_data_is_read(host: dict) -> None:
    # What `base64` writes by default: 76 columns a line; here a break falls inside `export`.
    secret = b"export CLERK_SECRET_KEY=sk_live_4f9Q2mZxPq8rTw1Lk0\n"
    payload = b"#!/bin/bash\n" + b"#" * 40 + b"\n" + secret
    encoded = base64.encodebytes(payload).decode()
    assert "\n" in encoded.strip()
    props = changed(host, userData=DROP, userDataBase64=encoded)
    [msg] = check("host-no-secret-in-user-data", EC2, props)
    assert msg.startswith("userDataBase64 holds what looks like a Clerk or Stripe secret key")


def test_user_data_built_from_a_secret_fails_and_the_other_key_is_still_read() -> None:
    # A secret marker reaches the rule from the offline run (infra/policy_check.py); the
    # engine does not mark secrets in what it hands a pack.
    from policy.base import Resource, SecretValue
    from policy.config import PolicyConfig
    from policy.host import no_secret_in_user_data

    encoded = base64.b64encode(b"DB_PASSWORD=Tr0ub4dor-and-3\n").decode()
    host = Resource(EC2, "api-host-instance", "urn:pulumi:prod::prism-infra::x::y",
                    {"userData": SecretValue("#!/bin/bash\n"), "userDataBase64": encoded})
    assert list(no_secret_in_user_data(host, PolicyConfig())) == [
        "userData is built from a secret value: user data is stored and shown in clear text; "
        "pass an SSM parameter name and read it on the host",
        "userDataBase64 holds what looks like a literal password, secret or token assignment: "
        "user data is stored and shown in clear text; put the value in SSM and read it on the "
        "host",
    ]
