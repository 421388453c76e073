"""`prism-dr plan`: offline table and --json, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from infra.offline import PROJECT_DIR
from prism_dr import plan_cmd

# The provider SDKs warn about their own deprecated resources when first imported.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_aws.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_cloudflare.*"),
]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    # The command on its own app: independent of the other command groups of prism-dr.
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """prism-dr (test)"""

    plan_cmd.register(app)
    return app


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def prod_json(app: typer.Typer, runner: CliRunner) -> dict:
    result = runner.invoke(app, ["plan", "--stack", "prod", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return json.loads(result.stdout)


def _project_copy(tmp_path: Path, stack: str, change) -> Path:
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", tmp_path)
    doc = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())
    change(doc["config"])
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


def test_table_shows_dr_settings(app: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "--stack", "prod"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "DR posture" in out and "RPO 24 h, RTO 4 h" in out
    assert "to us-west-2, 30 days" in out
    assert "database-instance" in out and "backupRetentionPeriod: 30" in out
    assert "deletionProtection: true" in out and "protect: true" in out
    assert "ingress: none" in out  # the host's security group
    assert 'ingress: ["tcp/5432 api-host-sg"]' in out  # the database's
    assert "http_status:404" in out
    assert "endpoint: (unknown)" in out  # computed by AWS, unknown offline
    assert "[secret]" in out
    assert result.stderr == ""


def test_json_has_every_resource_with_its_settings(prod_json: dict) -> None:
    assert prod_json["stack"] == "prod" and prod_json["preview"] is True
    posture = prod_json["posture"]
    assert posture["pointInTimeRecoveryDays"] == 30
    assert posture["multiAz"] is True and posture["deletionProtection"] is True
    assert posture["pulumiProtect"] is True and posture["finalSnapshot"] is True
    assert posture["backupReplication"] == {"region": "us-west-2", "retentionDays": 30}
    by_name = {r["name"]: r for r in prod_json["resources"]}
    db = by_name["database-instance"]
    assert db["settings"]["backupRetentionPeriod"] == 30
    assert db["settings"]["publiclyAccessible"] is False
    assert db["settings"]["endpoint"] == "<unknown>"
    assert db["options"] == {"protect": True}
    replication = by_name["database-backup-replication"]
    assert replication["options"]["provider"] == "database-dr-region"
    assert by_name["api-host-sg"]["settings"]["ingress"] == []
    assert by_name["runtime-secrets-redis-url"]["settings"]["value"] == "<secret>"
    assert prod_json["outputs"]["dbEndpoint"] == "<unknown>"
    assert prod_json["outputs"]["dbIdentifier"] == "prism-prod"


def test_json_never_contains_a_secret_placeholder(prod_json: dict) -> None:
    assert "offline-placeholder:" not in json.dumps(prod_json)
    assert set(prod_json["placeholders"]) == {
        "prism-infra:clerkSecretKey",
        "prism-infra:clerkPublishableKey",
        "prism-infra:redisUrl",
    }


def test_staging_posture(app: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "--stack", "staging", "--json"])
    assert result.exit_code == 0
    posture = json.loads(result.stdout)["posture"]
    assert posture["pointInTimeRecoveryDays"] == 7
    assert posture["multiAz"] is False and posture["pulumiProtect"] is False
    assert posture["backupReplication"] is None


def test_bad_key_is_one_line_and_exit_2(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    project = _project_copy(
        tmp_path, "staging", lambda c: c["prism-infra:database"].update(backupRetentionDays=3)
    )
    result = runner.invoke(app, ["plan", "--stack", "staging", "--project-dir", str(project)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert (
        result.stderr
        == "error: prism-infra:database.backupRetentionDays must be 7\u201335 (got 3)\n"
    )


def test_missing_key_is_one_line_and_exit_2(
    app: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    project = _project_copy(tmp_path, "prod", lambda c: c["prism-infra:tunnel"].pop("zoneId"))
    result = runner.invoke(
        app, ["plan", "--stack", "prod", "--json", "--project-dir", str(project)]
    )
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: prism-infra:tunnel.zoneId is required")
    assert "Traceback" not in result.output


def test_unknown_stack_names_the_file(app: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "--stack", "qa"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: Pulumi.qa.yaml does not exist in ")
    assert "known stacks: prod, staging" in lines[0]


def test_not_a_stack_name(app: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "--stack", "../etc/passwd"])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
