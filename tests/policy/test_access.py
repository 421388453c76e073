"""The instance-role policy: effective grants (inline, role policies, AWS-managed and stack
policies attached), explicit Denies, and IAM's glob matching, on the host role's real shape
(trust policy and own-prefix policy as infra/api_host.py declares them)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.api_host import parameter_prefix
from policy.config import PolicyConfig
from tests.policy.conftest import check_stack

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
POLICY = "aws:iam/policy:Policy"
NAME = "api-host-role-bae98d5"
ARN = "arn:aws:ssm:us-east-1:123456789012:parameter"
READS = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _role(service: str = "ec2.amazonaws.com") -> tuple[str, str, dict[str, Any]]:
    trust = _doc({"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"})
    return (ROLE, "api-host-role", {"name": NAME, "assumeRolePolicy": trust})


def _inline(name: str, *statements: dict[str, Any], role: str = NAME) -> tuple[str, str, dict]:
    return (ROLE_POLICY, name, {"role": role, "name": f"{name}-x", "policy": _doc(*statements)})


def _own(stack: str = "prod") -> tuple[str, str, dict]:
    return _inline(
        "read-parameters",
        {
            "Sid": "ReadOwnParameters",
            "Effect": "Allow",
            "Action": READS,
            "Resource": [f"{ARN}/prism/{stack}", f"{ARN}/prism/{stack}/*"],
        },
    )


def _managed(policy: str) -> tuple[str, str, dict]:
    arn = f"arn:aws:iam::aws:policy/{policy}"
    return (ATTACHMENT, f"attach-{policy}", {"role": NAME, "policyArn": arn})


DENY_OUTSIDE = {
    "Sid": "DenyOtherStacksParameters",
    "Effect": "Deny",
    "Action": ["ssm:GetParameter*"],
    "NotResource": [f"{ARN}/prism/prod", f"{ARN}/prism/prod/*"],
}


def _verdict(*resources: Any, stack: str = "prod") -> list[str]:
    return [
        msg for _, msg in check_stack("instance-role-own-parameters-only", resources, stack=stack)
    ]


def test_own_prefix_only_passes() -> None:
    assert _verdict(_role(), _own()) == []


def test_prefix_matches_the_stacks_convention() -> None:
    template = PolicyConfig().parameter_prefix
    assert template.replace("{stack}", "prod") == parameter_prefix("prod")


def test_managed_instance_core_reaches_every_parameter() -> None:
    [msg] = _verdict(_role(), _own(), _managed("AmazonSSMManagedInstanceCore"))
    assert "outside /prism/prod (ssm:GetParameter, ssm:GetParameters)" in msg
    assert "AWS-managed AmazonSSMManagedInstanceCore" in msg


def test_an_explicit_deny_outside_the_prefix_makes_it_safe() -> None:
    deny = _inline("deny-other-parameters", DENY_OUTSIDE)
    assert _verdict(_role(), _own(), _managed("AmazonSSMManagedInstanceCore"), deny) == []


def test_a_conditional_deny_is_not_a_guarantee() -> None:
    conditional = {**DENY_OUTSIDE, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    deny = _inline("deny-other-parameters", conditional)
    assert _verdict(_role(), _own(), _managed("AmazonSSMManagedInstanceCore"), deny)


def test_a_deny_that_misses_by_path_leaves_the_grant() -> None:
    # Denies GetParameter(s) outside, but not GetParametersByPath on /prism.
    partial = {**DENY_OUTSIDE, "Action": ["ssm:GetParameter", "ssm:GetParameters"]}
    read_all = {"Effect": "Allow", "Action": "ssm:GetParametersByPath", "Resource": f"{ARN}/prism"}
    [msg] = _verdict(_role(), _own(), _inline("by-path", read_all), _inline("deny", partial))
    assert "(ssm:GetParametersByPath)" in msg


@pytest.mark.parametrize(
    "resource",
    [
        "*",
        f"{ARN}/*",
        f"{ARN}/prism/*",
        f"{ARN}/prism/staging/*",
        f"{ARN}/prism/prod*",  # also /prism/prod-old/...
        "arn:aws:ssm:*:*:parameter/prism/*",
        "arn:aws:ssm:us-west-2:123456789012:*",
    ],
)
def test_widened_grants_fail(resource: str) -> None:
    wide = {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": resource}
    [msg] = _verdict(_role(), _own(), _inline("widened", wide))
    assert "role policy widened" in msg


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "ssm:*", "Resource": f"{ARN}/prism/prod/*"},
        {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": f"{ARN}/prism/prod/api/*"},
        {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": f"{ARN}/AmazonCloudWatch-*"},
        {"Effect": "Allow", "Action": "ssm:PutParameter", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1",
        },
        {"Effect": "Deny", "Action": "*", "Resource": "*"},
    ],
)
def test_grants_that_stay_inside_pass(statement: dict[str, Any]) -> None:
    assert _verdict(_role(), _own(), _inline("other", statement)) == []


def test_action_globs_and_not_action() -> None:
    get_star = {"Effect": "Allow", "Action": "SSM:Get*", "Resource": "*"}
    assert _verdict(_role(), _inline("a", get_star))
    not_action = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    assert _verdict(_role(), _inline("b", not_action))
    excludes_ssm = {"Effect": "Allow", "NotAction": ["ssm:*"], "Resource": "*"}
    assert _verdict(_role(), _inline("c", excludes_ssm)) == []


def test_not_resource_allow_fails() -> None:
    everything_but = {"Effect": "Allow", "Action": "ssm:GetParameter", "NotResource": f"{ARN}/x"}
    assert _verdict(_role(), _inline("nr", everything_but))


@pytest.mark.parametrize(
    "managed", ["AmazonSSMReadOnlyAccess", "ReadOnlyAccess", "AdministratorAccess"]
)
def test_broad_managed_policies_fail(managed: str) -> None:
    assert _verdict(_role(), _own(), _managed(managed))


def test_inline_policies_on_the_role_itself_count() -> None:
    kind, name, props = _role()
    props = {
        **props,
        "inlinePolicies": [
            {
                "name": "wide",
                "policy": _doc({"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}),
            }
        ],
    }
    [msg] = _verdict((kind, name, props))
    assert "inline policy wide" in msg


def test_a_role_of_another_service_is_not_an_instance_role() -> None:
    wide = {"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}
    assert _verdict(_role("lambda.amazonaws.com"), _inline("wide", wide)) == []


def test_grants_to_another_role_do_not_count() -> None:
    wide = {"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}
    assert _verdict(_role(), _own(), _inline("wide", wide, role="someone-else")) == []


def test_attachment_linked_only_by_dependency_counts() -> None:
    # In a preview a new role's name may be unknown: the engine's dependency links them.
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    kind, name, props = _managed("AmazonSSMManagedInstanceCore")
    unknown_role = (
        kind,
        name,
        {**props, "role": UNKNOWN_STRING_VALUE},
        {"role": ["api-host-role"]},
    )
    assert _verdict(_role(), _own(), unknown_role)


def test_a_stack_policy_attached_by_dependency_counts() -> None:
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    wide = (
        POLICY,
        "wide",
        {"policy": _doc({"Effect": "Allow", "Action": "ssm:Get*", "Resource": "*"})},
    )
    attach = (
        ATTACHMENT,
        "attach-wide",
        {"role": NAME, "policyArn": UNKNOWN_STRING_VALUE},
        {"policyArn": ["wide"]},
    )
    [msg] = _verdict(_role(), _own(), wide, attach)
    assert "policy wide" in msg


def test_staging_role_reading_prod_fails() -> None:
    reads_prod = {"Effect": "Allow", "Action": READS, "Resource": f"{ARN}/prism/prod/*"}
    [msg] = _verdict(_role(), _own("staging"), _inline("prod", reads_prod), stack="staging")
    assert "outside /prism/staging" in msg
