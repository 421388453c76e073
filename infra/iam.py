"""A small evaluator of IAM policies: is a request allowed, by what the stacks declare?

Enough of AWS's evaluation logic to test effective grants offline, within one account:
- an explicit Deny in any applicable policy wins; otherwise an Allow is needed;
- identity policies (inline and attached managed ones) or a resource policy naming the
  principal may allow, except for KMS: a key policy must allow, either naming the principal
  itself or naming the account (`:root`), which then delegates to identity policies; a grant
  to the principal allows its operations too, and `reachable_kms` counts what a principal
  can give itself (kms:CreateGrant, kms:PutKeyPolicy);
- Action / NotAction (case-insensitive, `*` and `?` wildcards), Resource / NotResource,
  Principal, and the condition operators listed in _OPERATORS (a key missing from the request
  context fails the condition, as AWS does without `IfExists`).
Anything it does not model (permission boundaries, SCPs, session policies, other operators)
raises or is out of scope; it answers "what do these documents grant", not "what will AWS do".
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

Decision = Literal["allow", "explicit-deny", "implicit-deny"]
Policy = Mapping[str, Any]


@dataclass(frozen=True)
class Request:
    principal: str  # the caller's IAM ARN (a role or user), as a key policy names it
    action: str  # service:Action
    resource: str  # ARN
    context: Mapping[str, str] = field(default_factory=dict)  # condition keys, e.g. kms:ViaService


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _wildcard(pattern: str, value: str, *, case: bool) -> bool:
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _action_matches(patterns: Iterable[str], action: str) -> bool:
    return any(_wildcard(p, action, case=False) for p in patterns)


def _resource_matches(patterns: Iterable[str], resource: str) -> bool:
    return any(_wildcard(p, resource, case=True) for p in patterns)


def _string_like(values: list[str], actual: str) -> bool:
    return any(fnmatch.fnmatchcase(actual, v) for v in values)


_OPERATORS: dict[str, Callable[[list[str], str], bool]] = {
    "StringEquals": lambda values, actual: actual in values,
    "StringNotEquals": lambda values, actual: actual not in values,
    "StringEqualsIgnoreCase": lambda values, actual: actual.lower() in {v.lower() for v in values},
    "StringLike": _string_like,
    "StringNotLike": lambda values, actual: not _string_like(values, actual),
    "ArnEquals": lambda values, actual: actual in values,
    "ArnLike": lambda values, actual: any(_wildcard(v, actual, case=True) for v in values),
}


def _conditions_hold(conditions: Mapping[str, Any] | None, context: Mapping[str, str]) -> bool:
    for operator, tests in (conditions or {}).items():
        check = _OPERATORS.get(operator)
        if check is None:
            raise ValueError(f"condition operator {operator} is not modelled by infra/iam.py")
        for key, values in tests.items():
            actual = next((v for k, v in context.items() if k.lower() == key.lower()), None)
            if actual is None or not check(_as_list(values), actual):
                return False
    return True


def _principal_matches(principal: Any, arn: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    return any(p == "*" or p == arn for p in _as_list(principal.get("AWS")))


def statement_applies(statement: Mapping[str, Any], request: Request, *, principal: Any) -> bool:
    """Does `statement` cover `request`? `principal`: the principal it must name (resource
    policies), or None for identity policies, whose statements name none."""
    if principal is not None and not _principal_matches(statement.get("Principal"), principal):
        return False
    if "Action" in statement:
        if not _action_matches(_as_list(statement["Action"]), request.action):
            return False
    elif _action_matches(_as_list(statement.get("NotAction")), request.action):
        return False
    if "Resource" in statement:
        if not _resource_matches(_as_list(statement["Resource"]), request.resource):
            return False
    elif "NotResource" in statement and _resource_matches(
        _as_list(statement["NotResource"]), request.resource
    ):
        return False
    return _conditions_hold(statement.get("Condition"), request.context)


def _statements(policy: Policy) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _effects(policies: Sequence[Policy], request: Request, principal: Any) -> set[str]:
    return {
        st["Effect"]
        for policy in policies
        for st in _statements(policy)
        if statement_applies(st, request, principal=principal)
    }


def evaluate(
    request: Request,
    identity_policies: Sequence[Policy],
    resource_policy: Policy | None = None,
) -> Decision:
    """Same-account evaluation for services other than KMS."""
    identity = _effects(identity_policies, request, None)
    resource = _effects([resource_policy], request, request.principal) if resource_policy else set()
    if "Deny" in identity | resource:
        return "explicit-deny"
    return "allow" if "Allow" in identity | resource else "implicit-deny"


@dataclass(frozen=True)
class KmsGrant:
    """A grant on the key: its grantee may call these operations (no constraints modelled)."""

    grantee: str
    operations: tuple[str, ...]


def evaluate_kms(
    request: Request,
    identity_policies: Sequence[Policy],
    key_policy: Policy,
    account: str,
    grants: Sequence[KmsGrant] = (),
) -> Decision:
    """KMS: nothing is allowed unless the key policy allows it, to the principal itself or to
    the account root, which delegates the decision to the identity policies, or a grant gives
    the principal the operation. An explicit Deny wins over all three."""
    identity = _effects(identity_policies, request, None)
    direct = _effects([key_policy], request, request.principal)
    partition = request.principal.split(":")[1]
    root = f"arn:{partition}:iam::{account}:root"
    delegated = _effects([key_policy], request, root) | _effects([key_policy], request, account)
    if "Deny" in identity | direct | delegated:
        return "explicit-deny"
    if "Allow" in direct or ("Allow" in delegated and "Allow" in identity):
        return "allow"
    granted = any(
        g.grantee == request.principal and _action_matches(g.operations, request.action)
        for g in grants
    )
    return "allow" if granted else "implicit-deny"


# Whoever may call these on a key can give itself any use of it: a grant naming itself, or a
# key policy naming itself (AWS KMS developer guide, "Grants in AWS KMS" and "Key policies").
KMS_LEVERS = ("kms:CreateGrant", "kms:PutKeyPolicy")


def reachable_kms(
    request: Request,
    identity_policies: Sequence[Policy],
    key_policy: Policy,
    account: str,
    grants: Sequence[KmsGrant] = (),
) -> Decision:
    """`evaluate_kms`, counting what the principal can give itself: "allow" when it may
    create a grant or rewrite the key policy, unless the request itself is explicitly denied."""
    decision = evaluate_kms(request, identity_policies, key_policy, account, grants)
    if decision != "implicit-deny":
        return decision
    for lever in KMS_LEVERS:
        lever_request = Request(request.principal, lever, request.resource, request.context)
        if evaluate_kms(lever_request, identity_policies, key_policy, account, grants) == "allow":
            return "allow"
    return decision


@cache
def managed_policy(name: str) -> dict[str, Any]:
    """An AWS-managed policy document shipped in infra/data (see its README for the version)."""
    text = resources.files("infra").joinpath("data", f"{name}.json").read_text()
    return json.loads(text)["PolicyVersion"]["Document"]


def actions_of(policy: Policy) -> set[str]:
    """Every action (not NotAction) a policy document names."""
    return {a for st in _statements(policy) for a in _as_list(st.get("Action"))}
