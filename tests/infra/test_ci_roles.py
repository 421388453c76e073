"""infra/ci_roles.py: each CI role's policy, generated from one table, linted by parliament and
evaluated by the project's evaluator (infra/iam.py) for what each role must never do."""

from __future__ import annotations

import json

import pytest

from infra.ci_roles import (
    COMMANDS,
    RESOURCE_TYPES,
    ROLES,
    is_mutating,
    policy_document,
    role_arn,
    state_key_policy,
    trust_policy,
    unlisted,
)
from infra.iam import Request, evaluate, evaluate_kms, reachable_kms
from infra.offline import OfflineRun
from tests.infra.iam_lint import findings

ACCOUNT = "123456789012"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/bootstrap-admin"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0b1c2d3e-0000-4000-8000-000000000000"
PARAM = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter"


def arn(role: str) -> str:
    return role_arn(role, account=ACCOUNT)


def allowed(role: str, action: str, resource: str, **context: str) -> str:
    return evaluate(Request(arn(role), action, resource, context), [policy_document(role)])


# --- the table covers the programs ---------------------------------------------------------------


def test_every_resource_type_the_stacks_declare_is_in_the_table(
    staging: OfflineRun, prod: OfflineRun
) -> None:
    declared = {r.type for run in (staging, prod) for r in run.resources if r.custom}
    assert unlisted(declared) == set()
    assert declared & set(RESOURCE_TYPES)  # the check is not vacuous


def test_a_new_resource_type_is_caught() -> None:
    assert unlisted({"aws:s3/bucket:Bucket", "cloudflare:index/record:Record"}) == {
        "aws:s3/bucket:Bucket"
    }


# --- parliament -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_parliament_finds_every_action_and_resource_valid(role: str) -> None:
    document = policy_document(role)
    by_sid = {st["Sid"]: st for st in document["Statement"]}
    for finding in findings(document):
        # Only one kind is accepted: "*" resources on reads, and on writes that a tag
        # condition scopes instead of an ARN (parliament does not weigh conditions).
        assert finding.issue == "RESOURCE_STAR", (finding.issue, finding.detail)
        for action in finding.detail:
            st = next(s for s in by_sid.values() if action in s["Action"] and "*" in s["Resource"])
            assert not is_mutating(action) or "Condition" in st, (role, action)


def test_parliament_rejects_a_misspelt_action_and_a_wrong_arn() -> None:
    bad = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "rds:DescribeDBInstancez", "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": "arn:aws:s3:::bucket/key",
            },
        ],
    }
    issues = {f.issue for f in findings(bad)}
    assert {"UNKNOWN_ACTION", "RESOURCE_MISMATCH"} <= issues


# --- what each role must never do (the project's evaluator) -----------------------------------


def test_preview_cannot_decrypt_prod(prod: OfflineRun) -> None:
    preview = [policy_document("preview")]
    decrypt = Request(arn("preview"), "kms:Decrypt", KEY)
    prod_state = state_key_policy("prod", partition="aws", account=ACCOUNT, admin_arn=ADMIN)
    staging_state = state_key_policy("staging", partition="aws", account=ACCOUNT, admin_arn=ADMIN)
    assert reachable_kms(decrypt, preview, prod_state, ACCOUNT) == "implicit-deny"
    assert evaluate_kms(decrypt, preview, staging_state, ACCOUNT) == "allow"
    # Nor prod's runtime secrets (the stack's own key, infra/secrets.py).
    runtime = json.loads(prod.one("aws:kms/key:Key", "runtime-secrets-key").inputs["policy"])
    via_ssm = Request(arn("preview"), "kms:Decrypt", KEY, {"kms:ViaService": "ssm.us-east-1"})
    assert reachable_kms(via_ssm, preview, runtime, ACCOUNT) == "implicit-deny"


