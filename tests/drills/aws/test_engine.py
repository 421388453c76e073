"""The Automation API adapter's event handling, fed with the SDK's own event objects (the
adapter itself needs the Pulumi CLI and a backend, which this machine does not have)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from pulumi.automation import events as ev

from recovery.engine import (
    AutomationEngine,
    DurationTracker,
    EngineError,
    EventKind,
    default_backend,
    translate_event,
)

_URN = "urn:pulumi:drill-1::prism-infra::"
URN_DB = _URN + "prism:infra:PrismDatabase$aws:rds/instance:Instance::database-instance"
URN_HOST = _URN + "prism:infra:ApiHost$aws:ec2/instance:Instance::api-host-instance"
T0 = 1_795_000_000


def _meta(urn: str, type_: str, op=ev.OpType.CREATE) -> ev.StepEventMetadata:
    return ev.StepEventMetadata(
        op=op,
        urn=urn,
        type=type_,
        provider="urn:pulumi:drill-1::prism-infra::pulumi:providers:aws::default",
    )


def pre(urn, type_, at, seq=0):
    return ev.EngineEvent(
        sequence=seq, timestamp=at, resource_pre_event=ev.ResourcePreEvent(_meta(urn, type_))
    )


def done(urn, type_, at, seq=0):
    return ev.EngineEvent(
        sequence=seq, timestamp=at, res_outputs_event=ev.ResOutputsEvent(_meta(urn, type_))
    )


def failed(urn, type_, at, seq=0):
    return ev.EngineEvent(
        sequence=seq,
        timestamp=at,
        res_op_failed_event=ev.ResOpFailedEvent(_meta(urn, type_), status=1, steps=1),
    )


def test_resource_events_translate_with_whole_second_utc_times():
    event = translate_event(pre(URN_DB, "aws:rds/instance:Instance", T0))
    assert event is not None
    assert event.kind == EventKind.STARTED and event.op == "create"
    assert event.name == "database-instance" and event.type == "aws:rds/instance:Instance"
    assert event.at == datetime.fromtimestamp(T0, tz=UTC)
    assert translate_event(done(URN_DB, "aws:rds/instance:Instance", T0)).kind == EventKind.DONE
    assert translate_event(failed(URN_DB, "aws:rds/instance:Instance", T0)).kind == EventKind.FAILED


def test_other_events_and_the_stack_itself_are_ignored():
    diag = ev.EngineEvent(
        sequence=1,
        timestamp=T0,
        diagnostic_event=ev.DiagnosticEvent(
            message="warning: x", color="never", severity="warning"
        ),
    )
    assert translate_event(diag) is None
    assert (
        translate_event(
            pre(
                "urn:pulumi:drill-1::prism-infra::pulumi:pulumi:Stack::prism-infra-drill-1",
                "pulumi:pulumi:Stack",
                T0,
            )
        )
        is None
    )


def test_durations_from_pre_to_outputs_or_failure_across_worker_threads():
    seen = []
    tracker = DurationTracker(seen.append)
    db, host = "aws:rds/instance:Instance", "aws:ec2/instance:Instance"
    tracker.raw(pre(URN_DB, db, T0))
    tracker.raw(pre(URN_HOST, host, T0 + 2))
    # The SDK calls on_event from its own threads; completions may interleave.
    threads = [
        threading.Thread(target=tracker.raw, args=(failed(URN_HOST, host, T0 + 125),)),
        threading.Thread(target=tracker.raw, args=(done(URN_DB, db, T0 + 1201),)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.durations == {URN_DB: 1201.0, URN_HOST: 123.0}
    assert len(seen) == 4
    # A completion without its start (e.g. an event lost before a restart) has no duration.
    tracker.raw(done("urn:x::y::z", "t", T0))
    assert "urn:x::y::z" not in tracker.durations


def test_the_file_backend_needs_a_passphrase(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    with pytest.raises(EngineError, match="PULUMI_CONFIG_PASSPHRASE"):
        AutomationEngine("prism-infra")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(tmp_path / "pass"))
    engine = AutomationEngine("prism-infra")
    assert engine.backend == f"file://{tmp_path}/.pulumi-prism"
    assert (tmp_path / ".pulumi-prism").is_dir()


def test_the_backend_comes_from_pulumi_backend_url():
    assert default_backend({"PULUMI_BACKEND_URL": "s3://prism-state"}) == "s3://prism-state"


def test_interrupt_sends_the_cli_its_ctrl_c(monkeypatch, tmp_path):
    """The Automation API forwards no signal to the CLI it started: the adapter finds its
    `pulumi` child and sends SIGINT, the CLI's graceful cancel. A stand-in `pulumi` (a script
    of that name, so the kernel names the process so) notes what it receives."""
    import signal
    import subprocess
    import sys
    import time

    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-only")
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path}/state")
    got = tmp_path / "got"
    cli = tmp_path / "pulumi"
    cli.write_text(
        f"#!{sys.executable}\n"
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGINT, lambda n, f: (open({str(got)!r}, 'w').write(str(n)), "
        "sys.exit(0)))\n"
        f"open({str(got)!r} + '.up', 'w').close()\n"
        "time.sleep(30)\n"
    )
    cli.chmod(0o755)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    child = subprocess.Popen([str(cli)])
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "got.up").exists():  # its handler is in place
            assert time.monotonic() < deadline
            time.sleep(0.02)
        AutomationEngine("prism-infra").interrupt("drill-1")
        assert child.wait(timeout=10) == 0
        assert got.read_text() == str(int(signal.SIGINT))
        assert other.poll() is None  # only the CLI is signalled
    finally:
        for proc in (child, other):
            proc.kill()
            proc.wait()
