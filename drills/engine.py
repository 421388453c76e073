"""How drills and recoveries drive Pulumi: a small `StackEngine` interface.

The orchestration (drills/runner.py, runbook/recover.py) talks only to this interface, so it
runs in tests through a fake that stands up local equivalents. The Automation API adapter
that implements it for real lives below the interface and is kept thin: it cannot run here
(no Pulumi CLI, no cloud).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

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

    def destroy(self, stack: str, *, remove: bool = True, on_event: OnEvent | None = None) -> None:
        """Destroy every resource of the stack, then (remove=True) delete the stack itself.

        Raises ConcurrentUpdate when the stack is locked, EngineError on other failures.
        A stack that does not exist is already destroyed: no error.
        """
        ...

    def cancel(self, stack: str) -> None:
        """Cancel the operation under way on the stack (releases its lock)."""
        ...

    def refresh(self, stack: str, *, clear_pending_creates: bool = True) -> None:
        """Reconcile state with the cloud; after an interrupted up, drop pending creates."""
        ...

    def list_stacks(self, prefix: str = "") -> list[StackInfo]:
        """The project's stacks whose name starts with `prefix`."""
        ...
