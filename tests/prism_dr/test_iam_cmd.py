"""`prism-dr iam policy`: the generated document, printed; bad input is one line and exit 2."""

from __future__ import annotations

import json

import pytest

from infra.ci_roles import Placeholders, policy_document
from tests.runbook.cli import run


def test_json_is_the_generated_document_for_that_account(capsys) -> None:
    result = run(capsys, "iam", "policy", "drill", "--account", "210987654321", "--json")
    assert result.code == 0, result.err
    where = Placeholders(account="210987654321", bucket="prism-pulumi-state-210987654321")
    assert json.loads(result.out) == policy_document("drill", where=where)
    assert "123456789012" not in result.out


def test_stack_scopes_the_programs_writes(capsys) -> None:
    result = run(capsys, "iam", "policy", "deploy-staging", "--stack", "staging-eu", "--json")
    document = json.loads(result.out)
    params = next(st for st in document["Statement"] if st["Sid"] == "ProgramWritesStackParameters")
    assert params["Resource"] == ["arn:aws:ssm:*:123456789012:parameter/prism/staging-eu/*"]


def test_the_table_view_names_the_role_and_each_statement(capsys) -> None:
    result = run(capsys, "iam", "policy", "audit")
    assert result.code == 0
    assert "role/prism-ci/prism-audit" in result.out and "AuditReadsBackups" in result.out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("root",), "ROLE 'root' is not a CI role"),
        (("drill", "--account", "12345"), "--account '12345'"),
        (("drill", "--region", "moon-1"), "--region 'moon-1'"),
        (("drill", "--stack", "Prod!"), "--stack 'Prod!'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, says) -> None:
    result = run(capsys, "iam", "policy", *args)
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert says in line
