"""The drill's teardown decisions, one at a time, against a scripted StackEngine (what the
Automation API adapter raises: ConcurrentUpdate on a held lock, EngineError on a failed
operation, recovery/engine.py): retries and their backoff, lock cancels, the refresh after an
interrupted up, the host destroyed before the tunnel; and what the post-teardown sweep
reports. The whole drill through the fake engine is tests/drills/aws/test_runner.py."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from drills.aws.runner import HOST_TYPE, SweepReport, _sweep, teardown
from drills.verify.model import Status
from recovery.cloudflare import CloudflareError, drill_tunnel_name
from recovery.engine import ConcurrentUpdate, EngineError

STACK = "drill-20261202-010000"
HOST = f"urn:pulumi:{STACK}::prism-infra::prism:infra:ApiHost${HOST_TYPE}::api-host"
DB = f"urn:pulumi:{STACK}::prism-infra::aws:rds/instance:Instance::database"


class Scripted:
    """Each operation raises the next error scripted for it, then succeeds."""

    def __init__(self, **errors: Sequence[Exception]) -> None:
        self.errors = {op: list(found) for op, found in errors.items()}
        self.calls: list[tuple] = []
        self.held = [(HOST, HOST_TYPE), (DB, "aws:rds/instance:Instance")]

    def _next(self, op: str) -> None:
        if self.errors.get(op):
            raise self.errors[op].pop(0)

    def refresh(self, stack, *, clear_pending_creates=True):
        self.calls.append(("refresh", stack, clear_pending_creates))
        self._next("refresh")

    def cancel(self, stack):
        self.calls.append(("cancel", stack))
        self._next("cancel")

    def resources(self, stack):
        return list(self.held) if stack == STACK else []

    def destroy(self, stack, *, remove=True, on_event=None, targets=None):
        self.calls.append(("destroy", stack, remove, tuple(targets or ())))
        self._next("destroy-targets" if targets else "destroy")


class Tunnels:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple] = []

    def tunnels_named(self, account_id, name):
        self.calls.append(("named", account_id, name))
        if self.fail:
            raise CloudflareError("Cloudflare /cfd_tunnel: 500")
        return ["t-1"]

    def clean_connections(self, account_id, tunnel_id):
        self.calls.append(("clean", account_id, tunnel_id))


def run(engine, **kwargs):
    sleeps: list[float] = []
    ticks = iter(range(100, 1000, 5))  # a clock that does not start at zero
    kwargs.setdefault("after_interrupted_up", False)
    result = teardown(
        engine, STACK, backoff=30.0, clock=lambda: float(next(ticks)), sleep=sleeps.append,
        **kwargs,
    )
    return result, sleeps


def test_a_clean_destroy_removes_the_stack_once():
    engine = Scripted()
    result, sleeps = run(engine)
    assert result.destroyed and sleeps == []
    assert engine.calls == [("destroy", STACK, True, ())]
    assert result.notes == [f"stack {STACK} destroyed and removed"]
    assert result.seconds == 5.0  # from the clock: one tick between start and end


def test_a_failed_destroy_is_retried_after_the_backoff_until_it_goes():
    engine = Scripted(destroy=[EngineError("throttled"), EngineError("throttled")])
    result, sleeps = run(engine)
    assert result.destroyed
    assert sleeps == [30.0, 30.0]
    assert [c[0] for c in engine.calls] == ["destroy"] * 3
    assert result.notes[:2] == ["destroy 1 failed: throttled", "destroy 2 failed: throttled"]


def test_a_destroy_that_keeps_failing_stops_after_its_attempts_and_says_how_to_reap():
    engine = Scripted(destroy=[EngineError("AccessDenied")] * 5)
    result, sleeps = run(engine, attempts=3)
    assert result.destroyed is False
    assert result.seconds == 5.0  # the clock's, as when it succeeds
    assert len([c for c in engine.calls if c[0] == "destroy"]) == 3
    assert sleeps == [30.0, 30.0]  # none after the last attempt
    assert result.notes[-1] == (
        f"stack {STACK} NOT destroyed: run `prism-dr drill reap --run 20261202-010000 --yes` "
        f"or `pulumi destroy -s {STACK}`"
    )


def test_a_locked_stack_is_cancelled_then_destroyed_without_waiting():
    engine = Scripted(destroy=[ConcurrentUpdate("locked")])
    result, sleeps = run(engine)
    assert result.destroyed and sleeps == []
    assert engine.calls == [
        ("destroy", STACK, True, ()),
        ("cancel", STACK),
        ("destroy", STACK, True, ()),
    ]
    assert result.notes[0] == "destroy 1: stack locked; cancelled the update under way"


def test_a_cancel_that_fails_is_noted_and_the_destroy_still_retried():
    engine = Scripted(destroy=[ConcurrentUpdate("locked")], cancel=[EngineError("no CLI")])
    result, _ = run(engine)
    assert result.destroyed
    assert "cancel failed: no CLI" in result.notes


def test_after_an_interrupted_up_the_state_is_refreshed_first_dropping_pending_creates():
    engine = Scripted()
    result, _ = run(engine, after_interrupted_up=True)
    assert engine.calls == [("refresh", STACK, True), ("destroy", STACK, True, ())]
    assert result.notes[0] == "refreshed after the interrupted up"


def test_a_refresh_blocked_by_the_interrupted_ups_lock_cancels_it_and_refreshes_again():
    engine = Scripted(refresh=[ConcurrentUpdate("locked")])
    result, _ = run(engine, after_interrupted_up=True)
    assert engine.calls == [
        ("refresh", STACK, True),
        ("cancel", STACK),
        ("refresh", STACK, True),  # the pending creates are still dropped
        ("destroy", STACK, True, ()),
    ]
    assert result.destroyed
    assert result.notes[0] == "the interrupted up still held the lock: cancelled it"


def test_a_cancel_that_fails_after_a_locked_refresh_is_noted_and_the_destroy_tried():
    engine = Scripted(refresh=[ConcurrentUpdate("locked")], cancel=[EngineError("no CLI")])
    result, _ = run(engine, after_interrupted_up=True)
    assert result.destroyed
    assert result.notes[:2] == [
        "the interrupted up still held the lock: cancelled it",
        "cancel failed: no CLI",
    ]


@pytest.mark.parametrize("locked", [True, False])
def test_a_refresh_that_fails_is_noted_and_the_destroy_goes_ahead(locked):
    errors = [ConcurrentUpdate("locked"), EngineError("gone")] if locked else [EngineError("gone")]
    engine = Scripted(refresh=errors)
    result, _ = run(engine, after_interrupted_up=True)
    assert result.destroyed and "refresh failed: gone" in result.notes


def test_the_host_goes_before_the_tunnel_whose_connections_are_cleaned():
    engine, tunnels = Scripted(), Tunnels()
    result, _ = run(engine, tunnels=tunnels, account_id="acct")
    assert engine.calls == [("destroy", STACK, False, (HOST,)), ("destroy", STACK, True, ())]
    assert tunnels.calls == [
        ("named", "acct", drill_tunnel_name(STACK)),
        ("clean", "acct", "t-1"),
    ]
    assert result.notes[:2] == [
        "the host destroyed before the tunnel",
        "the tunnel's connections cleaned",
    ]


def test_without_a_host_or_an_account_nothing_is_targeted():
    engine, tunnels = Scripted(), Tunnels()
    engine.held = [(DB, "aws:rds/instance:Instance")]
    run(engine, tunnels=tunnels, account_id="acct")
    assert [c for c in engine.calls if c[3]] == []  # no targeted destroy: no host left
    assert tunnels.calls  # the tunnel's connections still cleaned
    engine, tunnels = Scripted(), Tunnels()
    run(engine, tunnels=tunnels, account_id=None)  # the tunnel was off
    assert engine.calls == [("destroy", STACK, True, ())] and tunnels.calls == []


def test_a_cloudflare_failure_while_cleaning_is_noted_and_the_destroy_tried():
    engine, tunnels = Scripted(), Tunnels(fail=True)
    result, _ = run(engine, tunnels=tunnels, account_id="acct")
    assert result.destroyed
    assert "cleaning the tunnel's connections failed: Cloudflare /cfd_tunnel: 500" in result.notes


def test_a_long_cloudflare_error_is_cut_in_the_notes():
    engine, tunnels = Scripted(), Tunnels(fail=True)
    tunnels.tunnels_named = lambda account_id, name: (_ for _ in ()).throw(
        CloudflareError("e" * 500)
    )
    result, _ = run(engine, tunnels=tunnels, account_id="acct")
    assert "cleaning the tunnel's connections failed: " + "e" * 200 in result.notes


def test_a_targeted_host_destroy_that_fails_is_retried_like_the_rest():
    engine, tunnels = Scripted(**{"destroy-targets": [EngineError("host busy")]}), Tunnels()
    result, sleeps = run(engine, tunnels=tunnels, account_id="acct")
    assert result.destroyed and sleeps == [30.0]
    assert "destroy 1 failed: host busy" in result.notes


# --- the sweep's report ---------------------------------------------------------------------------


def test_a_sweep_that_found_nothing_passes_saying_so():
    check = SweepReport().check()
    assert (check.name, check.status) == ("sweep", Status.PASS)
    assert check.detail == "nothing tagged with this run was left"


def test_a_sweep_that_removed_leftovers_passes_and_lists_them():
    report = SweepReport(
        [("ec2:instance i-1", "deleted"), ("rds:db x", "left: not expired")], seconds=1.23456
    )
    check = report.check()
    assert check.seconds == 1.235
    assert check.status == Status.PASS and report.failed == []
    assert check.detail == "ec2:instance i-1: deleted; rds:db x: left: not expired"


def test_a_sweep_that_could_not_remove_something_fails():
    report = SweepReport([("ec2:instance i-1", "deleted"), ("rds:db x", "failed: busy")])
    assert report.failed == ["rds:db x"] and report.check().status == Status.FAIL


def test_a_long_sweep_report_is_cut_to_fit_the_record():
    report = SweepReport([(f"ssm:parameter /p/{i}", "deleted") for i in range(200)])
    assert len(report.check().detail) == 2000


def test_a_sweep_that_raises_is_a_failed_sweep_not_a_lost_record():
    ticks = iter([10.0, 12.5])

    def broken(run_id):
        raise RuntimeError(f"tagging API down while sweeping {run_id}" + " …" * 200)

    report = _sweep(broken, "20261202-010000", lambda: next(ticks))
    said = "tagging API down while sweeping 20261202-010000" + " …" * 200
    assert report.found == [("sweep", f"failed: RuntimeError: {said[:200]}")]
    assert report.seconds == 2.5 and report.check().status == Status.FAIL