def test_only_the_deploy_role_decrypts_its_state_key() -> None:
    for key in ("staging", "prod", "drill"):
        policy = state_key_policy(key, partition="aws", account=ACCOUNT, admin_arn=ADMIN)
        users = {
            r
            for r in ROLES
            if evaluate_kms(
                Request(arn(r), "kms:Decrypt", KEY), [policy_document(r)], policy, ACCOUNT
            )
            == "allow"
        }
        expected = {"staging": {"deploy-staging", "preview"}, "prod": {"deploy-prod"}}
        assert users == expected.get(key, {"drill"}), key
        # The admin who applies the bootstrap manages the key but does not use it (it could
        # rewrite the policy: the one lever left, logged by CloudTrail); any other admin of
        # the account, allowed everything by IAM, can neither use it nor hand it out.
        god = [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
        decrypt = Request(ADMIN, "kms:Decrypt", KEY)
        assert evaluate_kms(decrypt, god, policy, ACCOUNT) == "implicit-deny"
        other = Request(f"arn:aws:iam::{ACCOUNT}:role/Administrator", "kms:Decrypt", KEY)
        assert reachable_kms(other, god, policy, ACCOUNT) == "implicit-deny"


@pytest.mark.parametrize("action", ["ssm:GetParameter", "ssm:GetParameters"])
def test_the_drill_reads_its_own_values_and_nothing_of_prods(action: str) -> None:
    assert allowed("drill", action, f"{PARAM}/prism/prod/api/CLERK_SECRET_KEY") == "implicit-deny"
    assert allowed("drill", action, f"{PARAM}/prism/prod/registry/password") == "implicit-deny"
    assert allowed("drill", action, f"{PARAM}/prism/drill/api/CLERK_SECRET_KEY") == "allow"


def test_audit_has_no_mutating_action() -> None:
    actions = {a for st in policy_document("audit")["Statement"] for a in st["Action"]}
    assert actions and not [a for a in actions if is_mutating(a)]
    assert is_mutating("rds:DeleteDBSnapshot") and is_mutating("rds:AddTagsToResource")
    snapshot = f"arn:aws:rds:us-east-1:{ACCOUNT}:snapshot:prism-prod-premig-x-1"
    assert allowed("audit", "rds:CreateDBSnapshot", snapshot) == "implicit-deny"
    assert allowed("deploy-prod", "rds:CreateDBSnapshot", snapshot) == "allow"


def test_deploy_staging_cannot_touch_what_prod_owns() -> None:
    changes = next(
        st
        for st in policy_document("deploy-staging")["Statement"]
        if st["Sid"] == "ProgramChangesOwn"
    )
    instance = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"
    for action in changes["Action"]:
        prod_owned = allowed(
            "deploy-staging", action, instance, **{"aws:ResourceTag/prism:stack": "prod"}
        )
        own = allowed(
            "deploy-staging", action, instance, **{"aws:ResourceTag/prism:stack": "staging"}
        )
        assert (prod_owned, own) == ("implicit-deny", "allow"), action
    # Creating needs the stack's own tag on the request.
    create = ("ec2:RunInstances", instance)
    assert allowed("deploy-staging", *create, **{"aws:RequestTag/prism:stack": "prod"}) == (
        "implicit-deny"
    )
    assert (
        allowed("deploy-staging", *create, **{"aws:RequestTag/prism:stack": "staging"}) == "allow"
    )
    # Prod's parameters are named, not tagged: out of reach by ARN.
    put = ("ssm:PutParameter", f"{PARAM}/prism/prod/api/REDIS_URL")
    assert allowed("deploy-staging", *put) == "implicit-deny"
    assert allowed("deploy-prod", *put) == "allow"


def test_only_the_prune_role_deletes_and_only_pre_migration_snapshots() -> None:
    premig = f"arn:aws:rds:us-east-1:{ACCOUNT}:snapshot:prism-prod-premig-0042-20261201"
    automated = f"arn:aws:rds:us-east-1:{ACCOUNT}:snapshot:rds:prism-prod-2026-12-01-03-00"
    assert allowed("prune", "rds:DeleteDBSnapshot", premig) == "allow"
    assert allowed("prune", "rds:DeleteDBSnapshot", automated) == "implicit-deny"
    for role in ("audit", "deploy-prod", "preview"):
        assert allowed(role, "rds:DeleteDBSnapshot", premig) == "implicit-deny", role


def test_the_reaper_deletes_only_drill_tagged_resources() -> None:
    db = f"arn:aws:rds:us-east-1:{ACCOUNT}:db:prism-prod"
    assert allowed("drill", "rds:DeleteDBInstance", db) == "implicit-deny"
    tagged = allowed("drill", "rds:DeleteDBInstance", db, **{"aws:ResourceTag/prism:drill": "x"})
    assert tagged == "allow"


def test_each_role_trusts_only_its_jobs_subject() -> None:
    subjects = {
        r: trust_policy(r, repo="prism/prism-infra", account=ACCOUNT)["Statement"][0]["Condition"][
            "StringEquals"
        ]["token.actions.githubusercontent.com:sub"]
        for r in ROLES
    }
    assert subjects == {
        "preview": "repo:prism/prism-infra:environment:preview",
        "deploy-staging": "repo:prism/prism-infra:environment:staging",
        "deploy-prod": "repo:prism/prism-infra:environment:production",
        "drill": "repo:prism/prism-infra:environment:drill",
        "audit": "repo:prism/prism-infra:ref:refs/heads/main",
        "prune": "repo:prism/prism-infra:environment:prune",
    }
    assert len(set(subjects.values())) == len(ROLES)


def test_every_command_of_the_table_is_used_by_a_role() -> None:
    from infra.ci_roles import ROLE_TABLE

    used = {c for spec in ROLE_TABLE.values() for c in spec.commands}
    assert used == set(COMMANDS)


def test_the_drill_reads_its_own_application_secret_and_never_prods() -> None:
    base = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prism"
    own = f"{base}/drill-20261202-010000/database/app-20261202010000000001-AbCdEf"
    prods = f"{base}/prod/database/app-20261101000000000001-AbCdEf"
    read = "secretsmanager:GetSecretValue"
    tag = {"aws:ResourceTag/prism:stack": "drill-20261202-010000"}
    assert allowed("drill", read, own, **tag) == "allow"
    assert allowed("drill", read, own, **{"aws:ResourceTag/prism:stack": "drill-x"}) == "allow"
    assert allowed("drill", read, prods, **{"aws:ResourceTag/prism:stack": "prod"}) == (
        "implicit-deny"
    )
    # Named like a drill's but tagged as prod's (a renamed or copied secret): still refused.
    assert allowed("drill", read, own, **{"aws:ResourceTag/prism:stack": "prod"}) == (
        "implicit-deny"
    )


def test_the_reaper_deletes_only_drill_tagged_secrets() -> None:
    arn = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prism/prod/database/app-1-AbCdEf"
    assert allowed("drill", "secretsmanager:DeleteSecret", arn) == "implicit-deny"
    tagged = {"aws:ResourceTag/prism:drill": "20261202-010000"}
    assert allowed("drill", "secretsmanager:DeleteSecret", arn, **tagged) == "allow"


def test_a_recovery_reads_its_own_secrets_and_never_prods_application_secret() -> None:
    base = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:"
    read = "secretsmanager:GetSecretValue"
    recovery = {"aws:ResourceTag/prism:stack": "recovery-t1"}
    master = base + "rds!db-0a1b2c3d-AbCdEf"
    app = base + "prism/recovery-t1/database/app-1-AbCdEf"
    assert allowed("deploy-prod", read, master, **recovery) == "allow"
    assert allowed("deploy-prod", read, app, **recovery) == "allow"
    # Only recovery instances' secrets: another stack's master secret stays out of reach.
    staging = {"aws:ResourceTag/prism:stack": "staging"}
    assert allowed("deploy-prod", read, master, **staging) == "implicit-deny"
    instance = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"
    assert allowed("deploy-prod", "ssm:StartSession", instance) == "allow"
