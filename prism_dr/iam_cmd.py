"""`prism-dr iam policy ROLE [--stack S] [--json]`: the identity policy a CI role needs,
generated from the one table in infra/ci_roles.py (the bootstrap applies the same documents).
For review, and for accounts whose IAM is managed elsewhere."""

from __future__ import annotations

import json
import re

import typer
from rich.console import Console
from rich.table import Table

from infra.ci_roles import ROLE_TABLE, ROLES, Placeholders, policy_document, role_arn
from infra.errors import BadInput

out = Console()

_ACCOUNT = re.compile(r"\d{12}")
_REGION = re.compile(r"\*|[a-z]{2}(-gov)?-[a-z]+-\d")
_DB = re.compile(r"[a-z][a-z0-9-]{0,62}")


def register(app: typer.Typer) -> None:
    iam = typer.Typer(help="The CI roles' IAM, generated from infra/ci_roles.py.")
    app.add_typer(iam, name="iam")

    @iam.command("policy")
    def policy(
        role: str = typer.Argument(..., help=f"One of: {', '.join(ROLES)}."),
        stack: str | None = typer.Option(
            None,
            "--stack",
            "-s",
            help="Scope the program's writes to this stack (default: the role's).",
        ),
        account: str = typer.Option(
            "123456789012",
            "--account",
            envvar="PRISM_DR_AWS_ACCOUNT",
            help="The AWS account id the ARNs name.",
        ),
        region: str = typer.Option("*", "--region", help="The region the ARNs name (* for any)."),
        db_instance: str = typer.Option(
            "prism-prod", "--db-instance", help="Prod's RDS identifier (snapshots, drills)."
        ),
        bucket: str | None = typer.Option(
            None, "--bucket", help="The state bucket (default prism-pulumi-state-<account>)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the policy document only."),
    ) -> None:
        """Print the identity policy ROLE needs (what its commands and programs call)."""
        if role not in ROLE_TABLE:
            raise BadInput(f"ROLE {role!r} is not a CI role; use one of {', '.join(ROLES)}")
        if not _ACCOUNT.fullmatch(account):
            raise BadInput(f"--account {account!r} is not a 12-digit AWS account id")
        if not _REGION.fullmatch(region):
            raise BadInput(f"--region {region!r} is not an AWS region name like us-east-1, or *")
        if not _DB.fullmatch(db_instance):
            raise BadInput(f"--db-instance {db_instance!r} is not an RDS identifier")
        if stack is not None and not re.fullmatch(r"[a-z][a-z0-9*-]{0,62}", stack):
            raise BadInput(f"--stack {stack!r} is not a stack name like staging or drill-*")
        where = Placeholders(
            account=account,
            region=region,
            db=db_instance,
            bucket=bucket or f"prism-pulumi-state-{account}",
        )
        document = policy_document(role, stack=stack, where=where)
        if as_json:
            out.print_json(json.dumps(document))
            return
        spec = ROLE_TABLE[role]
        out.print(
            f"[bold]{role_arn(role, account=account)}[/]: {spec.description}", highlight=False
        )
        table = Table(show_lines=True)
        for column in ("statement", "actions", "resources", "condition"):
            table.add_column(column, overflow="fold")
        for st in document["Statement"]:
            table.add_row(
                st["Sid"],
                "\n".join(st["Action"]),
                "\n".join(st["Resource"]),
                json.dumps(st.get("Condition", "")) if st.get("Condition") else "",
            )
        out.print(table)
        out.print(
            f"`prism-dr iam policy {role} --json` prints the document "
            f"({sum(len(st['Action']) for st in document['Statement'])} actions)",
            highlight=False,
        )
