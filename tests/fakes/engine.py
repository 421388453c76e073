"""A StackEngine that stands up local equivalents of a drill stack.

`up` runs the program it is given for real, under Pulumi's mocks (infra/offline.py), so the
resources it declares are the program's own; it then reports a STARTED and a DONE event per
resource on a simulated clock (provider durations: the RDS restore, the EC2 host, the
Cloudflare tunnel), from worker threads as the Automation API does, and starts the local
equivalents: the "restored DB" is a PostgreSQL database loaded from a sample dump, the
"host" the stand-in API on it, the "tunnel hostname" its local address.

What the provider creates lives in a `cloud` (tests/fakes/cloud.py) apart from the stack's
state, and the fake treats the two as Pulumi does (each behaviour cites its source below):
- `refresh(clear_pending_creates=True)` drops pending creates from the state and leaves the
  resources in the cloud ("Clear all pending creates, dropping them from the state":
  pulumi.com/docs/iac/cli/commands/pulumi_refresh; there is no import in the Python
  Automation API). Only a sweep by tag removes them.
- `interrupt` is the CLI's SIGINT: the first asks for a graceful cancel (the engine stops
  starting steps and waits for the in-flight ones, which then land in the state), a second
  terminates at once and leaves the in-flight creates pending, their resources in the cloud
  ("^C received; cancelling. If you would like to terminate immediately, press ^C again.
  Note that terminating immediately may lead to orphaned resources": pulumi/pulumi,
  pkg/backend/display and sdk/go/common/util/cmdutil/trace.go's interrupt handling).
- `destroy` deletes what the state holds, dependents first; nothing makes the host a
  dependent of the tunnel, so the tunnel goes first and Cloudflare refuses while the host's
  cloudflared is connected (terraform-provider-cloudflare#5255). A failed delete keeps the
  resources not yet deleted in the state, as Pulumi's checkpoint does.

Faults are knobs: a failed or partial up, an up held with every create pending until an
interrupt (a signal arrives there), destroys that fail, a lock on destroy that `cancel`
releases. The state (which stacks exist, what they hold) can be mirrored to a JSON file,
for tests that drive a drill in a child process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recovery.engine import (
    ConcurrentUpdate,
    EngineError,
    EventKind,
    OnEvent,
    Program,
    ResourceEvent,
    StackInfo,
    UpResult,
)
from tests.fakes.cloud import DNS, HOST, TUNNEL, MemoryCloud

# What the bench and the issue simulate: RDS restore 20 min, host 2 min, tunnel 30 s.
DEFAULT_DURATIONS = {
    "aws:rds/instance:Instance": 1200.0,
    "aws:ec2/instance:Instance": 120.0,
    "cloudflare:": 30.0,
}
OTHER_SECONDS = 2.0
# offline=False: the drill's main resources, in the program's order of declaration.
MAIN = [
    ("prism:infra:ApiHost", "aws:ec2/securityGroup:SecurityGroup", "api-host-sg"),
    ("prism:infra:ApiHost", "aws:ec2/instance:Instance", "api-host-instance"),
    ("prism:infra:PrismDatabase", "aws:rds/instance:Instance", "database-instance"),
    ("prism:infra:RuntimeSecrets", "aws:ssm/parameter:Parameter", "runtime-secrets-redis"),
    ("prism:infra:ApiTunnel", TUNNEL, "api-tunnel-tunnel"),
    ("prism:infra:ApiTunnel", DNS, "api-tunnel-dns"),
]


def urn_type(urn: str) -> str:
    """`urn:pulumi:stack::project::parent$type::name` -> type."""
    return urn.split("::")[2].rsplit("$", 1)[-1]


class SimClock:
    """Simulated time: the engine advances it by the provider durations, and the runner reads
    it (called, it gives seconds, as time.monotonic does), so the recorded RTO is this clock's.
    Real time passing (the stand-in API answering, the checks) is added on top."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
        self._real = time.monotonic()
        self._lock = threading.Lock()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)

    def __call__(self) -> float:
        real = time.monotonic() - self._real
        with self._lock:
            return self.now.timestamp() + real

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


class LocalEquivalents:
    """Starts and stops what a drill stack would be, locally; returns the stack's outputs."""

    def start(self, stack: str) -> dict[str, Any]:
        return {}

    def stop(self, stack: str) -> None:
        pass


