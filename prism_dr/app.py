"""The `prism-dr` entry point: one typer app; each command group lives in its own module.

Exit codes: 0 success or drill passed, 1 drill or checks failed, 2 bad input or environment.
"""

from __future__ import annotations

import typer

from prism_dr import drill_cmd, plan_cmd

app = typer.Typer(
    name="prism-dr",
    help="Project Prism disaster recovery: restore drills, stack plans and runbook commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plan_cmd.register(app)
drill_cmd.register(app)


def main() -> None:
    app()
