"""`recover` refuses a temporary state backend before anything is created; its dry run, which
creates no state, does not care."""

from __future__ import annotations

import pytest

from prism_dr import recover_cmd
from tests.aws.conftest import moto, moto_session  # noqa: F401  (fixtures)
from tests.drills.aws.conftest import make_prod, make_project
from tests.runbook.cli import run


class NoEngine:
    def __getattr__(self, name):
        raise AssertionError(f"the engine was used ({name}) although nothing may be created")


@pytest.fixture
def prod(moto, tmp_path, monkeypatch):  # noqa: F811
    make_prod()
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.setattr(recover_cmd, "make_engine", NoEngine)
    return make_project(tmp_path)


def _recover(capsys, project, *extra):
    return run(
        capsys,
        "recover",
        "--stack",
        "prod",
        "--project-dir",
        str(project),
        "--name",
        "recovery-t1",
        "--yes",
        *extra,
    )


def test_recover_refuses_a_directory_backend_with_one_line(prod, capsys):
    result = _recover(capsys, prod)
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert "`recover` must not leave state in" in line and "--local-state" in line
    assert "Traceback" not in result.err


def test_the_dry_run_creates_no_state_and_needs_no_backend(prod, capsys):
    result = _recover(capsys, prod, "--dry-run", "--json")
    assert result.code == 0, result.err


def test_undo_refuses_it_too(prod, capsys):
    result = run(
        capsys,
        "recover",
        "--stack",
        "prod",
        "--project-dir",
        str(prod),
        "--name",
        "recovery-t1",
        "--undo-cutover",
        "--yes",
    )
    assert result.code == 2 and "--local-state" in result.err
