"""The AWS drill end to end through a fake StackEngine that stands up local equivalents
(tests/fakes/engine.py): the real program (under mocks), verification, record, teardown and
sweep, with provider durations on the simulated clock the runner reads; then every fault
the teardown must survive, and interrupted ups that leave resources only the sweep finds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import psycopg
import pytest

from drills.aws import reaper
from drills.aws.forward import Direct
from drills.aws.reaper import CloudflareScope, drill_sweep
from drills.aws.runner import SweepReport, run_aws_drill, teardown
from drills.record import Result, RtoKind
from drills.verify import app
from drills.verify.model import Status, Tier
from infra.boot import APP_ROLE
from recovery.app_role import ensure_app_role
from recovery.engine import ConcurrentUpdate, EngineError
from tests.drills.aws.conftest import ACCOUNT, SECRETS, ZONE, resolved_plan
from tests.drills.aws.runner_support import (
    APP_SECRET_ARN,
    StandinStack,
    access_for,
    http_url,
)
from tests.fakes.cloud import MotoCloud
from tests.fakes.engine import FakeStackEngine

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
PROD_APP_PASSWORD = "Prod0app0password0the0backup0carries00"


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


@pytest.fixture(autouse=True)
def account(moto):
    """The sweep asks moto (an empty account per test) for what the run tagged."""
    return moto


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
    kwargs.setdefault("access", access_for(pg_cluster, engine.local))
    kwargs.setdefault("ready_timeout", 5)
    kwargs.setdefault("tunnels", engine.cloud.cloudflare)
    kwargs.setdefault("sweep", sweep_of(plan, engine))
    return run_aws_drill(
        plan,
        engine,
        secrets=SECRETS,
        base_url=http_url,
        ready_interval=0.05,
        destroy_backoff=0,
        **kwargs,
    )


def sweep_of(plan, engine):
    """The drill's own sweep (drills/aws/reaper.py) over moto and the fake's Cloudflare."""
    scope = CloudflareScope(ACCOUNT, ZONE, plan.hostname)
    return drill_sweep([plan.region], boto3_clients, engine.cloud.cloudflare, scope)


def boto3_clients(service, region):
    return boto3.client(service, region_name=region)


def tagged(run_id):
    """What moto holds tagged with the run, by the tagging API the sweep does not share."""
    tagging = boto3.client("resourcegroupstaggingapi", region_name="us-east-1")
    found = tagging.get_resources(TagFilters=[{"Key": "prism:drill", "Values": [run_id]}])
    arns = [r["ResourceARN"] for r in found["ResourceTagMappingList"]]
    ec2 = boto3.client("ec2", region_name="us-east-1")
    live = []
    for arn in arns:  # a terminated instance stays listed for a while, as on AWS
        if ":instance/" in arn:
            state = ec2.describe_instances(InstanceIds=[arn.rsplit("/", 1)[1]])
            if state["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated":
                continue
        live.append(arn)
    return live


def _check(outcome, name):
    return next(c for c in outcome.record.checks if c.name == name)


def test_a_drill_stands_up_verifies_records_and_tears_down(plan, engine, stack, pg_cluster):
    engine.offline = True
    # The drill began (its plan) 7 s before the runner started: the RTO counts them.
    started = engine.clock() - 7
    outcome = drill(plan, engine, pg_cluster, clock=engine.clock, started=started)
    record = outcome.record
    assert record.result == Result.PASSED, record.notes
    assert engine.left() == {} and stack.running() == [] and engine.cloud.live() == []
    assert engine.cloud.cloudflare.live() == {"tunnels": [], "records": []}
    # The host (cloudflared) goes first, then the tunnel's connections, then the rest.
    assert [c for c, _ in engine.calls] == ["up", "destroy-targets", "destroy"]
    assert ("clean_connections", next(iter(engine.cloud.cloudflare.tunnels))) in (
        engine.cloud.cloudflare.calls
    )
    # The program the engine ran is the drill's: a restored instance, tagged with the id.
    [db] = engine.runs[plan.stack_name].of_type("aws:rds/instance:Instance")
    assert db.inputs["tags"]["prism:drill"] == plan.run_id
    phases = {p.name: p.seconds for p in record.phases}
    stand_up = "stand up (DB restore 1200 s, host 120 s, tunnel 30 s; DB and host in parallel)"
    assert list(phases) == [
        stand_up,
        "application role",
        "/ready through the hostname",
        "verified",
        "destroyed",
        "swept",
    ]
    # The phases and the RTO are the clock's: the engine advanced it by the restore.
    assert 1200 <= phases[stand_up] < 1200 + 30
    assert record.rto_seconds == pytest.approx(
        7 + phases[stand_up] + phases["application role"] + phases["/ready through the hostname"],
        abs=0.5,
    )
    assert _check(outcome, "sweep").detail == "nothing tagged with this run was left"
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
    assert [c for c, _ in engine.calls].count("destroy-targets") == 2
    assert "destroy 1 failed" in _check(outcome, "teardown").detail
    assert engine.left() == {}


def test_a_lock_on_destroy_is_cancelled_then_destroyed(plan, engine, pg_cluster):
    engine.lock_on_destroy = True
    outcome = drill(plan, engine, pg_cluster)
    calls = [c for c, _ in engine.calls]
    assert calls[-4:] == ["destroy-targets", "cancel", "destroy-targets", "destroy"]
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


def test_an_unexpected_error_reaching_the_database_is_recorded_and_torn_down(
    plan, engine, pg_cluster
):
    class Broken:
        def credentials(self, arn):
            return "prism_api", "x"

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
    assert "sweep" not in [c.name for c in outcome.record.checks]  # nothing swept: kept
    assert teardown(
        engine,
        plan.stack_name,
        after_interrupted_up=False,
        backoff=0,
        tunnels=engine.cloud.cloudflare,
        account_id=ACCOUNT,
    ).destroyed


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
    # The bench's own probe read the clock at the first /ready 200.
    assert run["recorded_rto_seconds"] == pytest.approx(run["clock_rto_seconds"], abs=0.5)
    assert run["recorded_rto_seconds"] >= 1200
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


def _signal_self():
    """Runs inside the engine's up (its worker thread): the signal reaches the main thread."""
    os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_during_up_asks_one_graceful_cancel_and_leaves_nothing(plan, engine, pg_cluster):
    engine.hold_up, engine.during_up = True, _signal_self
    outcome = drill(plan, engine, pg_cluster)
    assert outcome.interrupted == signal.SIGTERM
    assert engine.interrupts == 1  # one graceful cancel, never the second that orphans
    assert [c for c, _ in engine.calls] == [
        "up",
        "interrupt",
        "refresh",
        "destroy-targets",
        "destroy",
    ]
    assert outcome.record.result == Result.ERROR
    assert outcome.record.error == "interrupted by SIGTERM"
    assert "asked the engine for a graceful cancel" in outcome.record.notes
    assert engine.left() == {} and engine.cloud.live() == []
    assert engine.cloud.cloudflare.live() == {"tunnels": [], "records": []}
    assert _check(outcome, "teardown").status == Status.PASS


