"""Access policy: an instance role may read its own stack's SSM parameters and no other's.

A staging host that can read `/prism/prod/...` holds prod's secrets. The grants that count are
all of them: the role's inline policies, its RolePolicy resources, and the policies attached
to it — AWS-managed ones included, several of which allow `ssm:GetParameter*` on `*`
(AmazonSSMManagedInstanceCore does). An unconditional explicit Deny wins over any Allow, so a
Deny outside the stack's prefix makes such an attachment safe.

The evaluation asks, for each read action, whether some parameter path of *another* stack
(`/prism/<other>/...`, and for GetParametersByPath its ancestors `/prism` and `/`, since a
recursive path call is authorized on the path alone) is allowed and not denied. Resource
patterns are IAM globs (`*`, `?`). Not modelled: KMS key policies (a String parameter needs
none), permissions boundaries, customer-managed policies created outside the stack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from policy.base import Resource, is_unknown, plain
from policy.config import PolicyConfig

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
POLICY_ATTACHMENT = "aws:iam/policyAttachment:PolicyAttachment"
POLICY = "aws:iam/policy:Policy"

READ_ACTIONS = (
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "ssm:GetParameterHistory",
)

# AWS-managed policies that allow parameter reads on every resource (their documents, as AWS
# publishes them, reduced to the statements that matter here).
_ANY = ["*"]
MANAGED_READ_GRANTS: dict[str, list[dict[str, Any]]] = {
    "AmazonSSMManagedInstanceCore": [
        {"Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:GetParameters"], "Resource": _ANY}
    ],
    "AmazonEC2RoleforSSM": [
        {"Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:GetParameters"], "Resource": _ANY}
    ],
    "AmazonSSMReadOnlyAccess": [{"Effect": "Allow", "Action": ["ssm:Get*"], "Resource": _ANY}],
    "ReadOnlyAccess": [{"Effect": "Allow", "Action": ["ssm:Get*"], "Resource": _ANY}],
    "AmazonSSMFullAccess": [{"Effect": "Allow", "Action": ["ssm:*"], "Resource": _ANY}],
    "PowerUserAccess": [{"Effect": "Allow", "Action": ["ssm:*"], "Resource": _ANY}],
    "AdministratorAccess": [{"Effect": "Allow", "Action": ["*"], "Resource": _ANY}],
}
_MANAGED_ARN = re.compile(r"arn:[a-z-]+:iam::aws:policy/(?:.*/)?([A-Za-z0-9+=,.@_-]+)")


@dataclass(frozen=True)
class Grant:
    """One policy statement and where it came from (for the message)."""

    source: str
    statement: Mapping[str, Any]


@cache
def _glob(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _list(value: Any) -> list[Any]:
    value = plain(value)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _covers_action(statement: Mapping[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not any(_glob(str(p)).fullmatch(action) for p in _list(statement["NotAction"]))
    return any(_glob(str(p)).fullmatch(action) for p in _list(statement.get("Action")))


def _matches(pattern: str, arn: str) -> bool:
    """An IAM resource pattern against a parameter ARN, partition/region/account ignored: a
    grant in another region or account of the same name is still a grant."""
    if pattern == "*":
        return True
    parts = pattern.split(":", 5)
    if len(parts) < 6:
        return False
    service, resource = parts[2], parts[5]
    return bool(_glob(service).fullmatch("ssm")) and bool(
        _glob(resource).fullmatch(arn.split(":", 5)[5])
    )


def _covers_resource(statement: Mapping[str, Any], arn: str) -> bool:
    if "NotResource" in statement:
        return not any(_matches(str(p), arn) for p in _list(statement["NotResource"]))
    return any(_matches(str(p), arn) for p in _list(statement.get("Resource")))


def _probe_paths(patterns: Iterable[str], own: str, config: PolicyConfig) -> set[str]:
    """Parameter paths of other stacks a grant might reach: a made-up stack, plus the stack
    names the patterns themselves spell (`/prism/prod/*` probes prod)."""
    before, _, after = config.parameter_prefix.partition("{stack}")
    names = {"zz-other-stack"}
    for pattern in patterns:
        _, _, rest = str(pattern).partition(f"parameter{before}")
        segment = re.split(r"[/]", rest, maxsplit=1)[0] if rest else ""
        if segment:
            names |= {segment.replace("*", "").replace("?", "z"), segment.replace("*", "zz")}
    names.discard(own)
    names.discard("")
    return {f"{before}{n}{after}/x" for n in names} | {f"{before}{n}{after}" for n in names}


def _ancestors(config: PolicyConfig) -> set[str]:
    before = config.parameter_prefix.partition("{stack}")[0].rstrip("/")
    paths, node = {"/"}, ""
    for part in filter(None, before.split("/")):
        node += f"/{part}"
        paths.add(node)
    return paths


def reachable_elsewhere(
    grants: Sequence[Grant], own_stack: str, config: PolicyConfig
) -> dict[str, list[str]]:
    """Read action -> the sources whose Allow reaches another stack's parameters, undenied."""
    statements = [g for g in grants if isinstance(g.statement, Mapping)]
    patterns = [
        str(p)
        for g in statements
        for key in ("Resource", "NotResource")
        for p in _list(g.statement.get(key))
    ]
    paths = _probe_paths(patterns, own_stack, config)
    denies = [
        g.statement
        for g in statements
        if g.statement.get("Effect") == "Deny" and not g.statement.get("Condition")
    ]
    found: dict[str, list[str]] = {}
    for action in READ_ACTIONS:
        probes = set(paths)
        if action == "ssm:GetParametersByPath":
            probes |= _ancestors(config)
        arns = [f"arn:aws:ssm:us-east-1:000000000000:parameter{p}" for p in sorted(probes)]
        for grant in statements:
            st = grant.statement
            if st.get("Effect") != "Allow" or not _covers_action(st, action):
                continue
            if any(
                _covers_resource(st, arn)
                and not any(_covers_action(d, action) and _covers_resource(d, arn) for d in denies)
                for arn in arns
            ):
                found.setdefault(action, []).append(grant.source)
    return found


