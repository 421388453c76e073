"""How drills and recoveries drive Pulumi: a small `StackEngine` interface.

The orchestration (drills/aws/runner.py, runbook/recover.py, the reapers) talks only to this
interface, so it runs in tests through a fake that stands up local equivalents. The Automation
API adapter that implements it for real lives below the interface and is kept thin: it cannot
run here (no Pulumi CLI, no cloud).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from infra.errors import BadInput

Program = Callable[[], None]
"""An inline Pulumi program: declares resources when called inside a Pulumi run."""


class EventKind(StrEnum):
    STARTED = "started"  # resource_pre: the engine began creating/updating/deleting it
    DONE = "done"  # res_outputs: the operation finished
    FAILED = "failed"  # res_op_failed


@dataclass(frozen=True)
class ResourceEvent:
    """One step of one resource during up or destroy (engine time, whole seconds in UTC)."""

    urn: str
    type: str  # e.g. aws:rds/instance:Instance
    name: str
    op: str  # create, update, delete, replace, same, refresh, ...
    kind: EventKind
    at: datetime


OnEvent = Callable[[ResourceEvent], None]
"""Called for each event; the real adapter calls it from a worker thread."""


@dataclass(frozen=True)
class UpResult:
    outputs: Mapping[str, Any]
    # URN -> seconds from its STARTED to its DONE/FAILED event
    durations: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StackInfo:
    name: str
    last_update: datetime | None  # None while it has never finished an update
    tags: Mapping[str, str] = field(default_factory=dict)  # stack tags, e.g. prism:expires-at
    resource_count: int | None = None


class EngineError(Exception):
    """The engine failed; the message is safe to print (no secret values)."""


class ConcurrentUpdate(EngineError):
    """Another operation holds the stack's lock (the Automation API's ConcurrentUpdateError)."""


class StackEngine(Protocol):
    """Up, inspect and tear down one named stack of one project."""

    def up(
        self,
        stack: str,
        program: Program,
        *,
        config: Mapping[str, str],
        tags: Mapping[str, str] = ...,
        on_event: OnEvent | None = None,
    ) -> UpResult:
        """Create or select `stack`, set its config and tags, run `program`, return outputs.

        Raises EngineError when the update fails; whatever was created stays in the stack's
        state, so `destroy` removes it.
        """
        ...

    def outputs(self, stack: str) -> Mapping[str, Any]: ...

    def destroy(
        self,
        stack: str,
        *,
        remove: bool = True,
        on_event: OnEvent | None = None,
        targets: Sequence[str] | None = None,
    ) -> None:
        """Destroy every resource of the stack, then (remove=True) delete the stack itself;
        with `targets` (URNs), only those and what depends on them, and the stack stays.

        Raises ConcurrentUpdate when the stack is locked, EngineError on other failures.
        A stack that does not exist is already destroyed: no error.
        """
        ...

    def resources(self, stack: str) -> list[tuple[str, str]]:
        """(URN, type) of each resource in the stack's state; [] when there is no stack."""
        ...

    def cancel(self, stack: str) -> None:
        """Cancel the operation under way on the stack (releases its lock)."""
        ...

    def interrupt(self, stack: str) -> None:
        """Interrupt this process's `up` of the stack as Ctrl-C would: the first call asks
        for a graceful cancel (in-flight operations finish and are recorded), a second
        terminates at once (in-flight creates stay pending: their resources may be orphaned).
        Called from a signal handler while `up` runs in another thread."""
        ...

    def refresh(self, stack: str, *, clear_pending_creates: bool = True) -> None:
        """Reconcile state with the cloud; after an interrupted up, drop pending creates."""
        ...

    def list_stacks(self, prefix: str = "") -> list[StackInfo]:
        """The project's stacks whose name starts with `prefix`."""
        ...


# ---------------------------------------------------------------------------------------------
# The Automation API adapter. It needs the Pulumi CLI and a backend, so it cannot run here;
# what can be tested without them (event translation, durations) is in plain functions.

_KINDS = {
    "resource_pre_event": EventKind.STARTED,
    "res_outputs_event": EventKind.DONE,
    "res_op_failed_event": EventKind.FAILED,
}


def translate_event(event: Any) -> ResourceEvent | None:
    """An automation-API EngineEvent → a ResourceEvent; None for every other kind of event
    (diagnostics, stdout, summary, the stack resource itself)."""
    for attribute, kind in _KINDS.items():
        step = getattr(event, attribute, None)
        if step is None:
            continue
        meta = step.metadata
        if meta.type == "pulumi:pulumi:Stack":
            return None
        op = getattr(meta.op, "value", meta.op)
        return ResourceEvent(
            urn=meta.urn,
            type=meta.type,
            name=meta.urn.rsplit("::", 1)[-1],
            op=str(op),
            kind=kind,
            at=datetime.fromtimestamp(int(event.timestamp), tz=UTC),
        )
    return None


