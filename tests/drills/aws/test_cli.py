"""`prism-dr drill --stack …` through the real entry point, against moto: bad input is one
line and exit 2 with nothing created; --dry-run creates nothing; a real drill runs through
the fake engine and records."""

from __future__ import annotations

import json

import pytest

from prism_dr import aws_drill_cmd
from tests.drills.aws.conftest import SECRETS, ZONE
from tests.drills.aws.runner_support import StandinStack, access_for, http_url
from tests.fakes.cloud import MotoCloud
from tests.fakes.engine import FakeStackEngine
from tests.runbook.cli import run


class NoEngine:
    def __getattr__(self, name):
        raise AssertionError(f"the engine was used ({name}) although nothing may be created")


@pytest.fixture
def no_engine(monkeypatch):
    monkeypatch.setattr(aws_drill_cmd, "make_engine", NoEngine)


def drill(capsys, project, *extra):
    return run(capsys, "drill", "--stack", "prod", "--project-dir", str(project), *extra)


def _instances(account):
    return sorted(
        i["DBInstanceIdentifier"] for i in account.rds.describe_db_instances()["DBInstances"]
    )


def test_dry_run_lists_resources_ttl_and_cost_and_creates_nothing(
    account, project, capsys, no_engine
):
    result = drill(capsys, project, "--dry-run", "--json", "--ttl", "3h")
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    types = {r["type"] for r in payload["resources"]}
    assert "aws:rds/instance:Instance" in types and "aws:ec2/instance:Instance" in types
    assert payload["stack"].startswith("drill-")
    assert payload["cost_estimate"].startswith("$")
    assert payload["plan"]["expires"].endswith("(TTL 3 h)")
    assert _instances(account) == ["prism-prod"]


def test_dry_run_as_a_table(account, project, capsys, no_engine):
    result = drill(capsys, project, "--dry-run")
    assert result.code == 0, result.err
    assert "resources the drill would create" in result.out
    assert "dry run: nothing was created" in result.out


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--point", "2020-01-01T00:00:00Z"), "outside the restorable window"),
        (("--db-instance", "prism-gone"), "DB instance prism-gone does not exist"),
        (("--point", "snapshot:nope"), "snapshot nope does not exist"),
        (("--region", "us-west-2"), "us-west-2"),
        (("--ttl", "forever"), "--ttl"),
        (("--region", "mars-1"), "not an AWS region"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_created(
    account, project, capsys, no_engine, extra, says
):
    result = drill(capsys, project, *extra)
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prism-dr: error:")
    assert says in lines[0]
    assert "Traceback" not in result.err
    assert _instances(account) == ["prism-prod"]


def test_the_committed_example_values_are_refused_for_a_real_drill(account, capsys, no_engine):
    from infra.offline import PROJECT_DIR

    result = drill(capsys, PROJECT_DIR)
    assert result.code == 2
    assert "example value" in result.err


def test_missing_drill_values_are_refused_before_anything_is_created(
    account, project, capsys, no_engine
):
    import boto3

    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.delete_parameter(Name="/prism/drill/api/CLERK_SECRET_KEY")
    result = drill(capsys, project, "--direct")
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert "/prism/drill/api/CLERK_SECRET_KEY" in line and "PRISM_DRILL_CLERK_SECRET_KEY" in line
    assert _instances(account) == ["prism-prod"]


def test_the_drill_needs_nothing_of_prods_runtime_values(account, project, capsys, no_engine):
    import boto3

    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.delete_parameters(Names=[f"/prism/prod/api/{env}" for env in SECRETS])
    result = drill(capsys, project, "--dry-run", "--json")
    assert result.code == 0, result.err
    sources = {v["env"]: v["source"] for v in json.loads(result.out)["runtime_values"]}
    assert sources == {
        "CLERK_SECRET_KEY": "SSM /prism/drill/api/CLERK_SECRET_KEY",
        "CLERK_PUBLISHABLE_KEY": "SSM /prism/drill/api/CLERK_PUBLISHABLE_KEY",
        "REDIS_URL": "not set (/prism/drill/api/REDIS_URL absent): the API runs without Redis",
    }
    assert "sk_test_" not in result.out  # sources only, never values


def test_the_dry_run_table_lists_each_runtime_value_and_its_source(
    account, project, capsys, no_engine, monkeypatch
):
    import boto3

    boto3.client("ssm", region_name="us-east-1").delete_parameter(
        Name="/prism/drill/api/CLERK_PUBLISHABLE_KEY"
    )
    monkeypatch.setenv("PRISM_DRILL_CLERK_PUBLISHABLE_KEY", "pk_test_from0the0environment")
    result = drill(capsys, project, "--dry-run")
    assert result.code == 0, result.err
    assert "$PRISM_DRILL_CLERK_PUBLISHABLE_KEY" in result.out
    assert "/prism/drill/api/CLERK_SECRET_KEY" in result.out
    assert "pk_test_from0the0environment" not in result.out


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CLERK_SECRET_KEY", "sk_live_prod0key0by0mistake", "Clerk production key"),
        ("REDIS_URL", "redis://cache.internal:6379", "prism-infra:drill.redisEgressCidr"),
    ],
)
def test_prod_like_drill_values_are_refused(account, project, capsys, no_engine, name, value, says):
    import boto3

    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=f"/prism/drill/api/{name}", Value=value, Type="SecureString", Overwrite=True
    )
    result = drill(capsys, project, "--dry-run")
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert says in line and value not in line


