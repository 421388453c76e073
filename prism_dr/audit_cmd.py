"""`prism-dr audit`: the live backup posture against the spec's targets, for a schedule.

Exit 0 when every check passes (warnings included), 1 when any fails, 2 on bad input or an
AWS account that cannot be read. The rules are in runbook/audit.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from drills.record import DEFAULT_RECORD_DIR, load_records
from prism_dr.runbook_options import DB_HELP, PROJECT_DIR_HELP, STACK_HELP
from recovery.aws import client, resolve_target
from runbook import audit

out = Console()

_STYLE = {
    audit.Status.PASS: "green",
    audit.Status.FAIL: "bold red",
    audit.Status.WARN: "yellow",
    audit.Status.SKIP: "dim",
}


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def run_audit(
        stack: str | None = typer.Option(None, "--stack", "-s", help=STACK_HELP),
        db_instance: str | None = typer.Option(None, "--db-instance", help=DB_HELP),
        dr_region: str | None = typer.Option(
            None,
            "--dr-region",
            help="Region of the replicated backups (default: the stack's backupReplication).",
        ),
        last_migration: str | None = typer.Option(
            None,
            "--last-migration",
            help="Newest migration: its id (a snapshot tagged with it must exist) or its ISO "
            "time (the newest pre-migration snapshot must be newer).",
        ),
        record_dir: Path = typer.Option(
            DEFAULT_RECORD_DIR, "--record-dir", help="Where the restore drill records are."
        ),
        project_dir: Path | None = typer.Option(None, "--project-dir", help=PROJECT_DIR_HELP),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Check backups, PITR, protection, encryption, replication, snapshots and drills."""
        target = resolve_target(stack, db_instance, project_dir)
        last = audit.LastMigration.parse(last_migration) if last_migration else None
        expectations = audit.Expectations.for_target(target, dr_region)
        records = load_records(record_dir)  # a corrupt record is bad input: exit 2
        facts = audit.gather(
            client("rds", target.region),
            db_instance=target.db_instance,
            expectations=expectations,
            dr_client=lambda region: client("rds", region),
            tagging=lambda region: client("resourcegroupstaggingapi", region),
            drill_records=records,
        )
        checks = audit.evaluate(facts, expectations, datetime.now(UTC), last)
        ok = audit.passed(checks)
        if as_json:
            report = {
                "database": target.db_instance,
                "stack": target.stack,
                "region": target.region,
                "passed": ok,
                "checks": [
                    {"name": c.name, "status": c.status.value, "detail": c.detail, "items": c.items}
                    for c in checks
                ],
            }
            typer.echo(json.dumps(report, indent=2))
        else:
            table = Table(title=f"Backup posture of {target.label} in {target.region}")
            for column in ("check", "status", "detail"):
                table.add_column(column)
            for c in checks:
                detail = "\n".join([c.detail, *(f"  - {item}" for item in c.items)])
                table.add_row(c.name, f"[{_STYLE[c.status]}]{c.status.value}[/]", detail)
            out.print(table)
            out.print("[green]audit passed[/]" if ok else "[bold red]audit failed[/]")
        raise typer.Exit(0 if ok else 1)
