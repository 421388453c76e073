"""ConfigError on its own, with no Pulumi import: the command line catches it for every
command (prism_dr/app.py), and commands that never touch a stack must not pay for, or depend
on, importing pulumi. `infra.config` re-exports it."""

from __future__ import annotations


class ConfigError(Exception):
    """A bad or missing setting. str() is one line: the full key, the problem and the fix."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key = key
        self.problem = problem


class FieldProblem(ValueError):
    """Raised inside a model validator: the problem of one field, named relative to the model
    (`maxAllocatedStorageGb`, `restore.point`). infra/config.py turns it into a ConfigError
    with the full key; a ValueError, so pydantic wraps it like any field error."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem
