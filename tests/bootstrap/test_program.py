"""bootstrap/: the account bootstrap under Pulumi's mocks (infra/offline.py), on its example
stack file. What it declares must be what infra/ci_roles.py generates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootstrap.program import ROLE_POLICY_LIMIT, main
from infra.ci_roles import (
    ROLES,
    STATE_KEY_USERS,
    Placeholders,
    policy_document,
    role_arn,
    state_key_policy,
    trust_policy,
)
from infra.errors import ConfigError
from infra.iam import Request, evaluate_kms, reachable_kms
from infra.offline import DELETE, OfflineRun, run_program

ROOT = Path(__file__).resolve().parents[2] / "bootstrap"
ACCOUNT = "123456789012"
ADMIN = "arn:aws:iam::123456789012:role/Admin"
REPO = "example-org/prism-infra"


def bootstrap(overrides=None) -> OfflineRun:
    return run_program(
        "example", project_dir=ROOT, program=main, overrides=overrides, preview=False
    )


@pytest.fixture(scope="module")
def account() -> OfflineRun:
    return bootstrap()


def _by_name(run: OfflineRun, type_: str) -> dict[str, dict]:
    return {r.name: r.inputs for r in run.of_type(type_)}


def test_github_oidc_provider(account: OfflineRun) -> None:
    provider = account.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").inputs
    assert provider["url"] == "https://token.actions.githubusercontent.com"
    assert provider["clientIdLists"] == ["sts.amazonaws.com"]


def test_one_role_per_job_with_the_generated_trust_and_policy(account: OfflineRun) -> None:
    roles = _by_name(account, "aws:iam/role:Role")
    policies = _by_name(account, "aws:iam/rolePolicy:RolePolicy")
    where = Placeholders(
        account=ACCOUNT, region="us-east-1", bucket=f"prism-pulumi-state-{ACCOUNT}"
    )
    assert set(roles) == {f"role-{r}" for r in ROLES}
    for role in ROLES:
        made = roles[f"role-{role}"]
        assert made["name"] == f"prism-{role}" and made["path"] == "/prism-ci/"
        assert json.loads(made["assumeRolePolicy"]) == trust_policy(
            role, repo=REPO, account=ACCOUNT
        )
        text = policies[f"role-{role}-policy"]["policy"]
        assert json.loads(text) == policy_document(role, where=where)
        assert len(text) <= ROLE_POLICY_LIMIT
    assert roles["role-drill"]["maxSessionDuration"] == 14400  # two drills and teardowns


def test_the_state_bucket_is_durable_private_and_tls_only(account: OfflineRun) -> None:
    bucket = account.one("aws:s3/bucket:Bucket")
    assert bucket.inputs["bucket"] == f"prism-pulumi-state-{ACCOUNT}" and bucket.protect
    [versioning] = _by_name(account, "aws:s3/bucketVersioning:BucketVersioning").values()
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    [sse] = _by_name(
        account,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    ).values()
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    [block] = _by_name(account, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").values()
    assert all(
        block[k] is True
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    [policy] = _by_name(account, "aws:s3/bucketPolicy:BucketPolicy").values()
    [deny] = json.loads(policy["policy"])["Statement"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [lifecycle] = _by_name(
        account, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    ).values()
    assert lifecycle["rules"][0]["noncurrentVersionExpiration"]["noncurrentDays"] == 90
    assert account.outputs["backendUrl"] == f"s3://prism-pulumi-state-{ACCOUNT}"


def test_one_secrets_key_per_stack_only_its_roles_decrypt(account: OfflineRun) -> None:
    keys = {r.name: r for r in account.of_type("aws:kms/key:Key")}
    aliases = {a["name"] for a in _by_name(account, "aws:kms/alias:Alias").values()}
    assert aliases == {f"alias/prism-state-{k}" for k in STATE_KEY_USERS}
    identity = {
        role: [json.loads(p["policy"])]
        for role, p in (
            (name.removeprefix("role-").removesuffix("-policy"), inputs)
            for name, inputs in _by_name(account, "aws:iam/rolePolicy:RolePolicy").items()
        )
    }
    for key in STATE_KEY_USERS:
        made = keys[f"secrets-{key}"]
        assert made.protect and made.inputs["enableKeyRotation"] is True
        policy = json.loads(made.inputs["policy"])
        assert policy == state_key_policy(key, partition="aws", account=ACCOUNT, admin_arn=ADMIN)
        arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key}"
        users = {
            role
            for role in ROLES
            if evaluate_kms(
                Request(role_arn(role, account=ACCOUNT), "kms:Decrypt", arn),
                identity[role],
                policy,
                ACCOUNT,
            )
            == "allow"
        }
        assert users == set(STATE_KEY_USERS[key]), key
        # The preview role (pull requests) reaches prod's key by no path.
        if key == "prod":
            preview = Request(role_arn("preview", account=ACCOUNT), "kms:Decrypt", arn)
            assert reachable_kms(preview, identity["preview"], policy, ACCOUNT) == "implicit-deny"
    assert set(account.outputs["secretsProviders"]) == set(STATE_KEY_USERS)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"prism-bootstrap:repo": DELETE}, "prism-bootstrap:repo"),
        ({"prism-bootstrap:repo": "not a repo"}, "prism-bootstrap:repo"),
        (
            {"prism-bootstrap:adminArn": "arn:aws:sts::123456789012:assumed-role/Admin/me"},
            "prism-bootstrap:adminArn",
        ),
        ({"prism-bootstrap:noncurrentVersionDays": 0}, "prism-bootstrap:noncurrentVersionDays"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(overrides, key) -> None:
    with pytest.raises(ConfigError) as info:
        bootstrap(overrides)
    assert str(info.value).startswith(key) and "\n" not in str(info.value)
