"""runbook/doctor.py and `prism-dr doctor`, against moto (an account as the bootstrap leaves it),
a stand-in for the IAM simulator moto lacks, and a local stand-in for Cloudflare's verify."""

from __future__ import annotations

import json
from importlib import metadata

import boto3
import pytest

from infra.ci_roles import Placeholders, policy_document, role_name
from recovery.aws import client
from recovery.cloudflare import CloudflareApi
from runbook import doctor as doctor_module
from runbook.doctor import Doctor
from tests.aws.conftest import moto, moto_session  # noqa: F401  (fixtures)
from tests.drills.aws.conftest import make_prod
from tests.fakes.cloudflare_verify import cloudflare_verify
from tests.fakes.iam_simulator import simulator
from tests.runbook.cli import run

ACCOUNT = "123456789012"
BUCKET = f"prism-pulumi-state-{ACCOUNT}"
TOKEN = "cf-token-not-real-0123456789"
PINNED = metadata.version("pulumi")
TOOLS = {"aws": "/usr/bin/aws", "session-manager-plugin": "/usr/bin/smp", "pulumi": "/bin/pulumi"}


@pytest.fixture
def bootstrapped(moto):  # noqa: F811
    """What bootstrap/ leaves in an account, plus prod and the drill's parameters."""
    make_prod()
    iam = boto3.client("iam")
    iam.create_open_id_connect_provider(
        Url="https://token.actions.githubusercontent.com",
        ClientIDList=["sts.amazonaws.com"],
        ThumbprintList=["6938fd4d98bab03faadb97b34396831e3780aea1"],
    )
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    kms = boto3.client("kms")
    key = kms.create_key(Description="drill secrets")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/prism-state-drill", TargetKeyId=key)
    where = Placeholders(account=ACCOUNT, region="us-east-1", bucket=BUCKET)
    iam.create_role(RoleName=role_name("drill"), Path="/prism-ci/", AssumeRolePolicyDocument="{}")
    iam.put_role_policy(
        RoleName=role_name("drill"),
        PolicyName="generated",
        PolicyDocument=json.dumps(policy_document("drill", where=where)),
    )
    return moto


@pytest.fixture
def cloudflare():
    with cloudflare_verify({TOKEN: "active", "old-token-0123456789": "expired"}) as base:
        yield base


def make_doctor(cloudflare_base: str, **env: str) -> Doctor:
    environ = {"PULUMI_BACKEND_URL": f"s3://{BUCKET}", "CLOUDFLARE_API_TOKEN": TOKEN, **env}
    return Doctor(
        region="us-east-1",
        environ=environ,
        clients=client,
        simulate=simulator(),
        verify_cloudflare=lambda t: CloudflareApi(token=t, base_url=cloudflare_base).verify_token(),
        which=TOOLS.get,
        pulumi_version=lambda path: PINNED,
    )


def _by_name(checks) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.detail + " " + c.fix) for c in checks}


def test_a_bootstrapped_account_passes_every_check_for_the_drill(bootstrapped, cloudflare):
    checks = _by_name(make_doctor(cloudflare).run(stack=None, role="drill"))
    assert {name: status for name, (status, _) in checks.items()} == {
        "caller": "pass",
        "oidc provider": "pass",
        "state backend": "pass",
        "secrets key": "pass",
        "role permissions": "pass",
        "runtime parameters": "pass",
        "port forward tools": "pass",
        "cloudflare token": "pass",
        "pulumi cli": "pass",
    }
    assert "sk_test_" not in json.dumps(checks)  # parameters are read, never shown


def test_each_missing_piece_fails_its_check_with_the_fix(bootstrapped, cloudflare):
    boto3.client("s3").put_bucket_versioning(
        Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"}
    )
    iam = boto3.client("iam")
    [provider] = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=provider["Arn"])
    boto3.client("ssm").delete_parameter(Name="/prism/drill/api/CLERK_PUBLISHABLE_KEY")
    document = policy_document("drill", where=Placeholders(account=ACCOUNT, region="us-east-1"))
    for st in document["Statement"]:
        st["Action"] = [a for a in st["Action"] if a != "rds:DescribeDBSnapshots"]
    iam.put_role_policy(
        RoleName=role_name("drill"), PolicyName="generated", PolicyDocument=json.dumps(document)
    )
    doctor = make_doctor(cloudflare, CLOUDFLARE_API_TOKEN="old-token-0123456789")
    doctor.which = {"aws": "/usr/bin/aws", "pulumi": "/bin/pulumi"}.get
    doctor.pulumi_version = lambda path: "3.100.0"
    checks = _by_name(doctor.run(stack=None, role="drill"))
    expected = {
        "oidc provider": "cd bootstrap && pulumi up",
        "state backend": "put-bucket-versioning",
        "role permissions": "rds:DescribeDBSnapshots",
        "runtime parameters": "/prism/drill/api/CLERK_PUBLISHABLE_KEY",
        "port forward tools": "session-manager-plugin",
        "cloudflare token": "expired",
        "pulumi cli": f"the lock pins {PINNED}",
    }
    for name, says in expected.items():
        status, text = checks[name]
        assert status == "fail" and says in text, (name, text)
    assert checks["caller"][0] == "pass" and checks["secrets key"][0] == "pass"


def test_a_directory_backend_and_a_missing_key_fail(bootstrapped, cloudflare):
    doctor = make_doctor(cloudflare, PULUMI_BACKEND_URL="file:///root/.pulumi-prism")
    checks = _by_name(doctor.run(stack="prod", role=None))
    assert (
        checks["state backend"][0] == "fail" and "PULUMI_BACKEND_URL" in checks["state backend"][1]
    )
    assert (
        checks["secrets key"][0] == "fail" and "alias/prism-state-prod" in checks["secrets key"][1]
    )
    assert checks["role permissions"][0] == "skip"


def test_without_credentials_the_aws_checks_are_skipped_not_crashed(cloudflare, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    checks = _by_name(make_doctor(cloudflare).run(stack="prod", role="audit"))
    assert checks["caller"][0] == "fail"
    assert {checks[n][0] for n in ("oidc provider", "state backend", "role permissions")} == {
        "skip"
    }
    # The audit job runs neither Pulumi nor a tunnel: those are skipped, not failed.
    assert checks["pulumi cli"][0] == checks["cloudflare token"][0] == "skip"


def test_the_command_prints_json_and_exits_1_on_a_failed_check(
    bootstrapped, cloudflare, capsys, monkeypatch
):
    monkeypatch.setattr(
        doctor_module,
        "_verify_with_cloudflare",
        lambda t: CloudflareApi(token=t, base_url=cloudflare).verify_token(),
    )
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"s3://{BUCKET}")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    result = run(capsys, "doctor", "--stack", "staging", "--json")
    checks = {c["name"]: c["status"] for c in json.loads(result.out)}
    assert checks["caller"] == checks["oidc provider"] == checks["state backend"] == "pass"
    assert checks["secrets key"] == "fail"  # the bootstrap made only the drill key here
    assert result.code == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [(("--role", "root"), "--role 'root'"), (("--stack", "Prod!"), "--stack 'Prod!'")],
)
def test_bad_input_is_one_line_and_exit_2(bootstrapped, capsys, args, says):
    result = run(capsys, "doctor", *args)
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert says in line
