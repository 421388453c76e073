"""The policy half of `prism-dr plan`: the pack on the offline run of the real stack program.

The stack config refuses what the policies also refuse (prod retention 3, deletion protection
off: exit 2 before any resource), so a violation is reached the way a code change would
cause it: a stack transformation over the real program rewrites one resource's inputs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra.config import ConfigError
from infra.errors import BadInput
from infra.offline import PROJECT_DIR, OfflineRun, run_program
from prism_dr import plan_policy

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_aws.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_cloudflare.*"),
    # register_stack_transformation is deprecated in favour of transforms, which Pulumi's
    # mock monitor does not implement.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

Rewrite = Callable[[str, str, dict[str, Any]], dict[str, Any] | None]


def _with_rewrite(rewrite: Rewrite) -> Callable[[], None]:
    """The stack program of __main__.py, with `rewrite(type, name, props)` applied to every
    resource it registers (a changed props dict replaces the inputs)."""

    def transform(args: pulumi.ResourceTransformationArgs) -> Any:
        props = rewrite(args.type_, args.name, dict(args.props))
        if props is None:
            return None
        return pulumi.ResourceTransformationResult(props, args.opts)

    def program() -> None:
        from infra.stack import main

        pulumi.runtime.register_stack_transformation(transform)
        main(examples_allowed=True)

    return program


def _prod(rewrite: Rewrite) -> OfflineRun:
    return run_program("prod", preview=True, program=_with_rewrite(rewrite))


def _set(type_: str, **values: Any) -> Rewrite:
    def rewrite(t: str, name: str, props: dict[str, Any]) -> dict[str, Any] | None:
        return {**props, **values} if t == type_ else None

    return rewrite


DB = "aws:rds/instance:Instance"
WIDE = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
                "Resource": "arn:aws:ssm:us-east-1:123456789012:parameter/prism/*",
            }
        ],
    }
)


def _violations(report: plan_policy.PolicyReport, policy: str) -> list[str]:
    return [v.message for v in report.violations if v.policy == policy]


def test_prod_retention_3_is_refused_by_config_and_violates_the_pack() -> None:
    with pytest.raises(ConfigError, match="backupRetentionDays must be at least 30"):
        run_program("prod", overrides={"prism-infra:database.backupRetentionDays": 7})
    report = plan_policy.check(_prod(_set(DB, backup_retention_period=3)), None)
    assert report.exit_code == 1
    [msg] = _violations(report, "rds-backup-retention")
    assert msg == "backupRetentionPeriod is 3 days; at least 30 required on prod"
    [violation] = [v for v in report.violations if v.policy == "rds-backup-retention"]
    assert violation.resource == "database-instance" and violation.enforcement == "mandatory"
    assert "backupRetentionDays" in violation.fix


def test_prod_without_deletion_protection_violates_the_pack() -> None:
    report = plan_policy.check(_prod(_set(DB, deletion_protection=False)), None)
    assert report.exit_code == 1
    assert _violations(report, "rds-prod-deletion-protection")


def test_a_widened_host_role_violates_the_pack() -> None:
    def widen(type_: str, name: str, props: dict[str, Any]) -> dict[str, Any] | None:
        if type_ == "aws:iam/rolePolicy:RolePolicy" and name.startswith("api-host"):
            return {**props, "policy": WIDE}
        return None

    report = plan_policy.check(_prod(widen), None)
    assert report.exit_code == 1
    [msg] = _violations(report, "instance-role-own-parameters-only")
    assert "instance role api-host-role can read parameters outside /prism/prod" in msg
    assert "ssm:GetParametersByPath" in msg


def test_an_advisory_finding_alone_does_not_fail(tmp_path: Path) -> None:
    run = _prod(_set(DB, multi_az=False))
    report = plan_policy.check(run, None)
    [finding] = [v for v in report.violations if v.policy == "rds-prod-multi-az"]
    assert finding.enforcement == "advisory"
    assert "rds-prod-multi-az" not in {v.policy for v in report.mandatory}


def test_the_stack_config_file_sets_levels(tmp_path: Path) -> None:
    project = _project(tmp_path, {"rds-prod-deletion-protection": "advisory"})
    run = _prod(_set(DB, deletion_protection=False))
    report = plan_policy.check(run, project)
    [finding] = [v for v in report.violations if v.policy == "rds-prod-deletion-protection"]
    assert finding.enforcement == "advisory"
    assert report.config_file == str(project / "policy" / "config" / "prod.json")


def _project(tmp_path: Path, policy_config: Any, stacks: tuple[str, ...] = ("prod",)) -> Path:
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", tmp_path)
    for stack in stacks:
        shutil.copy(PROJECT_DIR / f"Pulumi.{stack}.yaml", tmp_path)
    config_dir = tmp_path / "policy" / "config"
    config_dir.mkdir(parents=True)
    text = policy_config if isinstance(policy_config, str) else json.dumps(policy_config)
    (config_dir / "prod.json").write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"rds-retention": {}}', "'rds-retention' is not a policy of this pack"),
        (
            '{"rds-backup-retention": {"minRetentionDays": 99}}',
            "rds-backup-retention.minRetentionDays",
        ),
        ("{", "not valid JSON at line 1"),
    ],
)
def test_a_bad_policy_config_is_bad_input(tmp_path: Path, text: str, expected: str) -> None:
    project = _project(tmp_path, text)
    with pytest.raises(BadInput) as info:
        plan_policy.pack_config("prod", project)
    assert str(info.value).startswith(str(project / "policy" / "config" / "prod.json"))
    assert expected in str(info.value)


def test_without_any_file_the_defaults_apply(tmp_path: Path) -> None:
    config = plan_policy.pack_config("recovery-x", tmp_path)
    assert config.source is None and config.for_policy("rds-backup-retention").environment == "auto"


# --- --compare ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prod_run() -> OfflineRun:
    return run_program("prod", preview=True)


def test_compare_lines_up_the_dr_settings(prod_run: OfflineRun) -> None:
    report = plan_policy.check(prod_run, None, compare="staging")
    assert report.compare is not None and report.compare["stack"] == "staging"
    rows = {row["setting"]: row for row in report.compare["settings"]}
    expected = {
        "backup retention (days)": (30, 7),
        "multi-AZ": (True, False),
        "deletion protection": (True, False),
        "pulumi protect": (True, False),
        "backup replication": ("to us-west-2, 30 days", "off"),
    }
    for setting, (prod, staging) in expected.items():
        assert (rows[setting]["prod"], rows[setting]["staging"]) == (prod, staging), setting
        assert rows[setting]["differs"] is True
    assert rows["storage encrypted"]["differs"] is False
    assert rows["backup window (UTC)"]["prod"] == "03:00-03:30"
    json.dumps(report.as_dict())  # plain data


@pytest.mark.parametrize(
    ("other", "error", "expected"),
    [
        ("prod", BadInput, "--compare prod is the stack being planned"),
        ("../x", BadInput, "--compare '../x' is not a stack name"),
        ("nope", ConfigError, "Pulumi.nope.yaml does not exist"),
    ],
)
def test_compare_with_a_bad_stack_is_bad_input(
    prod_run: OfflineRun, other: str, error: type[Exception], expected: str
) -> None:
    with pytest.raises(error, match=expected.replace(".", r"\.").replace("(", r"\(")):
        plan_policy.check(prod_run, None, compare=other)


# --- through the command line -------------------------------------------------------------------


def _plan_app() -> Any:
    import typer

    from prism_dr import plan_cmd

    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """prism-dr (test)"""

    plan_cmd.register(app)
    return app


def _invoke(*args: str) -> Any:
    from typer.testing import CliRunner

    return CliRunner().invoke(_plan_app(), ["plan", *args], env={"COLUMNS": "200"})


def _rewritten(monkeypatch: pytest.MonkeyPatch, rewrite: Rewrite) -> None:
    # `plan` runs infra.offline's default program: make it the rewritten one.
    monkeypatch.setattr("infra.offline._default_program", _with_rewrite(rewrite))


@pytest.mark.parametrize(
    ("rewrite", "policy", "finding"),
    [
        (_set(DB, backup_retention_period=3), "rds-backup-retention", "is 3 days"),
        (_set(DB, deletion_protection=False), "rds-prod-deletion-protection", "not true on prod"),
        (
            lambda t, n, p: (
                {**p, "policy": WIDE}
                if t == "aws:iam/rolePolicy:RolePolicy" and n.startswith("api-host")
                else None
            ),
            "instance-role-own-parameters-only",
            "can read parameters outside /prism/prod",
        ),
    ],
    ids=["retention-3", "no-deletion-protection", "host-role-widened"],
)
def test_plan_exits_1_on_a_mandatory_violation(
    monkeypatch: pytest.MonkeyPatch, rewrite: Rewrite, policy: str, finding: str
) -> None:
    _rewritten(monkeypatch, rewrite)
    result = _invoke("--stack", "prod")
    assert result.exit_code == 1, result.output
    assert "mandatory violation(s)" in result.stdout
    assert f"mandatory {policy}" in result.stdout and finding in result.stdout


def test_json_carries_the_violations(monkeypatch: pytest.MonkeyPatch) -> None:
    _rewritten(monkeypatch, _set(DB, backup_retention_period=3))
    result = _invoke("--stack", "prod", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)["policies"]
    assert doc["passed"] is False and doc["configFile"].endswith("policy/config/prod.json")
    [violation] = [v for v in doc["violations"] if v["policy"] == "rds-backup-retention"]
    assert violation["resource"] == "database-instance" and violation["enforcement"] == "mandatory"
    assert violation["message"] and violation["fix"]


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_the_stacks_as_committed_pass_the_pack(stack: str) -> None:
    result = _invoke("--stack", stack)
    assert result.exit_code == 0, result.output
    assert f"Policies (policy/config/{stack}.json): no violations" in " ".join(
        result.stdout.split()
    )


def test_compare_on_the_command_line() -> None:
    result = _invoke("--stack", "prod", "--compare", "staging")
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "DR settings: prod vs staging" in result.stdout
    for setting, prod, staging in [
        ("backup retention (days)", "30", "7"),
        ("multi-AZ", "true", "false"),
        ("deletion protection", "true", "false"),
        ("backup replication", "to us-west-2, 30 days", "off"),
    ]:
        cells = [c.strip() for c in lines[setting].split("│")[1:-1]]
        assert cells == [setting, prod, staging]
    doc = json.loads(_invoke("--stack", "prod", "--compare", "staging", "--json").stdout)
    assert doc["policies"]["compare"]["stack"] == "staging"


def _one_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """prism-dr's real entry point, in this process: exit 2 and one line on stderr."""
    from prism_dr.app import main

    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    assert info.value.code == 2, err
    assert "Traceback" not in err and out == ""
    [line] = err.splitlines()
    return line.removeprefix("prism-dr: error: ")


def test_a_bad_policy_config_is_exit_2_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path, {"rds-backup-retention": {"minRetentionDays": "seven"}})
    message = _one_line(capsys, "plan", "--stack", "prod", "--project-dir", str(project))
    assert message.startswith(str(project / "policy" / "config" / "prod.json"))
    assert "rds-backup-retention.minRetentionDays" in message


def test_compare_with_an_unknown_stack_is_exit_2_on_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = _one_line(capsys, "plan", "--stack", "prod", "--compare", "nope")
    assert message.startswith("Pulumi.nope.yaml does not exist")
