"""Fixtures shared by the local drill's tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from drills.local import owner


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TMPDIR and the registry of this test's own."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv(owner.STATE_DIR_ENV, str(tmp_path / "state"))
    return temp
