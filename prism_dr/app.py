"""The `prism-dr` entry point: one typer app; each command group lives in its own module.

Exit codes: 0 success or drill passed, 1 drill or checks failed, 2 bad input or environment.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

import typer
from typer.exceptions import Abort, TyperException

from infra.errors import BadInput, OperationFailed, PrismError
from prism_dr import teardown
from recovery.redact import mask_secrets

app = typer.Typer(
    name="prism-dr",
    help="Project Prism disaster recovery: restore drills, stack plans and runbook commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    # A callback keeps prism-dr a group of commands even when only one is registered (below).
    pass


# Command modules, imported only for the command that runs: between them they load pulumi,
# boto3, psycopg and matplotlib, and a command should pay only for its own (startup time).
_COMMANDS: dict[str, tuple[str, ...]] = {
    "plan": ("plan_cmd",),
    "drill": ("drill_cmd", "reap_cmd"),  # `drill reap`: after the drill group it joins
    "snapshot": ("snapshot_cmd",),
    "audit": ("audit_cmd",),
    "recover": ("recover_cmd",),
    "iam": ("iam_cmd",),
    "doctor": ("doctor_cmd",),
    "db": ("db_cmd",),
}
_registered: set[str] = set()


def _register(argv: list[str]) -> None:
    """Register the command named first in argv, or every command (help, a typo)."""
    words = [a for a in argv if not a.startswith("-")]
    wanted = [words[0]] if words and words[0] in _COMMANDS else list(_COMMANDS)
    for name in wanted:
        if name not in _registered:
            for module in _COMMANDS[name]:
                importlib.import_module(f"prism_dr.{module}").register(app)
            _registered.add(name)


EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
# The one place the error hierarchy (infra/errors.py) meets exit codes. Started and not
# finished is a failure (1); anything to fix before running again is bad input (2).
_EXIT_CODES: tuple[tuple[type[PrismError], int], ...] = (
    (OperationFailed, EXIT_FAILED),
    (BadInput, EXIT_BAD_INPUT),
)


def exit_code(error: PrismError) -> int:
    return next((code for kind, code in _EXIT_CODES if isinstance(error, kind)), EXIT_FAILED)


def main(argv: list[str] | None = None) -> None:
    """Run the app; bad input becomes one line on stderr and exit 2, never a traceback."""
    argv = sys.argv[1:] if argv is None else argv
    _register(argv)
    try:
        code = app(args=argv, prog_name="prism-dr", standalone_mode=False)
    except TyperException as error:  # typer's own usage errors: bad flag, bad value, no command
        if not error.format_message():  # no command given: the help was the answer
            sys.exit(error.exit_code)
        ctx = getattr(error, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx else ""
        _fail(f"{error.format_message()}{hint}", code=error.exit_code)
    except PrismError as error:
        _fail(str(error), code=exit_code(error))
    except Abort:
        _fail("aborted", code=130)
    sys.exit(code if isinstance(code, int) else 0)


def cli() -> None:
    """The console script (and `python -m prism_dr`): main(), ending the process at once when
    the command allowed it. Tests call main(), which always returns through SystemExit."""
    try:
        main()
    except SystemExit as done:
        if teardown.needed():
            raise
        code = done.code
        if not isinstance(code, int):
            if code is not None:
                print(code, file=sys.stderr)
            code = 0 if code is None else 1
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to reach
                stream.flush()
        os._exit(code)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    first_line = mask_secrets(first_line)  # an error may quote what the user typed
    print(f"prism-dr: error: {first_line}", file=sys.stderr)
    sys.exit(code)
