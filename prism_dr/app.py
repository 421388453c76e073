"""The `prism-dr` entry point: one typer app; each command group lives in its own module.

Exit codes: 0 success or drill passed, 1 drill or checks failed, 2 bad input or environment.
"""

from __future__ import annotations

import sys

import typer
from typer.exceptions import Abort, TyperException

from drills.errors import BadInput
from drills.redact import mask_secrets
from infra.errors import ConfigError
from prism_dr import audit_cmd, drill_cmd, plan_cmd, reap_cmd, recover_cmd, snapshot_cmd
from runbook.errors import OperationFailed

app = typer.Typer(
    name="prism-dr",
    help="Project Prism disaster recovery: restore drills, stack plans and runbook commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plan_cmd.register(app)
drill_cmd.register(app)
reap_cmd.register(app)  # `drill reap`: after the drill group it joins
snapshot_cmd.register(app)
audit_cmd.register(app)
recover_cmd.register(app)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> None:
    """Run the app; bad input becomes one line on stderr and exit 2, never a traceback."""
    try:
        code = app(args=argv, prog_name="prism-dr", standalone_mode=False)
    except TyperException as error:  # typer's own usage errors: bad flag, bad value, no command
        if not error.format_message():  # no command given: the help was the answer
            sys.exit(error.exit_code)
        ctx = getattr(error, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx else ""
        _fail(f"{error.format_message()}{hint}", code=error.exit_code)
    except (BadInput, ConfigError) as error:
        _fail(str(error))
    except OperationFailed as error:  # started and did not finish: a failure, not bad input
        _fail(str(error), code=EXIT_FAILED)
    except Abort:
        _fail("aborted", code=130)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    first_line = mask_secrets(first_line)  # an error may quote what the user typed
    print(f"prism-dr: error: {first_line}", file=sys.stderr)
    sys.exit(code)
