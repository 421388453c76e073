"""Each CI job's commands, run as its role against a moto server with IAM enforcement on.

The roles are created from the generated documents and assumed the way CI does
(AssumeRoleWithWebIdentity; moto lets that one unsigned request through, then checks every
request). moto checks actions only: it matches a request's resource as "*" for most services
and cannot see most condition keys (moto/iam/access_control.py), so the documents given to
it keep their actions and drop their ARNs and conditions; the scoping is checked by the
evaluator (test_ci_roles.py). moto also names the Resource Groups Tagging API's actions
`tagging:*` where AWS says `tag:*` (both are granted here)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from infra.ci_roles import Placeholders, policy_document, role_arn, role_name, trust_policy
from tests.aws.conftest import moto, moto_session  # noqa: F401  (fixtures)
from tests.drills.aws.conftest import make_prod, make_project
from tests.fakes.engine import FakeStackEngine
from tests.runbook.cli import run

ACCOUNT = "123456789012"  # moto's default account


def actions_only(document: dict[str, Any]) -> dict[str, Any]:
    """What moto can check of a document: its actions (on "*", without conditions)."""
    actions = {a for st in document["Statement"] for a in st["Action"]}
    actions |= {"tagging:" + a.split(":", 1)[1] for a in actions if a.startswith("tag:")}
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": sorted(actions), "Resource": "*"}],
    }


@pytest.fixture
def ci(moto, tmp_path, monkeypatch):  # noqa: F811
    make_prod()
    project = make_project(tmp_path)
    iam = boto3.client("iam")
    where = Placeholders(account=ACCOUNT, region="us-east-1")
    for role in ("audit", "deploy-prod", "drill", "prune"):
        iam.create_role(
            RoleName=role_name(role),
            Path="/prism-ci/",
            AssumeRolePolicyDocument=json.dumps(
                trust_policy(role, repo="prism/prism-infra", account=ACCOUNT)
            ),
        )
        iam.put_role_policy(
            RoleName=role_name(role),
            PolicyName="generated",
            PolicyDocument=json.dumps(actions_only(policy_document(role, where=where))),
        )

    def assume(role: str) -> None:
        moto.enforce_iam(1)  # the next request (STS, unsigned as from GitHub) goes through
        credentials = boto3.client("sts").assume_role_with_web_identity(
            RoleArn=role_arn(role, account=ACCOUNT),
            RoleSessionName="github-actions",
            WebIdentityToken="a-github-oidc-token",
        )["Credentials"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
        monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])

    yield assume, project
    moto.enforce_iam(float("inf"))  # the shared server serves the next tests unchecked


def _no_denial(result) -> None:
    assert "not authorized" not in result.err and "AccessDenied" not in result.err, result.err


def test_audit_runs_as_the_audit_role(ci, capsys, tmp_path) -> None:
    assume, project = ci
    assume("audit")
    result = run(
        capsys,
        "audit",
        "--stack",
        "prod",
        "--project-dir",
        str(project),
        "--record-dir",
        str(tmp_path / "records"),
        "--json",
    )
    _no_denial(result)
    assert result.code in (0, 1)  # judged (no drill record yet: a failed check), not refused
    assert json.loads(result.out)["checks"]


def test_snapshot_create_runs_as_deploy_prod(ci, capsys, tmp_path) -> None:
    assume, project = ci
    assume("deploy-prod")
    result = run(
        capsys,
        "snapshot",
        "create",
        "--stack",
        "prod",
        "--project-dir",
        str(project),
        "--migration",
        "0042_add_index",
        "--record-dir",
        str(tmp_path / "snap"),
        "--json",
    )
    _no_denial(result)
    assert result.code == 0, result.err


def test_snapshot_prune_runs_as_the_prune_role(ci, capsys, tmp_path) -> None:
    assume, project = ci
    assume("prune")
    result = run(
        capsys,
        "snapshot",
        "prune",
        "--stack",
        "prod",
        "--project-dir",
        str(project),
        "--yes",
        "--json",
    )
    _no_denial(result)
    assert result.code == 0, result.err


def test_drill_dry_run_and_reap_run_as_the_drill_role(ci, capsys, monkeypatch) -> None:
    from drills.aws import reaper

    assume, project = ci
    assume("drill")
    result = run(capsys, "drill", "--stack", "prod", "--project-dir", str(project), "--dry-run")
    _no_denial(result)
    assert result.code == 0, result.err
    monkeypatch.setattr(reaper, "make_engine", FakeStackEngine)
    result = run(capsys, "drill", "reap", "--region", "us-east-1", "--json")
    _no_denial(result)
    assert result.code == 0, result.err


def test_snapshot_create_as_the_audit_role_is_one_line_naming_action_and_role(
    ci, capsys, tmp_path
) -> None:
    assume, project = ci
    assume("audit")
    result = run(
        capsys,
        "snapshot",
        "create",
        "--stack",
        "prod",
        "--project-dir",
        str(project),
        "--migration",
        "0042_add_index",
        "--record-dir",
        str(tmp_path / "snap"),
    )
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert "rds:CreateDBSnapshot" in line and "assumed-role/prism-audit/" in line
    assert not (tmp_path / "snap").exists() or not any((tmp_path / "snap").iterdir())
