"""The layout's import contracts (pyproject.toml [tool.importlinter]) hold, and each one bites:
a copy of the packages with one planted import breaks the contract that forbids it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("prism_dr", "runbook", "drills", "recovery", "infra", "policy")
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(where: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([LINT, "--no-cache"], cwd=where, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_layout_keeps_every_contract() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("layout")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, where / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", where)
    return where


PLANTS = [
    # (file, planted line, the contract that must break)
    ("recovery/times.py", "import runbook.snapshot", "Dependencies point down"),
    ("infra/errors.py", "import prism_dr.app", "Dependencies point down"),
    ("drills/aws/plan.py", "import drills.local.plan", "Inside drills"),
    ("drills/verify/model.py", "import drills.record.model", "Inside drills"),
    ("drills/verify/model.py", "import boto3", "know nothing of AWS or Pulumi"),
    ("drills/record/model.py", "import recovery.engine", "know nothing of AWS or Pulumi"),
    ("policy/base.py", "import infra.errors", "policy pack imports nothing"),
    # the two circles the layout removed: config <-> boot and the two drill commands
    ("infra/host_rules.py", "import infra.boot", "No import circles"),
    ("prism_dr/console.py", "import prism_dr.drill_cmd", "No import circles"),
]


@pytest.mark.parametrize(("module", "line", "contract"), PLANTS,
                         ids=[f"{m}:{line.split()[-1]}" for m, line, _ in PLANTS])
def test_a_planted_import_breaks_its_contract(copy: Path, module: str, line: str,
                                              contract: str) -> None:
    path = copy / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # planted\n")
    try:
        result = lint(copy)
    finally:
        path.write_text(original)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