@pytest.fixture
def quick_reaper(monkeypatch):
    # moto changes state on the next describe: the waiters need not sleep between polls.
    monkeypatch.setattr(reaper, "INSTANCE_WAIT", {"Delay": 0, "MaxAttempts": 5})
    monkeypatch.setattr(reaper, "DB_WAIT", {"Delay": 0, "MaxAttempts": 5})


@pytest.mark.parametrize("swept", [True, False])
def test_a_cancel_that_outlasts_its_wait_orphans_and_only_the_sweep_removes_them(
    plan, module_plan, stack, pg_cluster, quick_reaper, swept
):
    # An RDS restore in flight outlives the graceful cancel: the drill terminates the CLI,
    # the creates stay pending, refresh --clear-pending-creates forgets them, and the destroy
    # does not know them. The resources are on moto, tagged as the program tags them.
    cloud = MotoCloud()
    engine = FakeStackEngine(
        project_dir=module_plan[1],
        local=stack,
        offline=False,
        cloud=cloud,
        hold_up=True,
        during_up=_signal_self,
        cancel_outlasts=30,
    )
    kwargs = {} if swept else {"sweep": lambda run_id: SweepReport()}
    outcome = drill(plan, engine, pg_cluster, cancel_wait=0.2, **kwargs)
    assert engine.interrupts == 2
    assert "terminated the engine" in outcome.record.notes
    assert engine.left() == {}  # the state forgot them ...
    if not swept:  # ... and without the sweep they would stay in the account
        assert len(tagged(plan.run_id)) == 4
        assert cloud.cloudflare.live()["tunnels"] == [f"prism-{plan.stack_name}-api"]
        return
    assert tagged(plan.run_id) == []
    assert cloud.cloudflare.live() == {"tunnels": [], "records": []}
    sweep = _check(outcome, "sweep")
    assert sweep.status == Status.PASS
    for kind in ("ec2:instance", "rds:db", "ec2:security-group", "ssm:parameter"):
        assert f"{kind} " in sweep.detail
    assert "cloudflare:tunnel" in sweep.detail and "cloudflare:dns" in sweep.detail
    assert "failed" not in sweep.detail


