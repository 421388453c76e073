"""The AWS drill: plan → up → wait for the host → verify → record → destroy → sweep.

The same guarantees as the local drill: the stack is destroyed on success, failure,
exception, SIGINT, SIGTERM and SIGHUP (unless `--keep`), and a drill that ran always leaves
its record, teardown outcome included. Teardown itself is not interrupted by a second
signal: it is deferred until the destroy has finished.

A signal during `up` never raises inside it (an exception there closes the CLI's pipes, and
a CLI killed by SIGPIPE never finishes its cancel): `up` runs in a worker thread, the signal
asks the engine for one graceful cancel and the drill waits for it, bounded; only past that
bound does it ask again, which terminates the CLI and may orphan in-flight creates. Pulumi's
`refresh --clear-pending-creates` then forgets those (it does not delete them), so after
every teardown the drill sweeps the account for everything tagged `prism:drill=<run id>`
and Cloudflare for the run's tunnel and DNS record (drills/aws/reaper.py: sweep_run), and
records what the sweep found and removed.

Clocks. RTO is read from the clock: drill start (the plan included) → the first `/ready`
200 through the hostname. The phases are spans of the same clock. Per-resource durations
from the engine's events (`resource_pre` → `res_outputs`) name the stand-up phase. The
first check's time is recorded apart: restored RDS storage loads lazily from S3.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from drills.aws.forward import DatabaseAccess, ForwardError, reset_app_role
from drills.aws.plan import AwsDrillPlan, cost_estimate
from drills.aws.program import drill_config, drill_program
from drills.observer import DrillObserver as Observer
from drills.observer import SilentObserver
from drills.record import (
    DrillRecord,
    Phase,
    Result,
    RtoKind,
    host_info,
    rebuild_log,
    tool_versions,
    write_record,
)
from drills.verify import VerifyTarget, load_manifest, verify
from drills.verify.model import CheckResult, Status
from drills.verify.smoke import probe, run_smoke_cmd, wait_ready
from infra.errors import PrismError
from recovery.cloudflare import CloudflareError, TunnelCleanup, drill_tunnel_name
from recovery.engine import (
    ConcurrentUpdate,
    EngineError,
    EventKind,
    OnEvent,
    Program,
    ResourceEvent,
    StackEngine,
    UpResult,
)
from recovery.redact import mask_dsn

READY_TIMEOUT = 30 * 60.0  # the host boots while the database restores; then /ready
READY_INTERVAL = 10.0
DESTROY_ATTEMPTS = 3  # a lock costs one (cancel, then destroy), a transient failure another
DESTROY_BACKOFF = 30.0
# A graceful cancel waits for the in-flight creates; an RDS restore can outlast any sensible
# wait, and GitHub kills a cancelled step 10 s after its SIGINT: the drill waits this long,
# then terminates the CLI (the sweep removes what that orphans).
CANCEL_WAIT = 5.0
TERMINATE_WAIT = 2.0

DB_TYPE = "aws:rds/instance:Instance"
HOST_TYPE = "aws:ec2/instance:Instance"
TUNNEL_PREFIX = "cloudflare:"


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signal.Signals(signum).name}")
        self.signum = signum


class UpInProgress:
    """While `up` runs in its worker thread, signals are noted here instead of raised."""

    def __init__(self) -> None:
        self.active = False
        self.received: list[int] = []


@contextlib.contextmanager
def signals_as_interrupt(up: UpInProgress | None = None) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise Interrupted, so `finally` tears the stack down;
    during `up` they are only noted (the waiting loop cancels the up)."""

    def _raise(signum: int, frame: Any) -> None:
        if up is not None and up.active:
            up.received.append(signum)
            return
        raise Interrupted(signum)

    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, _raise) for s in watched}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def signals_deferred(received: list[int]) -> Iterator[None]:
    """While the stack is destroyed, a signal is noted, not obeyed: a half-done destroy
    would leave exactly what the drill promises not to."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, lambda n, f: received.append(n)) for s in watched}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class EventLog:
    """Resource events from the engine (called from its worker threads)."""

    def __init__(self, forward: OnEvent | None = None) -> None:
        self._lock = threading.Lock()
        self.events: list[ResourceEvent] = []
        self._forward = forward

    def __call__(self, event: ResourceEvent) -> None:
        with self._lock:
            self.events.append(event)
        if self._forward is not None:
            self._forward(event)

    def span(self, match: Callable[[str], bool]) -> float | None:
        """Seconds from the first STARTED to the last DONE of the matching resource types."""
        with self._lock:
            chosen = [e for e in self.events if match(e.type)]
        starts = [e.at for e in chosen if e.kind == EventKind.STARTED]
        ends = [e.at for e in chosen if e.kind != EventKind.STARTED]
        if not starts or not ends:
            return None
        return max(0.0, (max(ends) - min(starts)).total_seconds())


@dataclass
class Teardown:
    destroyed: bool
    seconds: float
    notes: list[str] = field(default_factory=list)

    def check(self) -> CheckResult:
        return CheckResult(
            name="teardown",
            status=Status.PASS if self.destroyed else Status.FAIL,
            detail="; ".join(self.notes),
            seconds=round(self.seconds, 3),
        )


def teardown(
    engine: StackEngine,
    stack: str,
    *,
    after_interrupted_up: bool,
    attempts: int = DESTROY_ATTEMPTS,
    backoff: float = DESTROY_BACKOFF,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    tunnels: TunnelCleanup | None = None,
    account_id: str | None = None,
) -> Teardown:
    """Destroy and remove the stack: cancel a lock, refresh after an interrupted up (it
    drops the pending creates from the state; their resources are the sweep's), retry a
    failed destroy. With `tunnels`, the host goes first and the tunnel's connections are
    cleaned before the tunnel is deleted."""
    started = clock()
    notes: list[str] = []
    if after_interrupted_up:
        try:
            engine.refresh(stack, clear_pending_creates=True)
            notes.append("refreshed after the interrupted up")
        except ConcurrentUpdate:
            notes.append("the interrupted up still held the lock: cancelled it")
            _cancel(engine, stack, notes)
            try:
                engine.refresh(stack, clear_pending_creates=True)
            except EngineError as error:
                notes.append(f"refresh failed: {error}")
        except EngineError as error:
            notes.append(f"refresh failed: {error}")
    for attempt in range(1, attempts + 1):
        try:
            if tunnels is not None and account_id:
                _host_first(engine, stack, tunnels, account_id, notes)
            engine.destroy(stack, remove=True)
        except ConcurrentUpdate:
            notes.append(f"destroy {attempt}: stack locked; cancelled the update under way")
            _cancel(engine, stack, notes)
            continue
        except EngineError as error:
            notes.append(f"destroy {attempt} failed: {error}")
            if attempt < attempts:
                sleep(backoff)
            continue
        notes.append(f"stack {stack} destroyed and removed")
        return Teardown(True, clock() - started, notes)
    notes.append(
        f"stack {stack} NOT destroyed: run `prism-dr drill reap --run "
        f"{stack.removeprefix('drill-')} --yes` or `pulumi destroy -s {stack}`"
    )
    return Teardown(False, clock() - started, notes)


def _host_first(
    engine: StackEngine, stack: str, tunnels: TunnelCleanup, account_id: str, notes: list[str]
) -> None:
    """Cloudflare refuses to delete a tunnel with active connections, and nothing in the
    program makes the tunnel outlive the host (the host's runtime secrets need the tunnel's
    token parameter, which needs the secrets' key: a dependency would be a cycle). So the
    host (cloudflared) is destroyed first, then the tunnel's connections are cleaned."""
    hosts = [urn for urn, type_ in engine.resources(stack) if type_ == HOST_TYPE]
    if hosts:
        engine.destroy(stack, remove=False, targets=hosts)
        notes.append("the host destroyed before the tunnel")
    try:
        for tunnel_id in tunnels.tunnels_named(account_id, drill_tunnel_name(stack)):
            tunnels.clean_connections(account_id, tunnel_id)
            notes.append("the tunnel's connections cleaned")
    except CloudflareError as error:  # the destroy then fails on the tunnel, and is retried
        notes.append(f"cleaning the tunnel's connections failed: {str(error)[:200]}")


def _cancel(engine: StackEngine, stack: str, notes: list[str]) -> None:
    try:
        engine.cancel(stack)
    except EngineError as error:
        notes.append(f"cancel failed: {error}")


def run_up(
    engine: StackEngine,
    stack: str,
    program: Program,
    *,
    config: Mapping[str, str],
    tags: Mapping[str, str],
    on_event: OnEvent,
    guard: UpInProgress,
    notes: list[str],
    cancel_wait: float = CANCEL_WAIT,
    terminate_wait: float = TERMINATE_WAIT,
) -> UpResult:
    """`engine.up` in a worker thread. A signal noted by `guard` asks for one graceful
    cancel; past `cancel_wait` the CLI is terminated. Raises EngineError when the up failed
    or was cancelled, Interrupted once the up has ended (or could not be waited for)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = engine.up(stack, program, config=config, tags=tags, on_event=on_event)
        except BaseException as error:  # handed to the main thread
            box["error"] = error

    worker = threading.Thread(target=work, name="pulumi-up", daemon=True)
    guard.active = True
    try:
        worker.start()
        asked = 0
        deadline = float("inf")
        while worker.is_alive():
            worker.join(0.05)
            if guard.received and asked == 0:
                asked = 1
                engine.interrupt(stack)
                notes.append("asked the engine for a graceful cancel")
                deadline = time.monotonic() + cancel_wait
            elif asked == 1 and time.monotonic() > deadline:
                asked = 2
                engine.interrupt(stack)
                notes.append(
                    f"the cancel outlasted {cancel_wait:g} s: terminated the engine (in-flight "
                    "creates may be orphaned; the sweep removes them)"
                )
                deadline = time.monotonic() + terminate_wait
            elif asked == 2 and time.monotonic() > deadline:
                notes.append("the engine did not stop: left it running")
                break
    finally:
        guard.active = False
    if guard.received:
        raise Interrupted(guard.received[0])
    if "error" in box:
        raise box["error"]
    return box["result"]


@dataclass
class SweepReport:
    """What the sweep of one run found and did: (what, action) pairs."""

    found: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[str]:
        return [what for what, action in self.found if action.startswith("failed")]

    def check(self) -> CheckResult:
        if not self.found:
            detail = "nothing tagged with this run was left"
        else:
            detail = "; ".join(f"{what}: {action}" for what, action in self.found)
        return CheckResult(
            name="sweep",
            status=Status.FAIL if self.failed else Status.PASS,
            detail=detail[:2000],
            seconds=round(self.seconds, 3),
        )


Sweep = Callable[[str], SweepReport]
"""run id -> what was found tagged `prism:drill=<run id>` (and the run's tunnel and DNS
record) after the teardown, and removed."""


def _no_sweep(run_id: str) -> SweepReport:
    return SweepReport()


@dataclass
class AwsDrillOutcome:
    record: DrillRecord
    record_paths: tuple[Path, Path]
    log_path: Path
    outputs: dict[str, Any]
    kept_stack: str | None = None
    interrupted: int | None = None  # the signal that ended the drill early

    @property
    def passed(self) -> bool:
        return self.record.result == Result.PASSED


def https_url(hostname: str) -> str:
    return f"https://{hostname}"


@dataclass
class _Run:
    """What the drill learnt so far; turned into the record whatever happened."""

    checks: list[CheckResult] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    up_state: str = "not started"  # done, failed, interrupted
    error: str | None = None  # what in the environment ended the drill (Result.ERROR)
    up_seconds: float | None = None
    ready_seconds: float = 0.0
    verify_seconds: float = 0.0
    started: float = 0.0  # the clock when the drill began (RTO's start)
    ready_at: float | None = None  # the clock at the first /ready 200 through the hostname


def run_aws_drill(
    plan: AwsDrillPlan,
    engine: StackEngine,
    *,
    secrets: Mapping[str, str],
    access: DatabaseAccess,
    registry_password: str | None = None,
    manifest_path: Path | None = None,
    smoke_cmd: str | None = None,
    base_url: Callable[[str], str] = https_url,
    get: Callable[[str], int | None] = probe,
    ready_timeout: float = READY_TIMEOUT,
    ready_interval: float = READY_INTERVAL,
    destroy_backoff: float = DESTROY_BACKOFF,
    observer: Observer | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    started: float | None = None,
    sweep: Sweep = _no_sweep,
    tunnels: TunnelCleanup | None = None,
    cancel_wait: float = CANCEL_WAIT,
) -> AwsDrillOutcome:
    """`started`: the `clock` reading when the drill began (before its plan), the RTO's
    start; `sweep`: the post-teardown sweep of the run's tagged leftovers; `tunnels`: the
    Cloudflare calls the teardown needs to delete the tunnel (host first, connections
    cleaned)."""
    observer = observer or SilentObserver()
    manifest = load_manifest(manifest_path)
    events = EventLog()
    run = _Run()
    interrupted: int | None = None
    wall_start = clock()
    run.started = wall_start if started is None else started
    guard = UpInProgress()

    def phase(name: str, seconds: float) -> None:
        run.phases.append(Phase(name=name, seconds=round(max(0.0, seconds), 3)))
        _show(observer.phase_finished, name, seconds)

    def check(result: CheckResult) -> None:
        run.checks.append(result)
        _show(observer.check_finished, result)

    teardown_result: Teardown | None = None
    try:
        with signals_as_interrupt(guard):
            try:
                _stand_up_and_verify(
                    plan,
                    engine,
                    drill_program(plan, secrets, registry_password),
                    access,
                    manifest,
                    smoke_cmd,
                    base_url,
                    get,
                    ready_timeout,
                    ready_interval,
                    events,
                    run,
                    phase,
                    check,
                    observer,
                    clock,
                    sleep,
                    guard,
                    cancel_wait,
                )
            except Interrupted as signal_:
                interrupted = signal_.signum
                if run.up_state == "not started":
                    run.up_state = "interrupted"
                run.notes.append(f"interrupted by {signal.Signals(signal_.signum).name}")
                run.error = f"interrupted by {signal.Signals(signal_.signum).name}"
            except Exception as error:  # a bug or an unforeseen failure: recorded, torn down
                run.error = mask_dsn(f"{type(error).__name__}: {error}")[:300]
                check(
                    CheckResult(
                        name="drill",
                        status=Status.FAIL,
                        detail=mask_dsn(f"{type(error).__name__}: {error}")[:500],
                        seconds=0.0,
                    )
                )
    finally:
        deferred: list[int] = []
        with signals_deferred(deferred):
            if plan.keep and run.up_state == "done" and interrupted is None:
                run.notes.append(
                    f"kept: stack {plan.stack_name} stays up until `prism-dr drill reap` after "
                    f"{plan.drill_tags()['prism:expires-at']}"
                )
            else:
                account = plan.cfg.tunnel.account_id if plan.hostname else None
                teardown_result = teardown(
                    engine,
                    plan.stack_name,
                    after_interrupted_up=run.up_state == "interrupted",
                    backoff=destroy_backoff,
                    clock=clock,
                    sleep=sleep,
                    tunnels=tunnels,
                    account_id=account,
                )
                report = _sweep(sweep, plan.run_id, clock)
                if report.found and not teardown_result.destroyed and not report.failed:
                    # The sweep removed what the destroy could not: the refresh now finds
                    # the state's resources gone, and the stack can be removed.
                    again = teardown(
                        engine,
                        plan.stack_name,
                        after_interrupted_up=True,
                        backoff=destroy_backoff,
                        clock=clock,
                        sleep=sleep,
                    )
                    teardown_result = Teardown(
                        again.destroyed,
                        teardown_result.seconds + again.seconds,
                        [*teardown_result.notes, "after the sweep:", *again.notes],
                    )
                phase("destroyed", teardown_result.seconds)
                check(teardown_result.check())
                phase("swept", report.seconds)
                check(report.check())
        if deferred and interrupted is None:
            interrupted = deferred[0]
            run.notes.append(f"{signal.Signals(deferred[0]).name} received during teardown")

    outcome = _record(plan, manifest, events, run, wall_start, clock, teardown_result)
    outcome.interrupted = interrupted
    return outcome


def _sweep(sweep: Sweep, run_id: str, clock: Callable[[], float]) -> SweepReport:
    """The sweep must never lose the record: its own failure is a failed sweep."""
    t = clock()
    try:
        report = sweep(run_id)
    except Exception as error:
        report = SweepReport([("sweep", f"failed: {type(error).__name__}: {str(error)[:200]}")])
    report.seconds = clock() - t
    return report


def _show(display: Callable[..., None], *args: Any) -> None:
    """The display must never stop a teardown or lose a record (e.g. a spinner left running
    by an exception refuses to start another)."""
    with contextlib.suppress(Exception):
        display(*args)


def _stand_up_name(events: EventLog) -> str:
    parts = []
    for label, match in (
        ("DB restore", lambda ty: ty == DB_TYPE),
        ("host", lambda ty: ty == HOST_TYPE),
        ("tunnel", lambda ty: ty.startswith(TUNNEL_PREFIX)),
    ):
        seconds = events.span(match)
        if seconds is not None:
            parts.append(f"{label} {seconds:.0f} s")
    return "stand up" + (f" ({', '.join(parts)}; DB and host in parallel)" if parts else "")


def _stand_up_and_verify(
    plan: AwsDrillPlan,
    engine: StackEngine,
    program: Program,
    access: DatabaseAccess,
    manifest: Any,
    smoke_cmd: str | None,
    base_url: Callable[[str], str],
    get: Callable[[str], int | None],
    ready_timeout: float,
    ready_interval: float,
    events: EventLog,
    run: _Run,
    phase: Callable[[str, float], None],
    check: Callable[[CheckResult], None],
    observer: Observer,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    guard: UpInProgress,
    cancel_wait: float,
) -> None:
    _show(observer.phase_started, "stand up")
    t = clock()
    run.up_state = "interrupted"  # until up returns or raises: then it may hold pending creates
    try:
        result = run_up(
            engine,
            plan.stack_name,
            program,
            config=drill_config(plan),
            tags=plan.drill_tags(),
            on_event=events,
            guard=guard,
            notes=run.notes,
            cancel_wait=cancel_wait,
        )
    except Interrupted:
        run.up_seconds = clock() - t
        raise
    except EngineError as error:
        run.up_state = "failed"
        run.error = f"the drill stack did not come up: {str(error)[:300]}"
        run.up_seconds = clock() - t
        phase("stand up", run.up_seconds)
        check(
            CheckResult(name="stand_up", status=Status.FAIL, detail=str(error)[:500], seconds=0.0)
        )
        return
    run.up_state = "done"
    run.up_seconds = clock() - t
    run.outputs = dict(result.outputs)
    phase(_stand_up_name(events), run.up_seconds)

    # Before /ready: the API logs in as its role, with a password the restored instance
    # learns only now (the backup holds prod's).
    _show(observer.phase_started, "application role")
    t = clock()
    check(set_app_role(access, run.outputs))
    phase("application role", clock() - t)

    hostname = run.outputs.get("apiHostname") or plan.hostname
    api_url = base_url(str(hostname)) if plan.hostname and hostname else None
    if api_url:
        _show(observer.phase_started, "/ready through the hostname")
        t = clock()
        ready = wait_ready(
            api_url,
            timeout=ready_timeout,
            interval=ready_interval,
            get=get,
            clock=clock,
            sleep=sleep,
        )
        run.ready_seconds = clock() - t
        if ready.status == Status.PASS:
            run.ready_at = clock()
        phase("/ready through the hostname", run.ready_seconds)
        check(ready)
    else:
        run.notes.append("tunnel off: /health and /ready not checked through a hostname")

    _show(observer.phase_started, "verify")
    t = clock()
    try:
        with access.open(run.outputs) as dsn:
            target = VerifyTarget(
                dsn=dsn,
                backup_point=plan.restore_point or plan.started_at,
                drill_started=plan.started_at,
                api_url=api_url,
            )
            results = verify(target, manifest, plan.tier, on_check=check)
            first = next((r for r in results if r.name != "restore"), None)
            if first is not None:
                run.notes.append(
                    f"first touch of the restored storage ({first.name}, loaded lazily from "
                    f"S3): {first.seconds:.1f} s"
                )
    except ForwardError as error:
        check(
            CheckResult(name="database_access", status=Status.FAIL, detail=str(error), seconds=0.0)
        )
    if smoke_cmd and api_url:
        check(run_smoke_cmd(smoke_cmd, api_url))
    run.verify_seconds = clock() - t
    if not api_url:  # no hostname to reach: the drill is back once it is verified
        run.ready_at = clock()
    phase("verified", run.verify_seconds)


def set_app_role(access: DatabaseAccess, outputs: Mapping[str, Any]) -> CheckResult:
    """The drill stack's application-role password set on the restored instance, connected
    as that instance's master user, then the API's login tried with it."""
    started = time.monotonic()

    def result(status: Status, detail: str) -> CheckResult:
        seconds = round(time.monotonic() - started, 3)
        return CheckResult(name="app_role", status=status, detail=detail, seconds=seconds)

    try:
        report = reset_app_role(access, outputs)
    except (ForwardError, PrismError, psycopg.Error) as error:
        return result(Status.FAIL, mask_dsn(f"{type(error).__name__}: {error}")[:500])
    how = "created (the backup had none), with its grants" if report.created else "password set"
    return result(Status.PASS, f"{report.role}: {how}; it logs in")


def _record(
    plan: AwsDrillPlan,
    manifest: Any,
    events: EventLog,
    run: _Run,
    wall_start: float,
    clock: Callable[[], float],
    teardown_result: Teardown | None,
) -> AwsDrillOutcome:
    db = events.span(lambda ty: ty == DB_TYPE)
    host = events.span(lambda ty: ty == HOST_TYPE)
    rto = None
    if (
        run.up_state == "done"
        and run.ready_at is not None
        and all(c.status != Status.FAIL for c in run.checks)
    ):
        rto = round(run.ready_at - run.started, 3)
    # Billed time: from creation until the destroy finished (or the TTL, when kept).
    after_up = clock() - wall_start - (run.up_seconds or 0.0)
    alive_db = (db or 0.0) + after_up
    alive_host = (host or 0.0) + after_up
    if teardown_result is None and run.up_state == "done":
        ttl = (plan.expires_at - plan.started_at).total_seconds()
        alive_db, alive_host = max(alive_db, ttl), max(alive_host, ttl)
    failed = [c.name for c in run.checks if c.status == Status.FAIL]
    if run.error is not None:
        # The environment gave out (engine, signal, crash): the backup is not judged.
        result = Result.ERROR
    elif run.up_state == "done" and not failed:
        result = Result.PASSED
    else:
        result = Result.FAILED
    notes = [plan.notes] if plan.notes else []
    notes += run.notes
    if failed:
        notes.append("failed checks: " + ", ".join(failed))
    record = DrillRecord(
        started_at=plan.started_at,
        environment=plan.environment,
        backup_source=f"{plan.source.description} ({plan.point.text})",
        backup_point=plan.restore_point,
        result=result,
        error=run.error,
        notes="; ".join(notes) or "all checks passed",
        completed_by=plan.actor,
        tier=plan.tier,
        rto_kind=RtoKind.AWS,
        rto_seconds=rto,
        targets=manifest.targets,
        phases=run.phases,
        checks=run.checks,
        tool_versions=tool_versions(),
        cost_estimate=cost_estimate(plan, alive_db, alive_host),
        host=host_info(),
    )
    paths = write_record(record, plan.record_dir)
    log_path = rebuild_log(plan.record_dir)
    kept = plan.stack_name if teardown_result is None and run.up_state == "done" else None
    return AwsDrillOutcome(record, paths, log_path, run.outputs, kept_stack=kept)