def _statements(document: Any, source: str) -> list[Grant]:
    document = plain(document)
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return []
    if not isinstance(document, Mapping):
        return []
    return [Grant(source, st) for st in _list(document.get("Statement")) if isinstance(st, Mapping)]


def _trusts_ec2(role: Resource) -> bool:
    grants = _statements(role.get("assumeRolePolicy"), "trust")
    for grant in grants:
        principal = plain(grant.statement.get("Principal"))
        services = _list(principal.get("Service")) if isinstance(principal, Mapping) else []
        if grant.statement.get("Effect") == "Allow" and "ec2.amazonaws.com" in services:
            return True
    return False


def _refers_to(resource: Resource, key: str, target: Resource, values: Iterable[Any]) -> bool:
    if target.urn in resource.dependencies.get(key, ()):
        return True
    wanted = {v for v in values if isinstance(v, str) and v}
    refs = _list(resource.get(key))
    return any(isinstance(r, str) and r in wanted for r in refs)


def _managed_name(arn: Any) -> str | None:
    match = _MANAGED_ARN.fullmatch(arn) if isinstance(arn, str) else None
    return match.group(1) if match else None


def role_grants(role: Resource, resources: Sequence[Resource]) -> list[Grant]:
    """Every statement that applies to `role`, from wherever the stack declares it."""
    ids = (role.get("name"), role.get("arn"), role.get("id"))
    grants: list[Grant] = []
    for inline in _list(role.get("inlinePolicies")):
        if isinstance(inline, Mapping):
            grants += _statements(inline.get("policy"), f"inline policy {inline.get('name')}")
    attached: list[tuple[Any, Resource | None]] = [
        (arn, None) for arn in _list(role.get("managedPolicyArns"))
    ]
    for r in resources:
        if r.type == ROLE_POLICY and _refers_to(r, "role", role, ids):
            grants += _statements(r.get("policy"), f"role policy {r.name}")
        elif (r.type == ROLE_ATTACHMENT and _refers_to(r, "role", role, ids)) or (
            r.type == POLICY_ATTACHMENT and _refers_to(r, "roles", role, ids)
        ):
            attached.append((r.get("policyArn"), r))
    policies = [r for r in resources if r.type == POLICY]
    for arn, attachment in attached:
        name = _managed_name(arn)
        if name in MANAGED_READ_GRANTS:
            grants += [Grant(f"AWS-managed {name}", st) for st in MANAGED_READ_GRANTS[name]]
            continue
        for policy in policies:
            linked = attachment is not None and policy.urn in attachment.dependencies.get(
                "policyArn", ()
            )
            if linked or (not is_unknown(arn) and arn == policy.get("arn")):
                grants += _statements(policy.get("policy"), f"policy {policy.name}")
    return grants


def instance_roles_read_own_parameters_only(
    resources: Sequence[Resource], config: PolicyConfig
) -> Iterator[tuple[Resource | None, str]]:
    for role in resources:
        if role.type != ROLE or not _trusts_ec2(role):
            continue
        reached = reachable_elsewhere(role_grants(role, resources), role.stack, config)
        if reached:
            actions = ", ".join(sorted(reached))
            sources = ", ".join(sorted({s for v in reached.values() for s in v}))
            own = config.parameter_prefix.replace("{stack}", role.stack)
            yield (
                role,
                (
                    f"instance role {role.name} can read parameters outside {own} ({actions}) "
                    f"through {sources}"
                ),
            )
