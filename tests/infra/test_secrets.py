"""infra/secrets.py: runtime secrets under /prism/<stack>/, and what DATABASE_URL is built from."""

from __future__ import annotations

import json

from infra.offline import OfflineRun, Secret
from tests.infra.conftest import FAKE_SECRETS

PARAM = "aws:ssm/parameter:Parameter"


def _params(run: OfflineRun) -> dict[str, dict]:
    return {p.inputs["name"]: p.inputs for p in run.of_type(PARAM)}


def test_config_secrets_become_securestrings(each_stack: OfflineRun) -> None:
    params = _params(each_stack)
    prefix = f"/prism/{each_stack.stack}/api"
    expected = {
        f"{prefix}/CLERK_SECRET_KEY": FAKE_SECRETS["prism-infra:clerkSecretKey"],
        f"{prefix}/CLERK_PUBLISHABLE_KEY": FAKE_SECRETS["prism-infra:clerkPublishableKey"],
        f"{prefix}/REDIS_URL": FAKE_SECRETS["prism-infra:redisUrl"],
    }
    for name, value in expected.items():
        assert params[name]["type"] == "SecureString"
        assert params[name]["value"] == Secret(value)


def test_database_url_parts_point_at_the_instance(each_stack: OfflineRun) -> None:
    params = _params(each_stack)
    db = each_stack.one("aws:rds/instance:Instance")
    base = f"/prism/{each_stack.stack}/database"
    assert params[f"{base}/host"]["insecureValue"] == db.outputs["address"]
    assert params[f"{base}/port"]["insecureValue"] == "5432"
    assert params[f"{base}/name"]["insecureValue"] == "prism"
    # The API's application role, never the master user.
    assert params[f"{base}/secret-arn"]["insecureValue"] == each_stack.outputs["dbAppSecretArn"]
    for part in ("host", "port", "name", "secret-arn"):
        assert params[f"{base}/{part}"]["type"] == "String"  # none of these is a secret
        assert "value" not in params[f"{base}/{part}"]


def test_the_app_role_secret_is_on_the_stacks_key(each_stack: OfflineRun) -> None:
    key = each_stack.one("aws:kms/key:Key", "runtime-secrets-key")
    secret = each_stack.one("aws:secretsmanager/secret:Secret", "runtime-secrets-app-secret")
    # A prefix: Secrets Manager keeps a deleted secret's name through its recovery window, so a
    # stack rebuilt within it needs a name of its own.
    assert secret.inputs["namePrefix"] == f"prism/{each_stack.stack}/database/app-"
    assert "name" not in secret.inputs
    assert secret.inputs["kmsKeyId"] == key.outputs["arn"]
    assert each_stack.outputs["dbAppSecretArn"] == secret.outputs["arn"]
    assert each_stack.outputs["dbAppRole"] == "prism_api"
    version = each_stack.one(
        "aws:secretsmanager/secretVersion:SecretVersion", "runtime-secrets-app-secret-value"
    )
    # The password is generated, kept secret in the state, and never in an input in clear.
    value = version.inputs["secretString"]
    assert isinstance(value, Secret)
    body = json.loads(value.value)
    assert body["username"] == "prism_api" and len(body["password"]) == 40
    password = each_stack.one("random:index/randomPassword:RandomPassword")
    assert password.inputs["special"] is False


def test_the_master_secret_is_on_the_stacks_key(each_stack: OfflineRun) -> None:
    key = each_stack.one("aws:kms/key:Key", "runtime-secrets-key")
    instance = each_stack.one("aws:rds/instance:Instance")
    assert instance.inputs["manageMasterUserPassword"] is True
    assert instance.inputs["masterUserSecretKmsKeyId"] == key.outputs["arn"]


def test_no_database_password_is_stored_anywhere(each_stack: OfflineRun) -> None:
    names = _params(each_stack)
    assert not any("DATABASE_URL" in n or "password" in n.lower() for n in names)


def test_every_parameter_lives_under_the_stack_prefix(each_stack: OfflineRun) -> None:
    assert all(n.startswith(f"/prism/{each_stack.stack}/") for n in _params(each_stack))


