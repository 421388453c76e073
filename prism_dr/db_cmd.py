"""`prism-dr db bootstrap --stack S`: the API's application role on the stack's database.

Exit 0 when the role and its grants are in place, 2 on bad input (no such stack, secret or
instance, no route to the database, a role that already has too much). runbook/db_bootstrap.py
does the work.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from prism_dr.runbook_options import PROJECT_DIR_HELP, STACK_HELP
from recovery.aws import client, resolve_target
from runbook.db_bootstrap import SSL_MODES, bootstrap

out = Console()


def register(app: typer.Typer) -> None:
    db = typer.Typer(help="The database's roles: the API's application role.")
    app.add_typer(db, name="db")

    @db.command("bootstrap")
    def run_bootstrap(
        stack: str = typer.Option(..., "--stack", "-s", help=STACK_HELP),
        host: str | None = typer.Option(
            None, "--host", help="Connect here instead of the instance's endpoint (port forward)."
        ),
        port: int | None = typer.Option(None, "--port", min=1, max=65535, help="With --host."),
        sslmode: str | None = typer.Option(
            None,
            "--sslmode",
            help="verify-full (default), or verify-ca through a port forward, where the host "
            "name is not the certificate's (the default with --host).",
        ),
        ca_bundle: Path | None = typer.Option(
            None,
            "--ca-bundle",
            help="The RDS CA bundle (global-bundle.pem); default: libpq's ~/.postgresql/root.crt.",
        ),
        schema: list[str] = typer.Option(
            ["public"], "--schema", help="Schema of the application's tables (repeatable)."
        ),
        project_dir: Path | None = typer.Option(None, "--project-dir", help=PROJECT_DIR_HELP),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Create the API's role (or set its password) and its grants; safe to run again."""
        from infra.errors import BadInput

        mode = sslmode or ("verify-ca" if host else "verify-full")
        if mode not in SSL_MODES:
            raise BadInput(f"--sslmode {mode!r} is not one of {', '.join(SSL_MODES)}")
        if port is not None and host is None:
            raise BadInput("--port goes with --host (the port forward's local end)")
        if ca_bundle is not None and not ca_bundle.is_file():
            raise BadInput(f"--ca-bundle {ca_bundle} is not a readable file")
        target = resolve_target(stack, None, project_dir)
        report = bootstrap(
            target,
            rds=client("rds", target.region),
            secrets=client("secretsmanager", target.region),
            ssm=client("ssm", target.region),
            host=host,
            port=port,
            sslmode=mode,
            sslrootcert=str(ca_bundle) if ca_bundle else None,
            schemas=schema,
        )
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "stack": stack,
                        "database": report.database,
                        "role": report.role,
                        "created": report.created,
                        "schemas": list(report.schemas),
                    }
                )
            )
        else:
            verb = "created" if report.created else "up to date (password set)"
            out.print(
                f"role {report.role} {verb} on {report.database} of {target.label}: "
                f"reads and writes {', '.join(report.schemas)}"
            )
