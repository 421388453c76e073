"""ConfigError on its own, with no Pulumi import: the command line catches it for every
command (prism_dr/app.py), and commands that never touch a stack must not pay for, or depend
on, importing pulumi. `infra.config` re-exports it."""

from __future__ import annotations


class ConfigError(Exception):
    """A bad or missing setting. str() is one line: the full key, the problem and the fix."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key = key