@dataclass
class StackState:
    resources: list[str] = field(default_factory=list)  # URNs created
    pending: list[str] = field(default_factory=list)  # URNs whose create never finished
    outputs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    last_update: datetime | None = None


@dataclass
class FakeStackEngine:
    project_dir: Path | None = None
    source_stack: str = "prod"  # whose file feeds the offline runtime's config
    local: LocalEquivalents = field(default_factory=LocalEquivalents)
    clock: SimClock = field(default_factory=SimClock)
    durations: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_DURATIONS))
    offline: bool = True  # run the program under mocks (False: a fixed small resource list)
    fail_up: EngineError | None = None
    created_before_failure: int | None = None  # a partial up: this many, then fail_up
    during_up: Callable[[], None] | None = None  # runs while every create is pending
    hold_up: bool = False  # then waits there for an interrupt
    cancel_outlasts: float = 0.0  # real seconds the in-flight creates outlive a graceful cancel
    destroy_errors: list[Exception] = field(default_factory=list)
    lock_on_destroy: bool = False
    state_file: Path | None = None
    stacks: dict[str, StackState] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    runs: dict[str, Any] = field(default_factory=dict)
    cloud: MemoryCloud = field(default_factory=MemoryCloud)
    interrupts: int = 0
    _interrupted: threading.Condition = field(default_factory=threading.Condition)

    # -- StackEngine ------------------------------------------------------------------------

    def up(
        self,
        stack: str,
        program: Program,
        *,
        config: Mapping[str, str],
        tags: Mapping[str, str] = {},
        on_event: OnEvent | None = None,
    ) -> UpResult:
        self.calls.append(("up", stack))
        state = self.stacks.setdefault(stack, StackState())
        state.config, state.tags = dict(config), dict(tags)
        declared = self._declare(stack, program)
        state.pending = [urn for urn, _ in declared]
        start = self.clock.now
        self._emit(on_event, [(urn, ty, EventKind.STARTED, start) for urn, ty in declared])
        # The provider's create calls went out: the cloud has them (a create that fails
        # leaves nothing, the knob's simplification).
        landing = declared if self.fail_up is None else declared[: self.created_before_failure or 0]
        for urn, ty in landing:
            self.cloud.create(stack, urn, ty, dict(tags))
        self._save()
        if self.during_up is not None:
            self.during_up()
        if self.hold_up:
            if not self._wait_for_interrupts(1, 60.0):
                raise EngineError(f"pulumi failed on stack {stack}: held, never interrupted")
            if self._wait_for_interrupts(2, self.cancel_outlasts):
                self._save()  # terminated at once: every create stays pending
                raise EngineError(f"pulumi failed on stack {stack}: update terminated")
            # A graceful cancel: the in-flight creates finish and are recorded.
            self._finish(state, declared, start, on_event)
            self._save()
            raise EngineError(f"pulumi failed on stack {stack}: update canceled")
        if self.fail_up is not None:
            done = declared[: self.created_before_failure or 0]
            self._finish(state, done, start, on_event)
            state.pending = []  # a failed update records its failures; nothing stays pending
            self._save()
            raise self.fail_up
        self._finish(state, declared, start, on_event)
        self.clock.advance(max((self._seconds(ty) for _, ty in declared), default=0.0))
        state.outputs = {**self._offline_outputs(stack), **self.local.start(stack)}
        state.last_update = self.clock.now
        self._save()
        return UpResult(outputs=dict(state.outputs))

    def outputs(self, stack: str) -> Mapping[str, Any]:
        self.calls.append(("outputs", stack))
        return dict(self.stacks[stack].outputs) if stack in self.stacks else {}

    def destroy(
        self,
        stack: str,
        *,
        remove: bool = True,
        on_event: OnEvent | None = None,
        targets: Sequence[str] | None = None,
    ) -> None:
        self.calls.append(("destroy", stack) if not targets else ("destroy-targets", stack))
        if stack not in self.stacks:
            return
        if self.lock_on_destroy:
            raise ConcurrentUpdate(f"stack {stack} is locked by another update")
        if self.destroy_errors:
            raise self.destroy_errors.pop(0)
        state = self.stacks[stack]
        chosen = [u for u in state.resources if not targets or u in targets]
        if not targets or any(urn_type(u) == HOST for u in chosen):
            self.local.stop(stack)
        # Dependents first: later declarations go before earlier ones here.
        for urn in reversed(chosen):
            try:
                self.cloud.delete(stack, urn)
            finally:
                self._save()
            state.resources.remove(urn)
        if remove and not targets:
            del self.stacks[stack]
        self._save()

    def resources(self, stack: str) -> list[tuple[str, str]]:
        state = self.stacks.get(stack)
        return [(u, urn_type(u)) for u in state.resources] if state else []

    def cancel(self, stack: str) -> None:
        self.calls.append(("cancel", stack))
        self.lock_on_destroy = False

    def interrupt(self, stack: str) -> None:
        self.calls.append(("interrupt", stack))
        with self._interrupted:
            self.interrupts += 1
            self._interrupted.notify_all()

    def refresh(self, stack: str, *, clear_pending_creates: bool = True) -> None:
        self.calls.append(("refresh", stack))
        state = self.stacks.get(stack)
        if state is None:
            return
        # A refresh reads each resource of the state back: one deleted behind Pulumi's back
        # (e.g. by the sweep) leaves the state.
        state.resources = [u for u in state.resources if u in self.cloud.resources]
        if clear_pending_creates:
            state.pending = []  # dropped from the state; the cloud keeps them
        self._save()

    def list_stacks(self, prefix: str = "") -> list[StackInfo]:
        return [
            StackInfo(
                name=name,
                last_update=s.last_update,
                tags={**s.tags},
                resource_count=len(s.resources),
            )
            for name, s in self.stacks.items()
            if name.startswith(prefix)
        ]

    # -- helpers ------------------------------------------------------------------------------

    def left(self) -> dict[str, list[str]]:
        """Whatever a test must find empty after a drill: stacks and their resources."""
        return {name: s.resources + s.pending for name, s in self.stacks.items()}

    def _wait_for_interrupts(self, count: int, timeout: float | None) -> bool:
        with self._interrupted:
            return self._interrupted.wait_for(lambda: self.interrupts >= count, timeout)

    def _seconds(self, type_: str) -> float:
        for prefix, seconds in self.durations.items():
            if type_.startswith(prefix):
                return seconds
        return OTHER_SECONDS

    def _declare(self, stack: str, program: Program) -> list[tuple[str, str]]:
        if not self.offline:
            return [(f"urn:pulumi:{stack}::prism-infra::{p}${t}::{n}", t) for p, t, n in MAIN]
        from infra.offline import run_program

        run = run_program(
            self.source_stack, project_dir=self.project_dir, program=program, preview=False
        )
        self.runs[stack] = run
        return [(r.urn, r.type) for r in run.resources if r.custom]

    def _offline_outputs(self, stack: str) -> dict[str, Any]:
        from infra.offline import Secret

        run = self.runs.get(stack)
        if run is None:
            return {}
        return {k: v for k, v in run.outputs.items() if not isinstance(v, Secret)}

    def _finish(
        self,
        state: StackState,
        done: list[tuple[str, str]],
        start: datetime,
        on_event: OnEvent | None,
    ) -> None:
        self._emit(
            on_event,
            [
                (urn, ty, EventKind.DONE, start + timedelta(seconds=self._seconds(ty)))
                for urn, ty in done
            ],
        )
        finished = {urn for urn, _ in done}
        state.resources += [u for u in state.pending if u in finished]
        state.pending = [u for u in state.pending if u not in finished]

    def _emit(
        self, on_event: OnEvent | None, items: list[tuple[str, str, EventKind, datetime]]
    ) -> None:
        if on_event is None:
            return

        def send() -> None:
            for urn, ty, kind, at in items:
                name = urn.rsplit("::", 1)[-1]
                on_event(ResourceEvent(urn=urn, type=ty, name=name, op="create", kind=kind, at=at))

        # The Automation API calls on_event from its own threads.
        worker = threading.Thread(target=send)
        worker.start()
        worker.join()

    def _save(self) -> None:
        if self.state_file is None:
            return
        data: dict[str, Any] = {
            name: {"resources": s.resources, "pending": s.pending}
            for name, s in self.stacks.items()
        }
        data["_cloud"] = self.cloud.live()
        data["_calls"] = [list(c) for c in self.calls]
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.state_file)
