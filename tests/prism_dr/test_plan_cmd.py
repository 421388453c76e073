"""`prism-dr plan`: offline table and --json (the command on a Typer app of its own), and
one-line errors with exit code 2 (the real entry point, as a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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


def _plan_app() -> typer.Typer:
    # The command on its own app: independent of the other command groups of prism-dr.
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """prism-dr (test)"""

    plan_cmd.register(app)
    return app


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return _plan_app()


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
    # What runs against the database: the approved image by digest, as the application role.
    assert "API image pinned by digest" in out
    assert "ghcr.io/example/prism-api@sha256:" + "0" * 64 in out
    assert "API connects as" in out and "prism_api" in out
    assert result.stderr == ""


def test_json_has_every_resource_with_its_settings(prod_json: dict) -> None:
    assert prod_json["stack"] == "prod" and prod_json["preview"] is True
    posture = prod_json["posture"]
    assert posture["pointInTimeRecoveryDays"] == 30
    assert posture["multiAz"] is True and posture["deletionProtection"] is True
    assert posture["pulumiProtect"] is True and posture["finalSnapshot"] is True
    assert posture["backupReplication"] == {"region": "us-west-2", "retentionDays": 30}
    assert posture["apiImage"] == "ghcr.io/example/prism-api@sha256:" + "0" * 64
    assert posture["apiImageByDigest"] is True
    assert posture["applicationRole"] == "prism_api"
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
    app_secret = by_name["runtime-secrets-app-secret"]["settings"]
    assert app_secret["namePrefix"] == "prism/prod/database/app-"
    assert by_name["runtime-secrets-app-secret-value"]["settings"]["secretString"] == "<secret>"
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


# Errors: the real entry point (`python -m prism_dr`, i.e. prism_dr.app.cli), as a user runs
# it: with the slim SDK import and the exit without teardown.


def _user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != plan_cmd.EAGER_IMPORTS_ENV}
    return {**env, "PYTHONIOENCODING": "utf-8", **extra}


def prism_dr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prism_dr", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_user_env(),
        timeout=300,
    )


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("prism-dr: error: ")
    return lines[0].removeprefix("prism-dr: error: ")


def test_the_console_entry_delivers_the_whole_plan() -> None:
    # cli() ends the process without teardown: everything written must still arrive (the
    # JSON of the same entry is compared in tests/infra/test_slim_import.py).
    table = prism_dr("plan", "--stack", "prod")
    assert table.returncode == 0, table.stderr
    assert table.stdout.rstrip().endswith("no violations")


def test_unknown_stack_is_one_line_and_exit_2() -> None:
    message = _one_line_error(prism_dr("plan", "--stack", "nope"))
    assert message.startswith("Pulumi.nope.yaml does not exist in ")
    assert "known stacks: prod, staging" in message


def test_not_a_stack_name_is_one_line_and_exit_2() -> None:
    message = _one_line_error(prism_dr("plan", "--stack", "../etc/passwd"))
    assert message == "--stack '../etc/passwd' is not a stack name (letters, digits, . _ -)"


def test_bad_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    project = _project_copy(
        tmp_path, "staging", lambda c: c["prism-infra:database"].update(backupRetentionDays=3)
    )
    result = prism_dr("plan", "--stack", "staging", "--project-dir", str(project))
    message = _one_line_error(result)
    assert message == "prism-infra:database.backupRetentionDays must be 7\u201335 (got 3)"


def test_missing_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    project = _project_copy(tmp_path, "prod", lambda c: c["prism-infra:tunnel"].pop("zoneId"))
    result = prism_dr("plan", "--stack", "prod", "--json", "--project-dir", str(project))
    assert _one_line_error(result).startswith("prism-infra:tunnel.zoneId is required")


@pytest.mark.parametrize(
    ("env", "key"),
    [
        # Each used to surface as a ValueError traceback from the ApiHost component.
        ({"BANNER": "a\nPRISM_EOF\nb"}, "prism-infra:apiHost.env.BANNER must not contain"),
        ({"BIG": "x" * 20000}, "prism-infra:apiHost.env holds 20003 bytes"),
    ],
)
def test_env_that_would_break_the_boot_script_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], key: str
) -> None:
    project = _project_copy(tmp_path, "staging", lambda c: c["prism-infra:apiHost"].update(env=env))
    result = prism_dr("plan", "--stack", "staging", "--project-dir", str(project))
    assert _one_line_error(result).startswith(key)


def test_secrets_in_clear_in_the_stack_file_are_one_line_and_exit_2(tmp_path: Path) -> None:
    def plain_secrets(config: dict) -> None:
        for key in ("clerkSecretKey", "clerkPublishableKey", "redisUrl"):
            config[f"prism-infra:{key}"] = "plain-value"

    project = _project_copy(tmp_path, "staging", plain_secrets)
    result = prism_dr("plan", "--stack", "staging", "--project-dir", str(project))
    assert _one_line_error(result) == (
        "prism-infra:clerkSecretKey is stored in clear text in Pulumi.staging.yaml: "
        "pulumi config set prism-infra:clerkSecretKey <value> -s staging --secret"
    )


def test_the_plan_module_does_not_import_pulumi_until_it_runs() -> None:
    # prism_dr.app imports every command module; the drill command must not load pulumi.
    code = (
        "import sys, prism_dr.plan_cmd, infra.errors; "
        "sys.exit(1 if any(m.split('.')[0] == 'pulumi' for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_restored_from_shows_in_the_posture(tmp_path: Path) -> None:
    def restored(config: dict) -> None:
        config["prism-infra:database"].update(
            identifier="prism-staging-r1", restoredFrom="prism-staging@latest"
        )

    project = _project_copy(tmp_path, "staging", restored)
    result = CliRunner().invoke(
        _plan_app(), ["plan", "--stack", "staging", "--json", "--project-dir", str(project)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["posture"]["restoredFrom"] == "prism-staging@latest"


# Which project: the nearest Pulumi.yaml from the current directory up, as pulumi finds it.


def _in(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prism_dr", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_user_env(PYTHONPATH=str(PROJECT_DIR)),
        timeout=300,
    )


def test_plan_reads_the_checkout_it_runs_in(tmp_path: Path) -> None:
    # A second checkout whose staging differs: plan from its subdirectory shows its stack,
    # not the files next to the installed package.
    other = _project_copy(
        tmp_path, "staging", lambda c: c["prism-infra:database"].update(backupRetentionDays=9)
    )
    (other / "docs" / "deep").mkdir(parents=True)
    result = _in(other / "docs" / "deep", "plan", "--stack", "staging", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["stackFile"] == str(other.resolve() / "Pulumi.staging.yaml")
    assert report["posture"]["pointInTimeRecoveryDays"] == 9


def test_project_dir_overrides_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other = _project_copy(
        tmp_path / "other", "staging", lambda c: c["prism-infra:database"].update(multiAz=True)
    )
    here = tmp_path / "here"
    here.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml"):
        shutil.copy(PROJECT_DIR / name, here)
    result = _in(here, "plan", "--stack", "staging", "--json", "--project-dir", str(other))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["posture"]["multiAz"] is True


def test_no_pulumi_yaml_anywhere_up_is_exit_2(tmp_path: Path) -> None:
    message = _one_line_error(_in(tmp_path, "plan", "--stack", "staging"))
    assert message == (
        f"Pulumi.yaml is not in {tmp_path.resolve()} or any parent: run from a prism-infra "
        "checkout or pass --project-dir DIR"
    )


def test_project_dir_without_pulumi_yaml_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.staging.yaml").write_text("config: {}\n")
    message = _one_line_error(prism_dr("plan", "-s", "staging", "--project-dir", str(tmp_path)))
    assert message == (
        f"--project-dir {tmp_path} holds no Pulumi.yaml: pass the directory of prism-infra's"
    )


def test_another_pulumi_project_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: someone-else\nruntime: python\n")
    message = _one_line_error(_in(tmp_path, "plan", "--stack", "staging"))
    assert message.startswith(f"{tmp_path.resolve()}/Pulumi.yaml is the Pulumi project ")
    assert "'someone-else', not prism-infra" in message


def test_targets_come_from_the_drill_manifest(prod_json: dict) -> None:
    from drills.verify.manifest import load_manifest

    targets = load_manifest().targets
    assert prod_json["posture"]["targets"] == {
        "rpoHours": targets.rpo_hours,
        "rtoHours": targets.rto_hours,
    }
    assert (targets.rpo_hours, targets.rto_hours) == (24, 4)  # spec §1


def test_every_dr_setting_the_table_shows_exists_in_a_stacks_inputs(prod_json: dict) -> None:
    # A key that exists in neither stack is a typo or a renamed provider input: it would
    # silently show nothing.
    from infra.offline import run_program

    restore = {
        "prism-infra:database.identifier": "prism-staging-r1",
        "prism-infra:database.restore": {"point": "latest", "sourceIdentifier": "prism-staging"},
    }
    snapshot = {
        "prism-infra:database.identifier": "prism-staging-r2",
        "prism-infra:database.restore": {"point": "snapshot:pre-migration-42"},
    }
    runs = [run_program(s, preview=False) for s in ("staging", "prod")] + [
        run_program("staging", preview=False, overrides=o) for o in (restore, snapshot)
    ]
    missing = []
    for type_, keys in plan_cmd._DR_SETTINGS.items():
        records = [r for run in runs for r in run.of_type(type_)]
        assert records, f"no {type_} in either stack: drop it from _DR_SETTINGS"
        for key in keys:
            if all(plan_cmd._lookup(r.inputs, key) is None for r in records):
                missing.append(f"{type_} {key}")
    assert missing == []


def test_plan_loads_no_other_commands_module() -> None:
    # prism_dr.app registers only the command that runs: plan pays for no boto3 (runbook) and
    # no matplotlib (drill records); --help still lists every command.
    code = (
        "import sys; from prism_dr import app\n"
        "app._register(['plan', '--stack', 'prod'])\n"
        "heavy = [m for m in ('boto3', 'matplotlib', 'prism_dr.drill_cmd', 'prism_dr.audit_cmd')"
        " if m in sys.modules]\n"
        "sys.exit(f'loaded {heavy}' if heavy else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    help_text = prism_dr("--help").stdout
    for command in ("plan", "drill", "snapshot", "audit", "recover"):
        assert f" {command} " in help_text


def test_a_mandatory_policy_violation_is_exit_1_after_the_plan(tmp_path: Path) -> None:
    # The project's own policy config is stricter than the stack file: the plan still prints,
    # then the violation, and exits 1 (a failed check, not bad input).
    project = _project_copy(tmp_path, "staging", lambda c: None)
    (project / "policy" / "config").mkdir(parents=True)
    (project / "policy" / "config" / "staging.json").write_text(
        json.dumps({"rds-backup-retention": {"environment": "staging", "minRetentionDays": 14}})
    )
    result = prism_dr("plan", "--stack", "staging", "--json", "--project-dir", str(project))
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["policies"]["passed"] is False
    assert [v["policy"] for v in report["policies"]["violations"]] == ["rds-backup-retention"]


def test_compare_lines_up_both_stacks(app: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "-s", "prod", "--compare", "staging", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["policies"]["passed"] is True
    assert report["policies"]["compare"]["stack"] == "staging"