def test_in_ci_the_drill_refuses_a_directory_backend(
    account, project, capsys, no_engine, monkeypatch
):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    result = drill(capsys, project, "--direct")
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert "which CI must not leave state in" in line and "--local-state" in line
    assert _instances(account) == ["prism-prod"]
    # Asked for, the directory is accepted: the drill goes on to its next check.
    monkeypatch.setenv("PATH", "/nonexistent")
    result = drill(capsys, project, "--local-state")
    assert result.code == 2 and "session-manager-plugin" in result.err


def test_the_port_forward_needs_its_tools(account, project, capsys, no_engine, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = drill(capsys, project)
    assert result.code == 2
    assert "session-manager-plugin" in result.err and "--direct" in result.err


def test_stack_with_backup_is_refused(capsys, project, tmp_path):
    result = drill(capsys, project, "--backup", str(tmp_path / "x.dump"))
    assert result.code == 2 and "drop --demo/--backup" in result.err


def test_a_real_drill_through_the_fake_engine(
    account, project, capsys, monkeypatch, pg_cluster, fresh_db, tmp_path
):
    database = fresh_db.rsplit("/", 1)[1].split("?")[0]
    cloud = MotoCloud()
    local = StandinStack(pg_cluster, database)
    engine = FakeStackEngine(project_dir=project, local=local, offline=False, cloud=cloud)
    monkeypatch.setattr(aws_drill_cmd, "make_engine", lambda: engine)
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://prism-pulumi-state-123456789012")
    monkeypatch.setattr(aws_drill_cmd, "make_tunnels", lambda plan: cloud.cloudflare)
    monkeypatch.setenv("PRISM_DRILL_RUN_FILE", str(tmp_path / "runs"))
    monkeypatch.setattr(aws_drill_cmd, "make_access", lambda plan: access_for(pg_cluster, local))
    monkeypatch.setattr(aws_drill_cmd, "base_url", http_url)
    result = drill(
        capsys,
        project,
        "--direct",
        "--tier",
        "quick",
        "--json",
        "--record-dir",
        str(tmp_path / "rec"),
    )
    payload = json.loads(result.out)
    # An empty database: the drill runs, fails its data checks, and is torn down.
    assert result.code == 1
    assert payload["result"] == "failed"
    assert payload["environment"] == "aws-prod"
    assert engine.left() == {} and cloud.live() == []
    assert cloud.cloudflare.live() == {"tunnels": [], "records": []}
    assert (tmp_path / "rec" / "README.md").exists()
    assert [c for c, _ in engine.calls] == ["up", "destroy-targets", "destroy"]
    # The command wired the sweep to the account (moto) and Cloudflare: it looked, found none.
    sweep = next(c for c in payload["checks"] if c["name"] == "sweep")
    assert sweep["status"] == "pass", sweep
    assert ("tunnels_named", f"prism-{payload['stack']}-api") in cloud.cloudflare.calls
    assert ("zone_name", ZONE) in cloud.cloudflare.calls  # the hostname's zone was asked
    # The run id the workflow's always() step sweeps by, written before anything was created.
    assert (tmp_path / "runs").read_text() == payload["stack"].removeprefix("drill-") + "\n"


def test_without_a_cloudflare_token_a_tunnelled_drill_is_refused(
    account, project, capsys, no_engine, monkeypatch
):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    monkeypatch.setattr(aws_drill_cmd, "make_access", lambda plan: None)
    result = drill(capsys, project, "--direct")
    assert result.code == 2
    assert "CLOUDFLARE_API_TOKEN" in result.err and len(result.err.strip().splitlines()) == 1
    assert _instances(account) == ["prism-prod"]


def test_a_private_image_without_its_registry_password_is_refused(
    account, project, capsys, no_engine
):
    import yaml

    path = project / "Pulumi.prod.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["prism-infra:apiHost"]["registryUsername"] = "prism-deploy"
    path.write_text(yaml.safe_dump(doc))
    result = drill(capsys, project, "--direct")
    assert result.code == 2
    assert "/prism/drill/registry/password" in result.err
    assert "PRISM_DRILL_REGISTRY_PASSWORD" in result.err


def test_a_stack_file_with_a_byte_that_is_not_utf8_is_one_line_exit_2(
    account, project, capsys, no_engine
):
    stack_file = project / "Pulumi.prod.yaml"
    stack_file.write_bytes(stack_file.read_bytes() + b"# caf\xe9 (saved as Latin-1)\n")
    line = stack_file.read_bytes().count(b"\n")
    result = drill(capsys, project, "--dry-run")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        f"prism-dr: error: Pulumi.prod.yaml is not UTF-8 (byte 0xe9 at line {line}); save it "
        "as UTF-8, as Pulumi reads it"
    ]
    assert "Traceback" not in result.err
