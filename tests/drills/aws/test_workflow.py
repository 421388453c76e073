"""The quarterly drill workflow: valid for GitHub, clean under zizmor, pinned, least privilege,
and it does what spec section 6 asks (quarterly, reap, both regions, record, fail on failure)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from infra.offline import PROJECT_DIR

WORKFLOW = PROJECT_DIR / ".github" / "workflows" / "drill.yml"
BIN = Path(sys.executable).parent


def _doc() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_github_accepts_it_and_zizmor_finds_nothing():
    schema = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", WORKFLOW],
        capture_output=True,
        text=True,
        check=False,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    audit = subprocess.run(
        [BIN / "zizmor", "--offline", WORKFLOW], capture_output=True, text=True, check=False
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_quarterly_and_by_hand_with_a_long_enough_timeout():
    doc = _doc()
    on = doc[True]  # YAML 1.1 reads the key `on` as true
    [cron] = [entry["cron"] for entry in on["schedule"]]
    _minute, _hour, day, months, weekday = cron.split()
    assert day == "1" and weekday == "*" and len(months.split(",")) == 4
    assert "workflow_dispatch" in on
    assert doc["jobs"]["drill"]["timeout-minutes"] >= 150
    assert doc["concurrency"]["cancel-in-progress"] is False


def test_least_privilege_and_pinned_actions():
    doc = _doc()
    assert doc["permissions"] == {}
    assert doc["jobs"]["drill"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert doc["jobs"]["record"]["permissions"] == {"contents": "write", "pull-requests": "write"}
    for job in doc["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


def test_reap_then_drill_both_regions_then_fail_on_failure():
    runs = [s.get("run", "") for s in _doc()["jobs"]["drill"]["steps"]]
    text = "\n".join(runs)
    reap = text.index("prism-dr drill reap --yes")
    home = text.index("prism-dr drill --stack prod --point")
    dr = text.index("prism-dr drill --stack prod --region us-west-2")
    assert reap < home < dr
    assert "session-manager-plugin" in text
    last = runs[-1]
    assert "HOME_CODE" in last and "DR_CODE" in last
