"""Who ran a drill and with which tool versions."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from drills.record import (
    default_completed_by,
    tool_versions,
)


def test_default_completed_by_prefers_the_operator_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRISM_DR_OPERATOR", "  Quarterly Drill Bot ")
    assert default_completed_by() == "Quarterly Drill Bot"

def test_default_completed_by_falls_back_to_git_then_the_os_user(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PRISM_DR_OPERATOR", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Git Person\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.chdir(tmp_path)  # outside any repository's own config
    monkeypatch.setenv("USER", "os-person")
    monkeypatch.setenv("LOGNAME", "os-person")
    assert default_completed_by() == "Git Person"

    (home / ".gitconfig").write_text("")
    assert default_completed_by() == "os-person"

    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert default_completed_by() == "os-person"

def test_tool_versions_names_every_tool(tmp_path: Path) -> None:
    versions = tool_versions()
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert versions["prism-infra"]
    assert versions["psycopg"]
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", versions["libpq"])

    # A bindir holding a fake pg_restore proves the bindir is where tools are looked up.
    fake = tmp_path / "pg_restore"
    fake.write_text("#!/bin/sh\necho 'pg_restore (PostgreSQL) 99.1'\n")
    fake.chmod(0o755)
    versions = tool_versions(bindir=tmp_path)
    assert versions["pg_restore"] == "pg_restore (PostgreSQL) 99.1"
    assert "postgres" not in versions  # missing tools are left out, not guessed

def test_tool_versions_finds_the_installed_postgresql() -> None:
    from drills.local.cluster import find_bindir

    bindir = find_bindir()
    versions = tool_versions(bindir=bindir)
    for tool in ("pg_restore", "pg_dump", "postgres"):
        assert "(PostgreSQL)" in versions[tool]
