"""Effective grants of each stack's host, attached AWS-managed policies included (infra/iam.py).

Both stacks run in one account (the offline account 123456789012, region us-east-1): exactly
the case where a staging host must not read `/prism/prod/...`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.iam import (
    KMS_LEVERS,
    KmsGrant,
    Request,
    actions_of,
    evaluate,
    evaluate_kms,
    managed_policy,
    reachable_kms,
    statement_applies,
)
from infra.offline import FAKE_ACCOUNT_ID, OfflineRun

ACCOUNT = FAKE_ACCOUNT_ID
SSM = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter"
VIA_SSM = {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}


class Host:
    """One stack's host role: its ARN, and every policy that applies to it."""

    def __init__(self, run: OfflineRun) -> None:
        role = run.one("aws:iam/role:Role")
        self.arn: str = role.outputs["arn"]
        inline = [
            json.loads(p.inputs["policy"])
            for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
            if p.inputs["role"] == role.outputs["name"]
        ]
        managed = [
            managed_policy(a.inputs["policyArn"].rsplit("/", 1)[-1])
            for a in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
            if a.inputs["role"] == role.outputs["name"]
        ]
        assert managed, "the host attaches AmazonSSMManagedInstanceCore"
        self.policies = [*inline, *managed]
        self.key_policy: dict[str, Any] = json.loads(
            run.one("aws:kms/key:Key", "runtime-secrets-key").inputs["policy"]
        )
        # What the API connects with: its application role's secret.
        self.db_secret: str = run.outputs["dbAppSecretArn"]
        self.master_secret: str = run.outputs["dbMasterSecretArn"]

    def ssm(self, action: str, parameter: str) -> str:
        return evaluate(Request(self.arn, action, f"{SSM}{parameter}"), self.policies)

    def decrypt(self, key_policy: dict[str, Any], context: dict[str, str] | None = None) -> str:
        request = Request(self.arn, "kms:Decrypt", "*", context if context is not None else VIA_SSM)
        return evaluate_kms(request, self.policies, key_policy, ACCOUNT)


@pytest.fixture(scope="module")
def hosts(staging: OfflineRun, prod: OfflineRun) -> dict[str, Host]:
    return {"staging": Host(staging), "prod": Host(prod)}


@pytest.mark.parametrize(("me", "other"), [("staging", "prod"), ("prod", "staging")])
@pytest.mark.parametrize("action", ["ssm:GetParameter", "ssm:GetParameters"])
def test_a_host_cannot_read_the_other_stacks_parameters(
    hosts: dict[str, Host], me: str, other: str, action: str
) -> None:
    host = hosts[me]
    # AmazonSSMManagedInstanceCore alone would allow it: the host's own Deny takes it back.
    assert (
        evaluate(
            Request(host.arn, action, f"{SSM}/prism/{other}/api/X"),
            [managed_policy("AmazonSSMManagedInstanceCore")],
        )
        == "allow"
    )
    for name in (
        "api/CLERK_SECRET_KEY",
        "database/secret-arn",
        "tunnel/token",
        "registry/password",
    ):
        assert host.ssm(action, f"/prism/{other}/{name}") == "explicit-deny"
    assert host.ssm(action, "/some-other-app/password") == "explicit-deny"
    assert host.ssm("ssm:GetParametersByPath", f"/prism/{other}") == "explicit-deny"
    assert host.ssm("ssm:GetParameterHistory", f"/prism/{other}/api/X") == "explicit-deny"


@pytest.mark.parametrize("me", ["staging", "prod"])
def test_a_host_reads_its_own_parameters(hosts: dict[str, Host], me: str) -> None:
    host = hosts[me]
    for action in ("ssm:GetParameter", "ssm:GetParameters"):
        assert host.ssm(action, f"/prism/{me}/api/CLERK_SECRET_KEY") == "allow"
        assert host.ssm(action, f"/prism/{me}/tunnel/token") == "allow"
    assert host.ssm("ssm:GetParametersByPath", f"/prism/{me}") == "allow"
    # A look-alike prefix is not its own.
    assert host.ssm("ssm:GetParameter", f"/prism/{me}-old/api/X") == "explicit-deny"


@pytest.mark.parametrize(("me", "other"), [("staging", "prod"), ("prod", "staging")])
def test_only_the_own_host_decrypts_a_stacks_key(
    hosts: dict[str, Host], me: str, other: str
) -> None:
    host = hosts[me]
    assert host.decrypt(host.key_policy) == "allow"
    assert host.decrypt(hosts[other].key_policy) == "implicit-deny"
    # Through SSM only: not a direct kms:Decrypt call with the role's credentials.
    assert host.decrypt(host.key_policy, context={}) == "implicit-deny"