def test_secure_strings_use_the_stacks_own_key(each_stack: OfflineRun) -> None:
    key = each_stack.one("aws:kms/key:Key", "runtime-secrets-key")
    secure = [p for p in each_stack.of_type(PARAM) if p.inputs["type"] == "SecureString"]
    assert len(secure) == 4  # three runtime secrets and the tunnel token
    assert {p.inputs["keyId"] for p in secure} == {key.outputs["arn"]}
    assert key.inputs["enableKeyRotation"] is True
    expected_window = 30 if each_stack.stack == "prod" else 7
    assert key.inputs["deletionWindowInDays"] == expected_window
    alias = each_stack.one("aws:kms/alias:Alias", "runtime-secrets-key-alias")
    assert alias.inputs["name"] == f"alias/prism-{each_stack.stack}-secrets"


def _statements(run: OfflineRun) -> dict[str, dict]:
    key = run.one("aws:kms/key:Key", "runtime-secrets-key")
    return {st["Sid"]: st for st in json.loads(key.inputs["policy"])["Statement"]}


def test_key_policy_names_the_host_role_and_the_stacks_deploy_role_only(
    each_stack: OfflineRun,
) -> None:
    by_sid = _statements(each_stack)
    assert set(by_sid) == {
        "AccountReadsKeyOnly",
        "DeployRoleAdministersKey",
        "DeployRoleUsesKey",
        "HostDecryptsThroughSsm",
    }
    # The deploy role of the stack's environment (infra/ci_roles.py), not the caller (the
    # offline caller is arn:aws:iam::123456789012:user/offline).
    deployer = {"AWS": f"arn:aws:iam::123456789012:role/prism-ci/prism-deploy-{each_stack.stack}"}
    assert by_sid["DeployRoleUsesKey"]["Principal"] == deployer
    assert by_sid["DeployRoleAdministersKey"]["Principal"] == deployer
    host = by_sid["HostDecryptsThroughSsm"]
    assert host["Principal"] == {"AWS": each_stack.one("aws:iam/role:Role").outputs["arn"]}
    assert host["Action"] == "kms:Decrypt"
    # Through SSM (its parameters) and Secrets Manager (the database secrets on this key) only.
    assert host["Condition"] == {
        "StringEquals": {
            "kms:ViaService": [
                "ssm.us-east-1.amazonaws.com",
                "secretsmanager.us-east-1.amazonaws.com",
            ]
        }
    }


def test_the_account_neither_uses_the_key_nor_hands_it_out(each_stack: OfflineRun) -> None:
    root = _statements(each_stack)["AccountReadsKeyOnly"]
    assert root["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    handing_out = ("kms:CreateGrant", "kms:PutKeyPolicy", "kms:Decrypt", "kms:Encrypt")
    from infra.iam import _action_matches

    assert not [a for a in handing_out if _action_matches(root["Action"], a)]
    # Nor does the deploy role create grants: SSM uses the key directly.
    deploy = _statements(each_stack)["DeployRoleAdministersKey"]["Action"]
    assert not _action_matches(deploy, "kms:CreateGrant")


def test_configured_deploy_roles_replace_the_tables() -> None:
    from tests.infra.conftest import run_stack

    arns = ["arn:aws:iam::123456789012:role/ops/deployer", "arn:aws:iam::123456789012:role/b"]
    run = run_stack("staging", {"prism-infra:deployRoleArns": arns})
    assert _statements(run)["DeployRoleUsesKey"]["Principal"] == {"AWS": arns}


def test_a_session_arn_is_refused_as_a_deploy_role() -> None:
    from tests.infra.conftest import config_error

    session = "arn:aws:sts::123456789012:assumed-role/deployer/ci-run-42"
    message = config_error("staging", {"prism-infra:deployRoleArns": [session]})
    assert message.startswith("prism-infra:deployRoleArns must hold IAM role ARNs")


def test_runtime_secrets_attach_nothing_to_the_host_role(each_stack: OfflineRun) -> None:
    component = next(r for r in each_stack.resources if r.type == "prism:infra:RuntimeSecrets")
    children = [r for r in each_stack.resources if r.parent == component.urn]
    assert children and not [r for r in children if r.type.startswith("aws:iam/")]
