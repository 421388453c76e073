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


# --- every way a grant reaches the role, and the edges of the matching --------------------

SSM_READ_ONLY = "arn:aws:iam::aws:policy/AmazonSSMReadOnlyAccess"
WIDE = {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "*"}


def _verdict_with(config: dict[str, Any], *resources: Any) -> list[str]:
    found = check_stack("instance-role-own-parameters-only", resources, config=config)
    return [msg for _, msg in found]


def test_the_finding_names_the_role_the_actions_and_every_source() -> None:
    assert _verdict(_role(), _own(), _managed("AmazonSSMManagedInstanceCore"),
                    _inline("wide", WIDE)) == [
        "instance role api-host-role can read parameters outside /prism/prod "
        "(ssm:GetParameter, ssm:GetParameters) through AWS-managed "
        "AmazonSSMManagedInstanceCore, role policy wide"
    ]


def test_resources_listed_before_the_role_are_still_read() -> None:
    assert _verdict(_own(), _inline("wide", WIDE), _role())


def test_a_managed_policy_listed_on_the_role_itself_counts() -> None:
    kind, name, props = _role()
    role = (kind, name, {**props, "managedPolicyArns": [SSM_READ_ONLY]})
    [msg] = _verdict(role, _own())
    assert msg.endswith("through AWS-managed AmazonSSMReadOnlyAccess")


def test_a_policy_attachment_naming_the_role_counts_and_one_naming_another_does_not() -> None:
    attach = ("aws:iam/policyAttachment:PolicyAttachment", "attach-read-only",
              {"roles": ["someone", NAME], "policyArn": SSM_READ_ONLY})
    [msg] = _verdict(_role(), _own(), attach)
    assert msg.endswith("through AWS-managed AmazonSSMReadOnlyAccess")
    elsewhere = (attach[0], attach[1], {**attach[2], "roles": ["someone"]})
    assert _verdict(_role(), _own(), elsewhere) == []


@pytest.mark.parametrize("key", ["arn", "id"])
def test_a_role_policy_may_name_the_role_by_arn_or_id(key: str) -> None:
    kind, name, props = _role()
    ident = f"arn:aws:iam::123456789012:role/{NAME}" if key == "arn" else f"{NAME}-id"
    role = (kind, name, {**props, key: ident})
    assert _verdict(role, _own(), _inline("wide", WIDE, role=ident))


def test_a_stack_policy_attached_by_its_arn_counts_and_others_do_not() -> None:
    def policy(name: str, statement: dict[str, Any]) -> tuple[str, str, dict]:
        arn = f"arn:aws:iam::123456789012:policy/{name}"
        return (POLICY, name, {"arn": arn, "policy": _doc(statement)})

    def attach(name: str) -> tuple[str, str, dict]:
        arn = f"arn:aws:iam::123456789012:policy/{name}"
        return (ATTACHMENT, f"attach-{name}", {"role": NAME, "policyArn": arn})

    wide, narrow = policy("wide", WIDE), policy("narrow", {**WIDE, "Action": "ssm:PutParameter"})
    [msg] = _verdict(_role(), _own(), wide, narrow, attach("wide"))
    assert msg.endswith("through policy wide")
    assert _verdict(_role(), _own(), wide, narrow, attach("narrow")) == []
    # A policy nobody attaches is not the role's, whatever ARN the role itself lists.
    kind, name, props = _role()
    listing = (kind, name, {**props, "managedPolicyArns": ["arn:aws:iam::1:policy/other"]})
    assert _verdict(listing, _own(), wide) == []


def test_grants_from_several_sources_add_up() -> None:
    # A wide inline policy stays a finding whatever is declared after it.
    kind, name, props = _role()
    inline = [{"name": "wide", "policy": _doc(WIDE)}, {"name": "narrow", "policy": _doc(
        {**WIDE, "Action": "ssm:PutParameter"})}]
    with_inline = (kind, name, {**props, "inlinePolicies": inline})
    assert _verdict(with_inline, _own())
    narrow = (POLICY, "narrow", {"arn": "arn:aws:iam::1:policy/narrow",
                                 "policy": _doc({**WIDE, "Action": "ssm:PutParameter"})})
    attach = (ATTACHMENT, "attach-narrow",
              {"role": NAME, "policyArn": "arn:aws:iam::1:policy/narrow"})
    assert _verdict(with_inline, _own(), narrow, attach)


def test_a_deny_in_a_policy_attached_after_a_managed_one_still_counts() -> None:
    deny = (POLICY, "deny", {"arn": "arn:aws:iam::1:policy/deny", "policy": _doc(DENY_OUTSIDE)})
    attach_deny = (ATTACHMENT, "attach-deny",
                   {"role": NAME, "policyArn": "arn:aws:iam::1:policy/deny"})
    assert _verdict(_role(), _own(), _managed("AmazonSSMManagedInstanceCore"), deny,
                    attach_deny) == []


def test_a_by_path_read_of_another_stacks_tree_fails() -> None:
    by_path = {"Effect": "Allow", "Action": "ssm:GetParametersByPath",
               "Resource": f"{ARN}/prism/staging/*"}
    [msg] = _verdict(_role(), _own(), _inline("by-path", by_path))
    assert "(ssm:GetParametersByPath)" in msg


def test_a_by_path_read_of_the_root_fails() -> None:
    root = {"Effect": "Allow", "Action": "ssm:GetParametersByPath", "Resource": f"{ARN}/"}
    [msg] = _verdict(_role(), _own(), _inline("root", root))
    assert "(ssm:GetParametersByPath)" in msg


def test_the_ancestors_of_a_nested_prefix_are_probed() -> None:
    config = {"parameterPrefix": "/org/prism/{stack}"}
    own = _inline("own", {"Effect": "Allow", "Action": READS,
                          "Resource": [f"{ARN}/org/prism/prod", f"{ARN}/org/prism/prod/*"]})
    middle = {"Effect": "Allow", "Action": "ssm:GetParametersByPath",
              "Resource": f"{ARN}/org/prism"}
    assert _verdict_with(config, _role(), own) == []
    [msg] = _verdict_with(config, _role(), own, _inline("middle", middle))
    assert "outside /org/prism/prod (ssm:GetParametersByPath)" in msg


def test_a_deny_that_spares_another_stack_leaves_that_stack_readable() -> None:
    # Deny everything but prod and staging: staging's parameters stay readable.
    spares = {**DENY_OUTSIDE, "NotResource": [f"{ARN}/prism/prod/*", f"{ARN}/prism/staging/*"]}
    read_all = {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "*"}
    assert _verdict(_role(), _own(), _inline("all", read_all), _inline("deny", spares))


def test_an_allow_on_everything_but_all_parameters_reaches_none() -> None:
    none = {"Effect": "Allow", "Action": "ssm:GetParameter",
            "NotResource": "arn:aws:ssm:*:*:parameter/*"}
    assert _verdict(_role(), _own(), _inline("none", none)) == []


@pytest.mark.parametrize("resource", ["prism/*", "arn:aws:ssm"])
def test_a_resource_that_is_not_an_arn_reaches_nothing(resource: str) -> None:
    wide = {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": resource}
    assert _verdict(_role(), _own(), _inline("odd", wide)) == []


def test_a_trust_policy_without_a_service_principal_is_no_instance_role() -> None:
    trust = _doc({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"})
    role = (ROLE, "api-host-role", {"name": NAME, "assumeRolePolicy": trust})
    assert _verdict(role, _inline("wide", WIDE)) == []
