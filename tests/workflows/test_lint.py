"""Every workflow in .github/workflows/ passes GitHub's workflow schema (check-jsonschema's
vendored copy), zizmor's offline security audits and shellcheck on each `run:` script; and
known-bad workflows (tests/workflows/data) are rejected by the linter meant to catch them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
# House rules checked on these three on top of what every workflow must pass.
OURS = [p for p in WORKFLOWS if p.name in ("preview.yml", "deploy.yml", "audit.yml")]
DATA = Path(__file__).resolve().parent / "data"
BIN = Path(sys.executable).parent


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / name), *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_the_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"preview.yml", "deploy.yml", "audit.yml"} <= names


def test_workflows_match_githubs_schema() -> None:
    result = _tool(
        "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_zizmor() -> None:
    result = _tool("zizmor", "--offline", "--format", "json", *map(str, WORKFLOWS))
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], json.dumps(findings, indent=1)[:4000]


def _run_scripts() -> list[tuple[str, str, str]]:
    scripts = []
    for path in WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        for job_name, job in doc["jobs"].items():
            for i, step in enumerate(job.get("steps", [])):
                if "run" in step:
                    # every workflow: no warning; ours: not even a style note
                    severity = "info" if path in OURS else "warning"
                    scripts.append((f"{path.name}:{job_name}:{i}", step["run"], severity))
    return scripts


@pytest.mark.parametrize(("where", "script", "severity"), _run_scripts(), ids=lambda v: str(v)[:40])
def test_run_scripts_pass_shellcheck(where: str, script: str, severity: str) -> None:
    # GitHub runs `run:` with bash on Linux runners.
    result = subprocess.run(
        [str(BIN / "shellcheck"), "--shell=bash", f"--severity={severity}", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{where}\n{result.stdout}"


_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
_SHA = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")


def test_every_action_is_pinned_to_a_commit() -> None:
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            match = _USES.match(line)
            if match is None or match.group(1).startswith(("./", "docker://")):
                continue
            assert _SHA.fullmatch(match.group(1)), f"{path.name}: {line.strip()}"
            if path in OURS:  # and says which release that commit is
                assert re.fullmatch(r" # v\d+\.\d+\.\d+", match.group(2)), line


def test_every_job_declares_its_own_permissions() -> None:
    for path in OURS:
        doc = yaml.safe_load(path.read_text())
        assert doc.get("permissions") == {}, f"{path.name}: workflow-level permissions: {{}}"
        for name, job in doc["jobs"].items():
            assert isinstance(job.get("permissions"), dict), f"{path.name}:{name}"


# --- the linters reject what they are here to catch ---------------------------------------------


def test_schema_rejects_a_broken_workflow() -> None:
    bad = DATA / "schema-invalid.yml"
    result = _tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(bad))
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "'runs-on' is a required property" in out
    assert "'reed' is not one of ['read', 'write', 'none']" in out
    assert "$.on" in out


def test_zizmor_rejects_an_insecure_workflow() -> None:
    bad = DATA / "insecure.yml"
    # valid for GitHub: only the security audit can tell
    assert (
        _tool(
            "check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(bad)
        ).returncode
        == 0
    )
    result = _tool("zizmor", "--offline", "--format", "json", str(bad))
    assert result.returncode != 0
    found = {finding["ident"] for finding in json.loads(result.stdout)}
    assert {"dangerous-triggers", "template-injection", "unpinned-uses", "artipacked"} <= found
