"""SIGINT, SIGTERM and SIGHUP during `up` (a child process): the drill asks the engine for one
graceful cancel, refreshes, destroys the host first and then the stack, sweeps the run's tag,
writes the record with the signal named and exits 128 + the signal. When the cancel outlasts
its wait, the engine is terminated, the pending creates are forgotten as Pulumi forgets them,
and the sweep removes them from the account (moto) and Cloudflare."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from infra.offline import PROJECT_DIR
from tests.drills.aws.conftest import resolved_plan

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pickled_plan(moto_session, tmp_path_factory):
    return resolved_plan(moto_session, tmp_path_factory, now=NOW)[0]


@pytest.mark.parametrize(
    ("signum", "outlast"),
    [
        (signal.SIGINT, False),
        (signal.SIGTERM, False),
        (signal.SIGHUP, False),
        (signal.SIGTERM, True),
    ],
)
def test_a_signal_during_up_tears_down_and_records(moto, pickled_plan, tmp_path, signum, outlast):
    plan = replace(pickled_plan, record_dir=tmp_path / "records")
    plan_file, state, ready = tmp_path / "plan.pickle", tmp_path / "state.json", tmp_path / "ready"
    plan_file.write_bytes(pickle.dumps(plan))
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.drills.aws.drill_child",
            str(plan_file),
            str(state),
            str(ready),
            *(["outlast"] if outlast else []),
        ],
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the child never reached up"
        time.sleep(0.05)
    pending = json.loads(state.read_text())[plan.stack_name]["pending"]
    assert pending  # the creates are under way
    child.send_signal(signum)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 128 + signum, err
    after = json.loads(state.read_text())
    assert plan.stack_name not in after  # destroyed and removed
    calls = [c for c, _ in after["_calls"]]
    if outlast:  # terminated: the state forgot the creates, the destroy had nothing to do
        assert calls == ["up", "interrupt", "interrupt", "refresh", "destroy"]
    else:
        assert calls == ["up", "interrupt", "refresh", "destroy-targets", "destroy"]
    if not outlast:  # the destroy deleted all of it (the sweep deletes behind the engine)
        assert after["_cloud"] == []
    assert tagged_live(plan.run_id) == []  # the account (moto) holds nothing of the run
    record = json.loads(Path(out.strip().splitlines()[-1]).read_text())
    assert record["result"] == "error"
    assert record["error"] == f"interrupted by {signal.Signals(signum).name}"
    assert f"interrupted by {signal.Signals(signum).name}" in record["notes"]
    teardown = next(c for c in record["checks"] if c["name"] == "teardown")
    assert teardown["status"] == "pass"
    assert "refreshed after the interrupted up" in teardown["detail"]
    sweep = next(c for c in record["checks"] if c["name"] == "sweep")
    assert sweep["status"] == "pass"
    if outlast:
        assert "terminated the engine" in record["notes"]
        assert "rds:db" in sweep["detail"] and "cloudflare:tunnel" in sweep["detail"]
    else:
        assert sweep["detail"] == "nothing tagged with this run was left"


def tagged_live(run_id):
    tagging = boto3.client("resourcegroupstaggingapi", region_name="us-east-1")
    found = tagging.get_resources(TagFilters=[{"Key": "prism:drill", "Values": [run_id]}])
    ec2 = boto3.client("ec2", region_name="us-east-1")
    live = []
    for item in found["ResourceTagMappingList"]:
        arn = item["ResourceARN"]
        if ":instance/" in arn:
            reservations = ec2.describe_instances(InstanceIds=[arn.rsplit("/", 1)[1]])
            if reservations["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated":
                continue
        live.append(arn)
    return live