class DurationTracker:
    """Seconds from each URN's STARTED to its DONE/FAILED event.

    `on_event` runs on the Automation API's worker threads, hence the lock.
    """

    def __init__(self, forward: OnEvent | None = None) -> None:
        self._forward = forward
        self._lock = threading.Lock()
        self._started: dict[str, datetime] = {}
        self.durations: dict[str, float] = {}

    def __call__(self, event: ResourceEvent) -> None:
        with self._lock:
            if event.kind == EventKind.STARTED:
                self._started[event.urn] = event.at
            elif event.urn in self._started:
                start = self._started.pop(event.urn)
                self.durations[event.urn] = (event.at - start).total_seconds()
        if self._forward is not None:
            self._forward(event)

    def raw(self, event: Any) -> None:
        """The callback handed to the Automation API."""
        translated = translate_event(event)
        if translated is not None:
            self(translated)


def _passphrase_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A file backend encrypts secrets with a passphrase; the service backend needs none."""
    found = {
        k: environ[k]
        for k in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
        if environ.get(k)
    }
    return found


def default_backend(environ: Mapping[str, str]) -> str:
    return environ.get("PULUMI_BACKEND_URL") or f"file://{Path.home() / '.pulumi-prism'}"


def is_ci(environ: Mapping[str, str]) -> bool:
    """GitHub Actions sets CI=true and GITHUB_ACTIONS=true in every step (docs.github.com,
    "Store information in variables", default environment variables)."""
    return environ.get("CI", "").lower() == "true" or environ.get("GITHUB_ACTIONS") == "true"


def check_backend(
    environ: Mapping[str, str], *, local_state: bool, recovering: bool = False
) -> str:
    """The backend URL, refused when it is a local directory where state must last: in CI (a
    discarded runner) and for `recover` (a stack that may become production), unless the
    caller said --local-state. Raises BadInput before anything is created."""
    backend = default_backend(environ)
    if not backend.startswith("file://") or local_state:
        return backend
    where = "`recover`" if recovering else ("CI" if is_ci(environ) else None)
    if where is None:
        return backend
    raise BadInput(
        f"the Pulumi backend {backend} is a directory on this machine, which {where} must not "
        "leave state in: set PULUMI_BACKEND_URL=s3://<the bootstrap's state bucket>, or pass "
        "--local-state to accept it"
    )


def secrets_provider_for(stack: str, backend: str, environ: Mapping[str, str]) -> str | None:
    """An object-store backend uses the stack's `awskms://` key from the account bootstrap
    (drill-* stacks the drill key, recovery-* prod's); a local one the passphrase."""
    from infra.ci_roles import STATE_KEY_USERS, state_key_alias, state_key_for

    key = state_key_for(stack)
    if not backend.startswith("s3://") or key not in STATE_KEY_USERS:
        return None
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return f"awskms://{state_key_alias(key)}?region={region}"


class AutomationEngine:
    """StackEngine over Pulumi's Automation API (inline programs, one project)."""

    def __init__(self, project_name: str, *, work_dir: str | Path | None = None) -> None:
        # The commands refuse a local backend where state must last (check_backend) first.
        self.project_name = project_name
        self.work_dir = str(work_dir) if work_dir is not None else None
        environ = dict(os.environ)
        self._environ = environ
        self.backend = default_backend(environ)
        env = _passphrase_env(environ)
        if self.backend.startswith("file://"):
            Path(self.backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
            if not env:
                raise EngineError(
                    f"the Pulumi backend {self.backend} needs PULUMI_CONFIG_PASSPHRASE or "
                    "PULUMI_CONFIG_PASSPHRASE_FILE to encrypt the drill stack's secrets"
                )
        self._env = env

    def _workspace_options(self, stack: str) -> Any:
        from pulumi import automation as auto

        return auto.LocalWorkspaceOptions(
            work_dir=self.work_dir,
            secrets_provider=secrets_provider_for(stack, self.backend, self._environ),
            project_settings=auto.ProjectSettings(
                name=self.project_name,
                runtime="python",
                backend=auto.ProjectBackend(url=self.backend),
            ),
            env_vars={**self._env, "PULUMI_BACKEND_URL": self.backend},
        )

    def _stack(self, stack: str, program: Program | None = None) -> Any:
        from pulumi import automation as auto

        with _engine_errors(stack):
            if program is None:
                return auto.select_stack(
                    stack_name=stack,
                    project_name=self.project_name,
                    program=lambda: None,
                    opts=self._workspace_options(stack),
                )
            return auto.create_or_select_stack(
                stack_name=stack,
                project_name=self.project_name,
                program=program,
                opts=self._workspace_options(stack),
            )

    def up(
        self,
        stack: str,
        program: Program,
        *,
        config: Mapping[str, str],
        tags: Mapping[str, str] = {},
        on_event: OnEvent | None = None,
    ) -> UpResult:
        from pulumi import automation as auto

        s = self._stack(stack, program)
        tracker = DurationTracker(on_event)
        with _engine_errors(stack):
            s.set_all_config({k: auto.ConfigValue(value=v) for k, v in config.items()})
            for key, value in tags.items():
                # Self-managed backends keep stack tags since Pulumi 3.211 (the reaper reads
                # prism:expires-at there); an older CLI refuses, and the config has it too.
                with suppress(auto.CommandError):
                    s.set_tag(key, value)
            result = s.up(on_event=tracker.raw, color="never")
        outputs = {k: v.value for k, v in result.outputs.items() if not v.secret}
        return UpResult(outputs=outputs, durations=dict(tracker.durations))

    def outputs(self, stack: str) -> Mapping[str, Any]:
        s = self._stack(stack)
        with _engine_errors(stack):
            return {k: v.value for k, v in s.outputs().items() if not v.secret}

    def destroy(
        self,
        stack: str,
        *,
        remove: bool = True,
        on_event: OnEvent | None = None,
        targets: Sequence[str] | None = None,
    ) -> None:
        from pulumi import automation as auto

        try:
            s = self._stack(stack)
        except EngineError as error:
            if isinstance(error.__cause__, auto.StackNotFoundError):
                return  # already gone
            raise
        tracker = DurationTracker(on_event)
        with _engine_errors(stack):
            if targets:
                s.destroy(
                    on_event=tracker.raw,
                    color="never",
                    target=list(targets),
                    target_dependents=True,
                )
            else:
                s.destroy(on_event=tracker.raw, color="never", remove=remove)

    def resources(self, stack: str) -> list[tuple[str, str]]:
        from pulumi import automation as auto

        try:
            s = self._stack(stack)
        except EngineError as error:
            if isinstance(error.__cause__, auto.StackNotFoundError):
                return []
            raise
        with _engine_errors(stack):
            deployment = s.export_stack().deployment or {}
        return [(r["urn"], r["type"]) for r in deployment.get("resources") or []]

    def cancel(self, stack: str) -> None:
        s = self._stack(stack)
        with _engine_errors(stack):
            s.cancel()

    def interrupt(self, stack: str) -> None:
        # The Automation API forwards no signal to the CLI it runs (pulumi/automation/_cmd.py
        # starts it with subprocess.Popen and only waits), so the drill sends the CLI's own
        # Ctrl-C: SIGINT to the `pulumi` processes this process started.
        import signal

        import psutil

        for child in psutil.Process().children(recursive=True):
            with suppress(psutil.Error):
                if child.name() == "pulumi":
                    child.send_signal(signal.SIGINT)

    def refresh(self, stack: str, *, clear_pending_creates: bool = True) -> None:
        s = self._stack(stack)
        with _engine_errors(stack):
            s.refresh(clear_pending_creates=clear_pending_creates, color="never")

    def list_stacks(self, prefix: str = "") -> list[StackInfo]:
        from pulumi import automation as auto

        with _engine_errors(prefix or "*"):
            workspace = auto.LocalWorkspace(**_workspace_kwargs(self._workspace_options(prefix)))
            summaries = workspace.list_stacks(include_all=True)
            found = []
            for summary in summaries:
                name = summary.name.rsplit("/", 1)[-1]
                if not name.startswith(prefix):
                    continue
                tags: dict[str, str] = {}
                with suppress(auto.CommandError):
                    tags = dict(workspace.list_tags(summary.name))
                try:  # the expiry the drill put in the stack's config (file backends)
                    value = workspace.get_config(summary.name, "prism-infra:drillExpiresAt")
                    tags.setdefault("prism:expires-at", value.value)
                except auto.CommandError:
                    pass
                found.append(
                    StackInfo(
                        name=name,
                        last_update=summary.last_update,
                        tags=tags,
                        resource_count=summary.resource_count,
                    )
                )
            return found


def _workspace_kwargs(options: Any) -> dict[str, Any]:
    return {
        "work_dir": options.work_dir,
        "project_settings": options.project_settings,
        "env_vars": options.env_vars,
    }


@contextmanager
def _engine_errors(stack: str) -> Iterator[None]:
    """Automation API errors → EngineError / ConcurrentUpdate, one line naming the stack.

    The CLI's output can hold resource details; only its last line goes into the message.
    """
    from pulumi import automation as auto

    try:
        yield
    except auto.ConcurrentUpdateError as error:
        raise ConcurrentUpdate(f"stack {stack} is locked by another update") from error
    except auto.CommandError as error:
        tail = [line for line in str(error).splitlines() if line.strip()]
        raise EngineError(
            f"pulumi failed on stack {stack}: {tail[-1] if tail else error}"
        ) from error
    except FileNotFoundError as error:
        raise EngineError(
            "the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/)"
        ) from error
