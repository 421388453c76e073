"""`recover` and the AWS drill refuse a temporary state backend before anything is created."""

from __future__ import annotations

from tests.runbook.cli import run


def test_recover_refuses_a_directory_backend_with_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    result = run(capsys, "recover", "--stack", "prod", "--name", "recovery-t1")
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert "`recover`" in line and "--local-state" in line
    assert "Traceback" not in result.err
