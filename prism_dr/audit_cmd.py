"""`prism-dr audit`: the live backup posture against the spec's targets, for a schedule.

Exit 0 when every check passes (warnings included), 1 when any fails (a source that cannot
be read, the database itself included, fails the checks needing it), 2 on bad input (the
options, the stack file). The drill and snapshot records are the project directory's
(`--project-dir`, else the checkout found from here up, else this installation's), so the
audit judges the same records wherever it is run from. The rules are in runbook/audit.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from drills.record import DEFAULT_RECORD_DIR
from prism_dr.runbook_options import DB_HELP, PROJECT_DIR_HELP, STACK_HELP, project_root
from recovery.aws import client, resolve_target
from runbook import audit
from runbook.snapshot_record import DEFAULT_SNAPSHOT_RECORD_DIR

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
            "time (the newest pre-migration snapshot must be newer). Default: the project's "
            "newest Prism-Migration commit trailer or snapshot record.",
        ),
        record_dir: Path | None = typer.Option(
            None,
            "--record-dir",
            help=f"Where the drill records are (default: the project's {DEFAULT_RECORD_DIR}).",
        ),
        project_dir: Path | None = typer.Option(None, "--project-dir", help=PROJECT_DIR_HELP),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Check backups, PITR, protection, encryption, replication, snapshots and drills."""
        target = resolve_target(stack, db_instance, project_dir)
        last = audit.LastMigration.parse(last_migration) if last_migration else None
        root = project_root(project_dir)
        if last is None and root is not None:
            last = audit.last_migration_of(root, root / DEFAULT_SNAPSHOT_RECORD_DIR)
        if record_dir is None and root is not None:
            record_dir = root / DEFAULT_RECORD_DIR
        hint = (
            "pass --record-dir DIR"
            if root is None
            else f"run drills from {root} or pass --record-dir DIR"
        )
        expectations = audit.Expectations.for_target(target, dr_region)
        facts = audit.gather(
            client("rds", target.region),
            db_instance=target.db_instance,
            expectations=expectations,
            dr_client=lambda region: client("rds", region),
            tagging=lambda region: client("resourcegroupstaggingapi", region),
            drill_records=lambda: audit.read_drill_records(record_dir, hint),
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