def test_no_identity_policy_in_the_account_can_grant_decryption(hosts: dict[str, Host]) -> None:
    # An administrator allowed kms:* on * by IAM: the root statement delegates reading the key
    # only, so its secrets stay unreadable to them, directly or by a grant or a new key policy.
    admin = f"arn:aws:iam::{ACCOUNT}:role/Administrator"
    everything = [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
    key_policy = hosts["prod"].key_policy
    decrypt = Request(admin, "kms:Decrypt", "*", VIA_SSM)
    assert reachable_kms(decrypt, everything, key_policy, ACCOUNT) == "implicit-deny"
    for lever in KMS_LEVERS:
        assert evaluate_kms(Request(admin, lever, "*"), everything, key_policy, ACCOUNT) != "allow"
    for action in ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:CancelKeyDeletion"):
        see = Request(admin, action, "*")
        assert evaluate_kms(see, everything, key_policy, ACCOUNT) == "allow"
        assert evaluate_kms(see, [], key_policy, ACCOUNT) == "implicit-deny"


def test_aws_default_admin_statement_would_let_an_admin_grant_itself_decryption() -> None:
    """Why the root statement lost kms:Create* and kms:Put*: under them an admin decrypts."""
    admin = f"arn:aws:iam::{ACCOUNT}:role/Administrator"
    everything = [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
    old = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": ["kms:Create*", "kms:Put*", "kms:Describe*"],
                "Resource": "*",
            }
        ]
    }
    decrypt = Request(admin, "kms:Decrypt", "*", VIA_SSM)
    assert evaluate_kms(decrypt, everything, old, ACCOUNT) == "implicit-deny"
    assert reachable_kms(decrypt, everything, old, ACCOUNT) == "allow"
    # The grant it would create, once created, allows Decrypt and nothing else.
    grant = KmsGrant(admin, ("kms:Decrypt",))
    assert evaluate_kms(decrypt, [], old, ACCOUNT, grants=[grant]) == "allow"
    encrypt = Request(admin, "kms:Encrypt", "*", VIA_SSM)
    assert evaluate_kms(encrypt, [], old, ACCOUNT, grants=[grant]) == "implicit-deny"


