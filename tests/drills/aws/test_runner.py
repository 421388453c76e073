"""The AWS drill end to end through a fake StackEngine that stands up local equivalents
(tests/fakes/engine.py): the real program (under mocks), verification, record and teardown,
with provider durations on a simulated clock; then every fault the teardown must survive."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest

from drills.aws.runner import run_aws_drill, teardown
from drills.record import Result, RtoKind
from drills.verify.model import Status, Tier
from recovery.engine import ConcurrentUpdate, EngineError
from tests.drills.aws.conftest import SECRETS, resolved_plan
from tests.drills.aws.runner_support import StandinStack, access_for, http_url
from tests.fakes.engine import FakeStackEngine

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def restored(pg_cluster, sample_dump):
    """The 'restored RDS instance': the sample dump restored once for the module."""
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS aws_drill_restored")
        conn.execute("CREATE DATABASE aws_drill_restored")
    subprocess.run(
        [pg_cluster.tool("pg_restore"), "--no-owner", "-d", "aws_drill_restored", str(sample_dump)],
        env=pg_cluster.env(),
        check=True,
    )
    return "aws_drill_restored"


@pytest.fixture(scope="module")
def module_plan(moto_session, tmp_path_factory):
    plan, project, _ = resolved_plan(moto_session, tmp_path_factory, now=NOW, tier=Tier.QUICK)
    return plan, project


@pytest.fixture
def plan(module_plan, tmp_path):
    return replace(module_plan[0], record_dir=tmp_path / "records")


@pytest.fixture
def stack(pg_cluster, restored):
    local = StandinStack(pg_cluster, restored)
    yield local
    for name in local.running():
        local.stop(name)


@pytest.fixture
def engine(module_plan, stack):
    # The program itself runs (under mocks) in the first test; the faults need only its
    # main resources, which keeps the module fast.
    return FakeStackEngine(project_dir=module_plan[1], local=stack, offline=False)


def drill(plan, engine, pg_cluster, **kwargs):
    kwargs.setdefault("access", access_for(pg_cluster))
    kwargs.setdefault("ready_timeout", 5)
    return run_aws_drill(
        plan,
        engine,
        secrets=SECRETS,
        base_url=http_url,
        ready_interval=0.05,
        destroy_backoff=0,
        **kwargs,
    )


def _check(outcome, name):
    return next(c for c in outcome.record.checks if c.name == name)


def test_a_drill_stands_up_verifies_records_and_tears_down(plan, engine, stack, pg_cluster):
    engine.offline = True
    outcome = drill(plan, engine, pg_cluster)
    record = outcome.record
    assert record.result == Result.PASSED, record.notes
    assert engine.left() == {} and stack.running() == []
    assert [c for c, _ in engine.calls] == ["up", "destroy"]
    # The program the engine ran is the drill's: a restored instance, tagged with the id.
    [db] = engine.runs[plan.stack_name].of_type("aws:rds/instance:Instance")
    assert db.inputs["tags"]["prism:drill"] == plan.run_id
    phases = {p.name: p.seconds for p in record.phases}
    stand_up = "stand up (DB restore 1200 s, host 120 s, tunnel 30 s; DB and host in parallel)"
    assert list(phases) == [stand_up, "/ready through the hostname", "verified", "destroyed"]
    # RTO = max(DB, host + tunnel) + the wait for /ready + verification.
    assert phases[stand_up] == 1200
    expected = 1200 + phases["/ready through the hostname"] + phases["verified"]
    assert record.rto_seconds == pytest.approx(expected, abs=0.01)
    assert "first touch of the restored storage" in record.notes
    assert _check(outcome, "ready_via_hostname").status == Status.PASS
    assert _check(outcome, "app_ready").status == Status.PASS  # through the hostname
    assert _check(outcome, "teardown").status == Status.PASS
    assert record.environment == "aws-prod"
    assert record.rto_kind == RtoKind.AWS
    assert record.backup_point == plan.restore_point
    assert record.completed_by == plan.actor
    assert record.cost_estimate.startswith("$")
    md, js = outcome.record_paths
    assert md.exists() and js.exists() and outcome.log_path.exists()
    text = md.read_text() + js.read_text()
    assert pg_cluster.password not in text
    assert not any(value in text for value in SECRETS.values())
    assert json.loads(js.read_text())["result"] == "passed"


def test_a_failed_verification_is_a_failed_record_and_the_stack_goes(
    plan, module_plan, pg_cluster, fresh_db
):
    empty = StandinStack(pg_cluster, fresh_db.rsplit("/", 1)[1].split("?")[0])
    engine = FakeStackEngine(project_dir=module_plan[1], local=empty, offline=False)
    outcome = drill(plan, engine, pg_cluster)
    assert outcome.record.result == Result.FAILED
    assert "failed checks" in outcome.record.notes
    assert outcome.record.rto_seconds is None
    assert engine.left() == {} and empty.running() == []
    assert outcome.record_paths[0].exists()


def test_an_exception_during_up_is_recorded_and_destroyed(plan, engine, pg_cluster):
    engine.fail_up = EngineError("pulumi failed on stack: AccessDenied creating the instance")
    outcome = drill(plan, engine, pg_cluster)
    # The environment gave out, not the backup: an error, with the reason.
    assert outcome.record.result == Result.ERROR
    assert "AccessDenied" in outcome.record.error
    assert _check(outcome, "stand_up").status == Status.FAIL
    assert "AccessDenied" in _check(outcome, "stand_up").detail
    assert ("destroy", plan.stack_name) in engine.calls
    assert ("refresh", plan.stack_name) not in engine.calls  # a failed up leaves nothing pending
    assert engine.left() == {}


def test_a_partial_up_is_destroyed_whole(plan, engine, pg_cluster):
    engine.fail_up = EngineError("pulumi failed on stack: quota exceeded")
    engine.created_before_failure = 2
    outcome = drill(plan, engine, pg_cluster)
    assert outcome.record.result == Result.ERROR
    assert engine.left() == {}
    assert _check(outcome, "teardown").status == Status.PASS


def test_a_destroy_that_fails_once_is_retried(plan, engine, pg_cluster):
    engine.destroy_errors = [EngineError("pulumi failed: RequestLimitExceeded")]
    outcome = drill(plan, engine, pg_cluster)
    assert outcome.record.result == Result.PASSED
    assert [c for c, _ in engine.calls].count("destroy") == 2
    assert "destroy 1 failed" in _check(outcome, "teardown").detail
    assert engine.left() == {}


def test_a_lock_on_destroy_is_cancelled_then_destroyed(plan, engine, pg_cluster):
    engine.lock_on_destroy = True
    outcome = drill(plan, engine, pg_cluster)
    calls = [c for c, _ in engine.calls]
    assert calls[-3:] == ["destroy", "cancel", "destroy"]
    assert "stack locked" in _check(outcome, "teardown").detail
    assert outcome.record.result == Result.PASSED
    assert engine.left() == {}


def test_a_destroy_that_keeps_failing_fails_the_drill_and_says_how_to_reap(
    plan, engine, pg_cluster
):
    engine.destroy_errors = [EngineError("pulumi failed: boom")] * 3
    outcome = drill(plan, engine, pg_cluster)
    assert outcome.record.result == Result.FAILED
    detail = _check(outcome, "teardown").detail
    assert "NOT destroyed" in detail and "prism-dr drill reap" in detail
    assert plan.stack_name in engine.left()


def test_an_unexpected_error_while_verifying_is_recorded_and_torn_down(plan, engine, pg_cluster):
    class Broken:
        def open(self, outputs):
            raise RuntimeError("credentials helper crashed")

    outcome = drill(plan, engine, pg_cluster, access=Broken())
    assert outcome.record.result == Result.ERROR
    assert "RuntimeError: credentials helper crashed" in _check(outcome, "drill").detail
    assert engine.left() == {}


def test_keep_leaves_the_stack_up_with_its_expiry(plan, engine, stack, pg_cluster):
    outcome = drill(replace(plan, keep=True), engine, pg_cluster)
    assert outcome.kept_stack == plan.stack_name
    assert ("destroy", plan.stack_name) not in engine.calls
    assert (
        engine.stacks[plan.stack_name].config["prism-infra:drillExpiresAt"]
        == "2026-12-02T07:00:00Z"
    )
    assert "kept" in outcome.record.notes
    engine.destroy(plan.stack_name)


def test_teardown_after_an_interrupted_up_refreshes_first():
    engine = FakeStackEngine(offline=False)
    engine.stacks["drill-x"] = __import__("tests.fakes.engine", fromlist=["StackState"]).StackState(
        pending=["urn:a"]
    )
    result = teardown(engine, "drill-x", after_interrupted_up=True, backoff=0)
    assert result.destroyed
    assert [c for c, _ in engine.calls] == ["refresh", "destroy"]
    assert engine.left() == {}


def test_teardown_cancels_a_lock_held_by_the_interrupted_up():
    class Locked(FakeStackEngine):
        def refresh(self, stack, *, clear_pending_creates=True):
            if self.lock_on_destroy:
                self.calls.append(("refresh", stack))
                raise ConcurrentUpdate("locked")
            super().refresh(stack, clear_pending_creates=clear_pending_creates)

    engine = Locked(offline=False, lock_on_destroy=True)
    from tests.fakes.engine import StackState

    engine.stacks["drill-y"] = StackState(pending=["urn:b"])
    result = teardown(engine, "drill-y", after_interrupted_up=True, backoff=0)
    assert result.destroyed
    assert [c for c, _ in engine.calls] == ["refresh", "cancel", "refresh", "destroy"]


def test_the_bench_run_records_the_simulated_rto(pg_cluster, restored, tmp_path):
    from bench.aws_drill import one_run

    run = one_run(pg_cluster, restored, tmp_path, Tier.QUICK)
    assert run["result"] == "passed"
    assert run["simulated_provisioning_seconds"] == 1200
    assert run["recorded_rto_seconds"] == pytest.approx(run["expected_rto_seconds"], abs=0.01)
    assert run["left_behind"] == {}


def test_a_host_that_never_gets_ready_fails_the_drill_and_goes(plan, engine, pg_cluster):
    outcome = drill(plan, engine, pg_cluster, get=lambda url: 503, ready_timeout=0.2)
    ready = _check(outcome, "ready_via_hostname")
    assert ready.status == Status.FAIL and "503" in ready.detail
    assert outcome.record.result == Result.FAILED
    assert engine.left() == {}


def test_the_smoke_command_runs_against_the_drill_hostname(plan, engine, pg_cluster):
    import sys

    probe = "import os,urllib.request as u; u.urlopen(os.environ['BASE_URL'] + '/health')"
    cmd = f'{sys.executable} -c "{probe}"'
    outcome = drill(plan, engine, pg_cluster, smoke_cmd=cmd)
    assert _check(outcome, "smoke_cmd").status == Status.PASS
    assert outcome.record.result == Result.PASSED


def test_a_display_that_breaks_never_stops_the_teardown(plan, engine, pg_cluster):
    class Broken:
        def phase_started(self, name):
            raise RuntimeError("Only one live display may be active at once")

        phase_finished = check_finished = phase_started

    outcome = drill(plan, engine, pg_cluster, observer=Broken())
    assert engine.left() == {}
    assert outcome.record_paths[0].exists()
