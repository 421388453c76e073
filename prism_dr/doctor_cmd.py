"""`prism-dr doctor [--stack S] [--role ROLE] [--json]`: a read-only check of the real
account before a first run (runbook/doctor.py). Exit 0 all pass (skips allowed), 1 a check
failed, 2 bad input."""

from __future__ import annotations

import json
import os
import re

import typer
from rich.console import Console
from rich.table import Table

from infra.ci_roles import ROLES
from infra.errors import BadInput

out = Console()
_COLOURS = {"pass": "green", "fail": "red", "skip": "yellow"}


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(
        stack: str | None = typer.Option(
            None, "--stack", "-s", help="The stack whose secrets key and scope to check."
        ),
        role: str | None = typer.Option(
            None, "--role", help=f"The CI role to check: {', '.join(ROLES)}."
        ),
        region: str | None = typer.Option(
            None, "--region", help="The account's home region (default AWS_REGION)."
        ),
        db_instance: str = typer.Option(
            "prism-prod",
            "--db-instance",
            help="Prod's RDS identifier, as the role table scopes it.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
    ) -> None:
        """Check credentials, state, keys, the role's permissions and the tools; change nothing."""
        from recovery.aws import client
        from runbook.doctor import Doctor

        where = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not where or not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", where):
            raise BadInput(f"--region {where!r} is not an AWS region; pass --region or AWS_REGION")
        if stack is not None and not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", stack):
            raise BadInput(f"--stack {stack!r} is not a stack name like staging or prod")
        checks = Doctor(
            region=where, environ=os.environ, clients=client, db_instance=db_instance
        ).run(stack=stack, role=role)
        if as_json:
            out.print_json(json.dumps([c.as_dict() for c in checks]))
        else:
            table = Table(title="prism-dr doctor (read-only)")
            for column in ("check", "status", "detail", "fix"):
                table.add_column(column, overflow="fold")
            for c in checks:
                status = f"[{_COLOURS[c.status]}]{c.status}[/]"
                table.add_row(c.name, status, c.detail, c.fix)
            out.print(table)
        raise typer.Exit(1 if any(c.status == "fail" for c in checks) else 0)