def test_an_explicit_deny_beats_a_grant() -> None:
    admin = f"arn:aws:iam::{ACCOUNT}:role/Administrator"
    deny = [{"Statement": [{"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}]}]
    grant = KmsGrant(admin, ("kms:Decrypt",))
    request = Request(admin, "kms:Decrypt", "*")
    assert evaluate_kms(request, deny, {"Statement": []}, ACCOUNT, [grant]) == "explicit-deny"


def test_the_deploy_role_writes_and_reads_the_stacks_secrets(hosts: dict[str, Host]) -> None:
    from infra.ci_roles import role_arn

    deployer = role_arn("deploy-prod", account=ACCOUNT)
    caller = f"arn:aws:iam::{ACCOUNT}:user/offline"  # ran the offline `up`: not named
    for action in ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"):
        request = Request(deployer, action, "*", VIA_SSM)
        assert evaluate_kms(request, [], hosts["prod"].key_policy, ACCOUNT) == "allow"
        assert evaluate_kms(request, [], hosts["staging"].key_policy, ACCOUNT) == "implicit-deny"
        other = Request(caller, action, "*", VIA_SSM)
        assert evaluate_kms(other, [], hosts["prod"].key_policy, ACCOUNT) == "implicit-deny"


@pytest.mark.parametrize("me", ["staging", "prod"])
def test_session_manager_still_works(hosts: dict[str, Host], me: str) -> None:
    host = hosts[me]
    instance = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"
    for action in (
        "ssm:UpdateInstanceInformation",
        "ssmmessages:CreateControlChannel",
        "ssmmessages:OpenDataChannel",
        "ec2messages:GetMessages",
    ):
        assert evaluate(Request(host.arn, action, instance), host.policies) == "allow"
    # The session documents it runs are not parameters; GetDocument is untouched by the Deny.
    document = f"arn:aws:ssm:us-east-1:{ACCOUNT}:document/AWS-StartPortForwardingSession"
    assert evaluate(Request(host.arn, "ssm:GetDocument", document), host.policies) == "allow"


@pytest.mark.parametrize(("me", "other"), [("staging", "prod"), ("prod", "staging")])
def test_a_host_reads_only_its_own_database_secret(
    hosts: dict[str, Host], me: str, other: str
) -> None:
    host = hosts[me]
    for action in ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"):
        assert evaluate(Request(host.arn, action, host.db_secret), host.policies) == "allow"
        theirs = hosts[other].db_secret
        assert evaluate(Request(host.arn, action, theirs), host.policies) == "implicit-deny"
    assert (
        evaluate(Request(host.arn, "secretsmanager:PutSecretValue", host.db_secret), host.policies)
        == "implicit-deny"
    )
    # Nor its own database's master secret: the API never connects as the master user.
    assert (
        evaluate(
            Request(host.arn, "secretsmanager:GetSecretValue", host.master_secret), host.policies
        )
        == "implicit-deny"
    )


# The evaluator itself, on AWS's documented rules.


def _st(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Allow", **fields}


def test_actions_match_case_insensitively_with_wildcards() -> None:
    request = Request("arn:aws:iam::1:role/r", "SSM:getParameter", "arn:x")
    assert statement_applies(_st(Action="ssm:Get*", Resource="*"), request, principal=None)
    assert statement_applies(_st(Action="ssm:GetParamete?", Resource="*"), request, principal=None)
    assert not statement_applies(
        _st(Action="ssm:GetParameters", Resource="*"), request, principal=None
    )
    assert not statement_applies(_st(NotAction="ssm:*", Resource="*"), request, principal=None)


def test_resources_match_case_sensitively() -> None:
    request = Request("p", "s3:GetObject", "arn:aws:s3:::Bucket/key")
    assert statement_applies(
        _st(Action="*", Resource="arn:aws:s3:::Bucket/*"), request, principal=None
    )
    assert not statement_applies(
        _st(Action="*", Resource="arn:aws:s3:::bucket/*"), request, principal=None
    )
    assert not statement_applies(
        _st(Action="*", NotResource="arn:aws:s3:::Bucket/*"), request, principal=None
    )


def test_an_explicit_deny_beats_any_allow() -> None:
    request = Request("p", "ssm:GetParameter", f"{SSM}/a")
    allow = {"Statement": [_st(Action="*", Resource="*")]}
    deny = {"Statement": {"Effect": "Deny", "Action": "ssm:*", "Resource": f"{SSM}/a"}}
    assert evaluate(request, [allow]) == "allow"
    assert evaluate(request, [allow, deny]) == "explicit-deny"
    assert evaluate(request, []) == "implicit-deny"


def test_conditions_need_their_key_in_the_context() -> None:
    statement = _st(Action="*", Resource="*", Condition={"StringEquals": VIA_SSM})
    assert statement_applies(statement, Request("p", "kms:Decrypt", "*", VIA_SSM), principal=None)
    other = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    assert not statement_applies(statement, Request("p", "kms:Decrypt", "*", other), principal=None)
    assert not statement_applies(statement, Request("p", "kms:Decrypt", "*"), principal=None)
    like = _st(Action="*", Resource="*", Condition={"StringLike": {"kms:ViaService": "ssm.*"}})
    assert statement_applies(like, Request("p", "kms:Decrypt", "*", VIA_SSM), principal=None)


def test_an_unmodelled_condition_operator_is_refused() -> None:
    statement = _st(Action="*", Resource="*", Condition={"IpAddress": {"aws:SourceIp": "1.2.3.4"}})
    with pytest.raises(ValueError, match="IpAddress is not modelled"):
        statement_applies(statement, Request("p", "kms:Decrypt", "*"), principal=None)


def test_a_resource_policy_must_name_the_principal() -> None:
    me, someone = "arn:aws:iam::1:role/me", "arn:aws:iam::1:role/someone"
    policy = {"Statement": [_st(Principal={"AWS": [someone]}, Action="*", Resource="*")]}
    assert evaluate(Request(me, "sqs:SendMessage", "arn:q"), [], policy) == "implicit-deny"
    assert evaluate(Request(someone, "sqs:SendMessage", "arn:q"), [], policy) == "allow"


def test_a_resource_policy_naming_everyone_allows_anyone() -> None:
    request = Request("arn:aws:iam::1:role/me", "sqs:SendMessage", "arn:q")
    for everyone in ("*", {"AWS": "*"}, {"AWS": ["arn:aws:iam::1:role/other", "*"]}):
        policy = {"Statement": [_st(Principal=everyone, Action="*", Resource="*")]}
        assert evaluate(request, [], policy) == "allow", everyone


def test_a_resource_policy_statement_naming_no_principal_grants_nobody() -> None:
    request = Request("arn:aws:iam::1:role/me", "sqs:SendMessage", "arn:q")
    nameless = {"Statement": [_st(Action="*", Resource="*")]}
    assert evaluate(request, [], nameless) == "implicit-deny"


def test_a_policy_without_statements_grants_nothing() -> None:
    request = Request("arn:aws:iam::1:role/me", "ssm:GetParameter", f"{SSM}/a")
    assert evaluate(request, [{"Version": "2012-10-17"}]) == "implicit-deny"


def test_actions_of_lists_what_a_policy_allows_or_denies_by_name() -> None:
    policy = {"Statement": [_st(Action="ssm:GetParameter", Resource="*"),
                            _st(Action=["kms:Decrypt", "kms:Encrypt"], Resource="*"),
                            _st(NotAction="iam:*", Resource="*")]}
    assert actions_of(policy) == {"ssm:GetParameter", "kms:Decrypt", "kms:Encrypt"}
    assert actions_of({"Statement": _st(Action="s3:*", Resource="*")}) == {"s3:*"}


# -- KMS: the key policy first -------------------------------------------------------------

ADMIN = f"arn:aws:iam::{ACCOUNT}:role/Administrator"
ALLOW_DECRYPT = [{"Statement": [_st(Action="kms:Decrypt", Resource="*")]}]


def _key_policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Statement": list(statements)}


def _to(principal: str, action: str = "kms:*", effect: str = "Allow") -> dict[str, Any]:
    return {"Effect": effect, "Principal": {"AWS": principal}, "Action": action, "Resource": "*"}


def test_a_key_policy_naming_the_account_by_its_id_delegates_like_its_root() -> None:
    decrypt = Request(ADMIN, "kms:Decrypt", "*")
    for account in (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root"):
        key_policy = _key_policy(_to(account))
        assert evaluate_kms(decrypt, ALLOW_DECRYPT, key_policy, ACCOUNT) == "allow", account
        assert evaluate_kms(decrypt, [], key_policy, ACCOUNT) == "implicit-deny", account


def test_a_key_policys_deny_of_the_principal_beats_the_accounts_delegation() -> None:
    decrypt = Request(ADMIN, "kms:Decrypt", "*")
    denied = _key_policy(_to(f"arn:aws:iam::{ACCOUNT}:root"),
                         _to(ADMIN, "kms:Decrypt", effect="Deny"))
    assert evaluate_kms(decrypt, ALLOW_DECRYPT, denied, ACCOUNT) == "explicit-deny"
    assert reachable_kms(decrypt, ALLOW_DECRYPT, denied, ACCOUNT) == "explicit-deny"


def test_what_the_account_delegates_is_reachable_without_a_lever() -> None:
    decrypt = Request(ADMIN, "kms:Decrypt", "*")
    delegated = _key_policy(_to(f"arn:aws:iam::{ACCOUNT}:root", "kms:Decrypt"))
    assert reachable_kms(decrypt, ALLOW_DECRYPT, delegated, ACCOUNT) == "allow"


def test_a_grant_is_reachable_as_it_stands_or_through_a_granted_lever() -> None:
    decrypt = Request(ADMIN, "kms:Decrypt", "*")
    nothing = _key_policy()
    assert reachable_kms(decrypt, [], nothing, ACCOUNT) == "implicit-deny"
    granted = [KmsGrant(ADMIN, ("kms:Decrypt",))]
    assert reachable_kms(decrypt, [], nothing, ACCOUNT, granted) == "allow"
    # A grant of CreateGrant lets its grantee grant itself Decrypt.
    lever = [KmsGrant(ADMIN, ("kms:CreateGrant",))]
    assert reachable_kms(decrypt, [], nothing, ACCOUNT, lever) == "allow"


def test_a_lever_counts_only_under_the_requests_own_conditions() -> None:
    # The usual key policy statement: grants may be created for AWS services' use only.
    via_rds = {"kms:ViaService": "rds.us-east-1.amazonaws.com"}
    key_policy = _key_policy({**_to(ADMIN, "kms:CreateGrant"),
                              "Condition": {"StringEquals": via_rds}})
    assert reachable_kms(Request(ADMIN, "kms:Decrypt", "*", via_rds), [], key_policy,
                         ACCOUNT) == "allow"
    assert reachable_kms(Request(ADMIN, "kms:Decrypt", "*", VIA_SSM), [], key_policy,
                         ACCOUNT) == "implicit-deny"
