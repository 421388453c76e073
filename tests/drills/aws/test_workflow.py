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


def test_reap_then_drill_both_regions_then_sweep_then_fail_on_failure():
    steps = _doc()["jobs"]["drill"]["steps"]
    runs = [s.get("run", "") for s in steps]
    text = "\n".join(runs)
    reap = text.index("prism-dr drill reap --yes")
    home = text.index("prism-dr drill --stack prod --point")
    dr = text.index("prism-dr drill --stack prod --region us-west-2")
    sweep = text.index('prism-dr drill reap --run "$run_id" --yes')
    assert reap < home < dr < sweep
    assert "session-manager-plugin" in text
    last = runs[-1]
    assert "HOME_OUTCOME" in last and "DR_OUTCOME" in last


def test_a_cancelled_drill_gets_the_signal_and_its_run_is_swept_anyway():
    job = _doc()["jobs"]["drill"]
    steps = {s.get("id") or s.get("name"): s for s in job["steps"]}
    for drill in (steps["home"], steps["dr"]):
        # GitHub signals only the entry process: the drill must be it.
        assert drill["run"].startswith("exec .venv/bin/prism-dr drill --stack prod")
        assert "PRISM_DRILL_RUN_FILE" in drill["env"]
        assert drill["continue-on-error"] is True
    sweep = steps["Sweep what the drills left"]
    assert sweep["if"] == "always()"
    assert sweep["env"]["PRISM_DRILL_RUN_FILE"] == steps["home"]["env"]["PRISM_DRILL_RUN_FILE"]
    # The step timeouts leave the sweep its time inside the job's (plus 20 min of setup).
    budget = steps["home"]["timeout-minutes"] + steps["dr"]["timeout-minutes"]
    assert budget + sweep["timeout-minutes"] + 20 <= job["timeout-minutes"]


def test_a_scheduled_reap_every_six_hours_removes_what_expired():
    doc = yaml.safe_load((WORKFLOW.parent / "reap.yml").read_text())
    [cron] = [entry["cron"] for entry in doc[True]["schedule"]]
    _minute, hour, *rest = cron.split()
    assert hour == "*/6" and rest == ["*", "*", "*"]
    assert doc["permissions"] == {}
    job = doc["jobs"]["reap"]
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    [reap] = [s["run"] for s in job["steps"] if "prism-dr" in s.get("run", "")]
    assert "drill reap --yes --region us-east-1 --region us-west-2" in reap
