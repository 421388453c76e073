"""The one error hierarchy of prism-infra, in the lowest layer that raises it (infra raises
ConfigError). No Pulumi import: the command line catches these for every command
(prism_dr/app.py maps each to its exit code in one place), and commands that never touch a
stack must not pay for importing pulumi.

- `BadInput` (exit 2): input or environment the user must fix; nothing was created. Its
  subclasses say why: a bad setting, a missing resource, a resource in the wrong state, a
  point outside the restorable window, the machine giving out.
- `OperationFailed` (exit 1): something was started and did not reach its goal.

Every message is one line naming the fix, with no secret in it.
"""

from __future__ import annotations


class PrismError(Exception):
    """Any error the command line turns into an exit code."""


class BadInput(PrismError):
    """Input or environment the user must fix (exit 2). The message is one line naming the fix."""


class EnvironmentFault(BadInput):
    """The machine gave out once the drill had started (disk full, no memory, a tool missing).

    Exit 2 like bad input, but a drill that got this far records it as Result.ERROR: the
    backup was not judged, so it must not read as a failed backup.
    """


class NotFound(BadInput):
    """The database or snapshot named does not exist (in this account and region)."""


class WrongState(BadInput):
    """The resource exists but its state refuses the operation; nothing was created."""


class OutsideWindow(BadInput):
    """The recovery point lies outside the restorable window; nothing was created."""


class ConfigError(BadInput):
    """A bad or missing setting. str() is one line: the full key, the problem and the fix."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key = key
        self.problem = problem


class OperationFailed(PrismError):
    """Something was started and did not reach its goal (exit 1). One line, no secrets."""


class FieldProblem(ValueError):
    """Raised inside a model validator: the problem of one field, named relative to the model
    (`maxAllocatedStorageGb`, `restore.point`). infra/config.py turns it into a ConfigError
    with the full key; a ValueError, so pydantic wraps it like any field error."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem
