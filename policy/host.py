"""Host policies: nothing reaches the API host from the internet (the tunnel dials out), its
instance credentials need IMDSv2, its disk is encrypted, and its boot script holds no secret.

pulumi-aws stores user data in clear text in the state and EC2 shows it to anyone who may
describe the instance, so a secret in it is a leaked secret. The stacks pass parameter
*names* only (infra/api_host.py); this policy catches a value that slipped in anyway.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterator
from typing import Any

from policy.base import Resource, SecretValue, is_unknown
from policy.config import PolicyConfig

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"

_ONLY_TUNNEL = "nothing may reach Prism's hosts from the internet (the tunnel dials out)"


def _world(cidrs: Any) -> list[str]:
    """The CIDRs that cover the whole address space (0.0.0.0/0, ::/0 and their spellings)."""
    if isinstance(cidrs, str):
        cidrs = [cidrs]
    if not isinstance(cidrs, list):
        return []
    found = []
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(str(cidr).strip(), strict=False)
        except ValueError:
            continue
        if network.prefixlen == 0:
            found.append(str(network))
    return found


def _describe(open_to: list[str], rule: Any) -> str:
    ports = ""
    if isinstance(rule, dict):
        low, high = rule.get("fromPort"), rule.get("toPort")
        proto = rule.get("protocol") or rule.get("ipProtocol")
        ports = f" ({proto} {low}" + (f"-{high}" if high != low else "") + ")"
    return f"inbound from {', '.join(open_to)}{ports}"


def no_inbound_from_internet(sg: Resource, config: PolicyConfig) -> Iterator[str]:
    """Inline ingress blocks of a group, and the standalone rule resources."""
    if sg.type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        ingress = sg.get("ingress") or []
        for rule in ingress if isinstance(ingress, list) else []:
            if not isinstance(rule, dict):
                continue
            open_to = _world(rule.get("cidrBlocks")) + _world(rule.get("ipv6CidrBlocks"))
            if open_to:
                yield f"{_describe(open_to, rule)}: {_ONLY_TUNNEL}"
    elif sg.type == INGRESS_RULE:
        open_to = _world(sg.get("cidrIpv4")) + _world(sg.get("cidrIpv6"))
        if open_to:
            yield f"{_describe(open_to, dict(sg.props))}: {_ONLY_TUNNEL}"
    elif sg.type == LEGACY_RULE and sg.get("type") == "ingress":
        open_to = _world(sg.get("cidrBlocks")) + _world(sg.get("ipv6CidrBlocks"))
        if open_to:
            yield f"{_describe(open_to, dict(sg.props))}: {_ONLY_TUNNEL}"


def imdsv2_required(host: Resource, config: PolicyConfig) -> Iterator[str]:
    tokens = host.get("metadataOptions.httpTokens")
    endpoint = host.get("metadataOptions.httpEndpoint")
    if is_unknown(tokens) or endpoint == "disabled":
        return  # no metadata service at all is stricter still
    if tokens != "required":
        shown = tokens or "not set (IMDSv1 allowed)"
        yield (
            f"metadataOptions.httpTokens is {shown}: a request forgery on the host could read "
            "the instance role's credentials without a session token"
        )


def root_volume_encrypted(host: Resource, config: PolicyConfig) -> Iterator[str]:
    if host.type == INSTANCE:
        value = host.get("rootBlockDevice.encrypted")
        if not is_unknown(value) and value is not True:
            yield (
                "rootBlockDevice.encrypted is not true: the host's disk (imports, env files) "
                "is unencrypted"
            )
        devices = host.get("ebsBlockDevices") or []
        for device in devices if isinstance(devices, list) else []:
            if isinstance(device, dict) and device.get("encrypted") is not True:
                yield f"ebsBlockDevices {device.get('deviceName', '?')} is not encrypted"
    elif host.type == LAUNCH_TEMPLATE:
        mappings = host.get("blockDeviceMappings") or []
        for mapping in mappings if isinstance(mappings, list) else []:
            ebs = mapping.get("ebs") if isinstance(mapping, dict) else None
            if isinstance(ebs, dict) and str(ebs.get("encrypted")).lower() != "true":
                yield f"blockDeviceMappings {mapping.get('deviceName', '?')} is not encrypted"


# What a credential looks like, by issuer format. Shell references ($VAR, ${VAR}, $(cmd))
# are how the stacks' boot script handles secrets fetched at run time: never a finding.
_SECRET_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    (
        "an AWS secret access key",
        re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+]{40}\b", re.I),
    ),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a Clerk or Stripe secret key", re.compile(r"\b(sk|rk)_(live|test)_[A-Za-z0-9]{10,}")),
    ("a GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a JSON web token or tunnel token", re.compile(r"\beyJ[A-Za-z0-9_-]{20,}")),
    (
        "a password inside a connection URL",
        re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:(?!\$)[^\s@/'\"]{3,}@", re.I),
    ),
    (
        "a literal password, secret or token assignment",
        re.compile(
            r"\b[A-Z0-9_]*(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|APIKEY)[A-Z0-9_]*"
            r"\s*[=:]\s*['\"]?(?![$'\"%\s<{])[^\s'\"]{8,}",
            re.I,
        ),
    ),
]


def secret_findings(text: str) -> list[str]:
    """Names of the secret formats found in `text` (never the values)."""
    return [label for label, pattern in _SECRET_PATTERNS if pattern.search(text)]


def _decoded(value: str) -> str:
    # `base64` and most encoders wrap lines (76 columns); the line breaks are not data.
    try:
        return base64.b64decode("".join(value.split()), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def no_secret_in_user_data(host: Resource, config: PolicyConfig) -> Iterator[str]:
    for key in ("userData", "userDataBase64"):
        raw = host.props.get(key)
        if raw is None or is_unknown(raw):
            continue
        if isinstance(raw, SecretValue):
            yield (
                f"{key} is built from a secret value: user data is stored and shown in clear "
                "text; pass an SSM parameter name and read it on the host"
            )
            continue
        text = str(raw) if key == "userData" else _decoded(str(raw))
        found = secret_findings(text)
        if found:
            yield (
                f"{key} holds what looks like {', '.join(found)}: user data is stored and shown "
                "in clear text; put the value in SSM and read it on the host"
            )