def test_a_sweep_that_fails_fails_the_drill_but_keeps_the_record(plan, engine, pg_cluster):
    def broken(run_id):
        raise RuntimeError("AccessDenied on tag:GetResources")

    outcome = drill(plan, engine, pg_cluster, sweep=broken)
    assert _check(outcome, "sweep").status == Status.FAIL
    assert "AccessDenied" in _check(outcome, "sweep").detail
    assert outcome.record.result == Result.FAILED
    assert outcome.record_paths[0].exists()


# --- the API's application role on the restored instance -----------------------------------------


def _logs_in(pg_cluster, database: str, password: str) -> bool:
    dsn = psycopg.conninfo.make_conninfo(
        pg_cluster.dsn(database), user=APP_ROLE, password=password
    )
    try:
        psycopg.connect(dsn).close()
    except psycopg.OperationalError:
        return False
    return True


def test_the_api_logs_in_with_the_drill_stacks_password_not_the_backups(
    plan, engine, stack, pg_cluster, restored
):
    with psycopg.connect(pg_cluster.dsn(restored), autocommit=True) as master:
        ensure_app_role(master, APP_ROLE, PROD_APP_PASSWORD)  # prod's, as the backup holds it
    outcome = drill(plan, engine, pg_cluster)
    assert outcome.record.result == Result.PASSED, outcome.record.notes
    check = _check(outcome, "app_role")
    assert (check.status, check.detail) == (Status.PASS, f"{APP_ROLE}: password set; it logs in")
    assert _check(outcome, "ready_via_hostname").status == Status.PASS
    assert _logs_in(pg_cluster, restored, stack.app_password)
    assert not _logs_in(pg_cluster, restored, PROD_APP_PASSWORD)
    text = "".join(path.read_text() for path in outcome.record_paths)
    assert stack.app_password not in text and PROD_APP_PASSWORD not in text


@pytest.fixture
def unready_api_gives_up(monkeypatch):
    """The API of these drills never gets ready: its checks stop waiting after a second."""
    monkeypatch.setattr(app, "READY_TIMEOUT_SECONDS", 1.0)


@pytest.mark.usefixtures("unready_api_gives_up")
def test_a_password_other_than_the_stacks_leaves_the_api_unready(plan, engine, pg_cluster):
    """The runner must read the drill stack's own secret: set from any other (prod's, say),
    the role logs in with it, but the API, which reads the stack's, never gets ready."""

    def credentials(arn):
        if arn == APP_SECRET_ARN:
            return APP_ROLE, PROD_APP_PASSWORD
        return pg_cluster.user, pg_cluster.password

    access = Direct(credentials, sslmode="disable")
    outcome = drill(plan, engine, pg_cluster, access=access, ready_timeout=1)
    assert _check(outcome, "app_role").status == Status.PASS
    assert _check(outcome, "ready_via_hostname").status == Status.FAIL
    assert outcome.record.result == Result.FAILED
    assert engine.left() == {}


@pytest.mark.usefixtures("unready_api_gives_up")
def test_a_stack_without_an_application_secret_fails_and_goes(
    plan, module_plan, pg_cluster, restored
):
    class NoAppSecret(StandinStack):
        def start(self, stack):
            outputs = super().start(stack)
            del outputs["dbAppSecretArn"]
            return outputs

    local = NoAppSecret(pg_cluster, restored)
    engine = FakeStackEngine(project_dir=module_plan[1], local=local, offline=False)
    outcome = drill(plan, engine, pg_cluster, ready_timeout=1)
    check = _check(outcome, "app_role")
    assert check.status == Status.FAIL and "exports no dbAppSecretArn" in check.detail
    assert outcome.record.result == Result.FAILED
    assert engine.left() == {} and local.running() == []


@pytest.mark.usefixtures("unready_api_gives_up")
def test_a_backup_whose_role_has_too_much_fails_the_drill_and_goes(
    plan, engine, pg_cluster, restored
):
    with psycopg.connect(pg_cluster.dsn(restored), autocommit=True) as master:
        ensure_app_role(master, APP_ROLE, PROD_APP_PASSWORD)
        master.execute(f"ALTER ROLE {APP_ROLE} CREATEROLE")
        try:
            outcome = drill(plan, engine, pg_cluster, ready_timeout=1)
        finally:
            master.execute(f"ALTER ROLE {APP_ROLE} NOCREATEROLE")
    check = _check(outcome, "app_role")
    assert check.status == Status.FAIL
    assert "WrongState" in check.detail and "privileges the API must not have" in check.detail
    assert outcome.record.result == Result.FAILED
    assert engine.left() == {}
