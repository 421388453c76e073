"""SIGINT, SIGTERM and SIGHUP during `up` (a child process): the interrupted up is
refreshed (its pending creates read back), the stack destroyed and removed, the record
written with the signal named, and the exit code 128 + the signal."""

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

import pytest

from infra.offline import PROJECT_DIR
from tests.drills.aws.conftest import resolved_plan

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pickled_plan(moto_session, tmp_path_factory):
    return resolved_plan(moto_session, tmp_path_factory, now=NOW)[0]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_up_tears_down_and_records(pickled_plan, tmp_path, signum):
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
    assert calls == ["up", "refresh", "destroy"]
    record = json.loads(Path(out.strip().splitlines()[-1]).read_text())
    assert record["result"] == "error"
    assert record["error"] == f"interrupted by {signal.Signals(signum).name}"
    assert f"interrupted by {signal.Signals(signum).name}" in record["notes"]
    teardown = next(c for c in record["checks"] if c["name"] == "teardown")
    assert teardown["status"] == "pass"
    assert "refreshed after the interrupted up" in teardown["detail"]
