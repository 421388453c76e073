"""`prism-dr snapshot create|list|prune`: the pre-migration snapshot of spec §3 and §5.

CI runs `snapshot create` before the production `pulumi up` that applies a migration: it
exits 0 only once the snapshot is `available` and recorded, 1 when it did not get there in
time (the migration must not run), 2 when the database is missing or not available (nothing
was created). The AWS work is in runbook/snapshot.py; this module parses, waits visibly and
prints.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from drills.record import default_completed_by, format_duration
from prism_dr.runbook_options import DB_HELP, PROJECT_DIR_HELP, STACK_HELP
from recovery.aws import client, resolve_target
from recovery.redact import scrub
from runbook import snapshot as snap
from runbook.snapshot_record import (
    DEFAULT_SNAPSHOT_RECORD_DIR,
    SnapshotRecord,
    check_record_dir,
    write_record,
)

err = Console(stderr=True, soft_wrap=True)  # progress lines stay whole in CI logs
out = Console()


def now_utc() -> datetime:
    return datetime.now(UTC)


def operator(explicit: str | None) -> str:
    """Who took the snapshot: --created-by / $PRISM_DR_OPERATOR, the CI actor, else git/OS."""
    if explicit and explicit.strip():
        return explicit.strip()
    actor = os.environ.get("GITHUB_ACTOR", "").strip()
    if actor:
        return f"{actor} (GitHub Actions)"
    return default_completed_by()


def target_and_client(stack: str | None, db_instance: str | None, project_dir: Path | None):
    target = resolve_target(stack, db_instance, project_dir)
    return target, client("rds", target.region)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Pre-migration snapshots: take and confirm one, list them, prune expired ones.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="snapshot")

    @group.command("create")
    def create(
        migration: str = typer.Option(
            ..., "--migration", help="Id of the migration about to run (goes in name and tags)."
        ),
        stack: str | None = typer.Option(None, "--stack", "-s", help=STACK_HELP),
        db_instance: str | None = typer.Option(None, "--db-instance", help=DB_HELP),
        retain_days: int = typer.Option(
            snap.DEFAULT_RETAIN_DAYS,
            "--retain-days",
            help=f"Days to keep it (prism:retain-until); at least {snap.MIN_RETAIN_DAYS}.",
        ),
        timeout: float = typer.Option(
            snap.DEFAULT_TIMEOUT_SECONDS,
            "--timeout",
            min=1,
            help="Seconds to wait for `available` before failing (exit 1).",
        ),
        poll: float = typer.Option(
            snap.DEFAULT_POLL_SECONDS,
            "--poll",
            min=0.1,
            help="Seconds between the waiter's checks.",
        ),
        created_by: str | None = typer.Option(
            None,
            "--created-by",
            envvar="PRISM_DR_OPERATOR",
            help="Who takes it (default: the CI actor, git user.name or the OS user).",
        ),
        record_dir: Path = typer.Option(
            DEFAULT_SNAPSHOT_RECORD_DIR, "--record-dir", help="Where the snapshot record goes."
        ),
        project_dir: Path | None = typer.Option(None, "--project-dir", help=PROJECT_DIR_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
    ) -> None:
        """Take a manual snapshot before a migration, wait until it is available, record it."""
        target, rds = target_and_client(stack, db_instance, project_dir)
        check_record_dir(record_dir)
        who = operator(created_by)
        started = now_utc()
        identifier = snap.create_pre_migration_snapshot(
            rds,
            db_instance=target.db_instance,
            migration=migration,
            created_by=who,
            stack=target.stack,
            now=started,
            retain_days=retain_days,
        )
        err.print(f"snapshot [bold]{identifier}[/] of {target.label} started", highlight=False)
        confirmed = _wait_with_progress(rds, identifier, poll, timeout)
        record = SnapshotRecord(
            snapshot_id=confirmed.identifier,
            snapshot_arn=confirmed.arn,
            db_instance=target.db_instance,
            stack=target.stack,
            region=target.region,
            migration=migration.strip(),
            created_at=confirmed.created_at or started,
            confirmed_at=now_utc(),
            retain_until=confirmed.retain_until,
            created_by=who,
            engine_version=confirmed.engine_version,
            allocated_storage_gb=confirmed.allocated_storage_gb,
            encrypted=confirmed.encrypted,
        )
        path, log = write_record(record, record_dir)
        if as_json:
            typer.echo(
                json.dumps({**scrub(record.model_dump(mode="json")), "record": str(path)}, indent=2)
            )
            return
        table = Table(title="Pre-migration snapshot: available", show_header=False)
        table.add_column(no_wrap=True)
        table.add_column(overflow="fold")  # folded, never cut: the id is copied from here
        for key, value in (
            ("snapshot", record.snapshot_id),
            ("database", target.label),
            ("migration", record.migration),
            ("created (UTC)", snap.utc_stamp(record.created_at)),
            ("retain until", snap.utc_stamp(record.retain_until) if record.retain_until else "—"),
            ("created by", record.created_by),
            ("record", f"{path} (log: {log})"),
        ):
            table.add_row(key, value)
        out.print(table)

    @group.command("list")
    def list_(
        stack: str | None = typer.Option(None, "--stack", "-s", help=STACK_HELP),
        db_instance: str | None = typer.Option(None, "--db-instance", help=DB_HELP),
        project_dir: Path | None = typer.Option(None, "--project-dir", help=PROJECT_DIR_HELP),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Pre-migration snapshots of the database with age, expiry and migration."""
        target, rds = target_and_client(stack, db_instance, project_dir)
        now = now_utc()
        rows = [
            _row(s, now)
            for s in snap.snapshots_of(rds, target.db_instance)
            if s.is_pre_migration and not s.is_automated
        ]
        if as_json:
            typer.echo(json.dumps({"database": target.db_instance, "snapshots": rows}, indent=2))
            return
        columns = ("snapshot", "migration", "created (UTC)", "age", "retain until", "expires")
        cells = [
            [
                r["snapshot"],
                r["migration"] or "—",
                r["created_at"] or "—",
                format_duration(r["age_seconds"]),
                r["retain_until"] or "—",
                _expiry_text(r["expires_in_seconds"]),
                r["status"],
            ]
            for r in rows
        ]
        if not rows:
            out.print(f"no pre-migration snapshots of {target.label}")
            return
        print_whole(f"Pre-migration snapshots of {target.label}", [*columns, "status"], cells)

    @group.command("prune")
    def prune(
        stack: str | None = typer.Option(None, "--stack", "-s", help=STACK_HELP),
        db_instance: str | None = typer.Option(None, "--db-instance", help=DB_HELP),
        yes: bool = typer.Option(
            False, "--yes", help="Delete; without it only show what would go."
        ),
        project_dir: Path | None = typer.Option(None, "--project-dir", help=PROJECT_DIR_HELP),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Delete expired pre-migration snapshots (a dry run unless --yes); nothing else."""
        target, rds = target_and_client(stack, db_instance, project_dir)
        decisions = snap.prune_decisions(snap.snapshots_of(rds, target.db_instance), now_utc())
        results = []
        for d in decisions:
            action = d.action.value
            if d.action is snap.Action.DELETE:
                if yes:
                    snap.delete_snapshot(rds, d.snapshot)
                    action = "deleted"
                else:
                    action = "would delete"
            results.append(
                {
                    "snapshot": d.snapshot.identifier,
                    "type": d.snapshot.snapshot_type,
                    "action": action,
                    "reason": d.reason,
                }
            )
        if as_json:
            typer.echo(
                json.dumps(
                    {"database": target.db_instance, "dry_run": not yes, "snapshots": results},
                    indent=2,
                )
            )
            return
        title = f"Prune snapshots of {target.label}" + ("" if yes else " (dry run: pass --yes)")
        if not results:
            out.print(f"no snapshots of {target.label}")
            return
        print_whole(
            title,
            ["snapshot", "type", "action", "reason"],
            [[r["snapshot"], r["type"], r["action"], r["reason"]] for r in results],
        )


def print_whole(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A table when it fits the terminal with every cell on one line; else one block per
    row, its first cell (the snapshot id) alone on a line. Nothing is cut to `prism-pr…`:
    an id is what the operator copies into `recover --point snapshot:ID`."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    if sum(widths) + 3 * len(columns) + 1 <= out.width:
        table = Table(title=title)
        for column in columns:
            table.add_column(column, no_wrap=True)
        for row in rows:
            table.add_row(*row)
        out.print(table)
        return
    out.print(f"[bold]{title}[/]", highlight=False)
    for row in rows:
        out.print(row[0], highlight=False, soft_wrap=True)
        details = " · ".join(f"{c} {v}" for c, v in zip(columns[1:], row[1:], strict=True))
        out.print(f"  {details}", highlight=False, soft_wrap=True)


def _wait_with_progress(rds: Any, identifier: str, poll: float, timeout: float) -> snap.Snapshot:
    """boto3's waiter in a worker thread; a bar of elapsed time against --timeout meanwhile."""
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            outcome["snapshot"] = snap.wait_available(
                rds, identifier, poll_seconds=poll, timeout_seconds=timeout
            )
        except BaseException as error:  # handed to the main thread, re-raised there
            outcome["error"] = error

    worker = threading.Thread(target=wait, name="snapshot-waiter", daemon=True)
    if not err.is_terminal:
        err.print(
            f"waiting for {identifier} to be available (up to {timeout:g} s)", highlight=False
        )
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task(f"waiting for {identifier}", total=timeout)
        started = datetime.now(UTC)
        worker.start()
        while worker.is_alive():
            worker.join(0.25)
            progress.update(
                task, completed=min(timeout, (datetime.now(UTC) - started).total_seconds())
            )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["snapshot"]


def _row(s: snap.Snapshot, now: datetime) -> dict[str, Any]:
    retain = s.retain_until
    return {
        "snapshot": s.identifier,
        "migration": s.migration,
        "created_at": snap.utc_stamp(s.created_at) if s.created_at else None,
        "age_seconds": round((now - s.created_at).total_seconds()) if s.created_at else None,
        "retain_until": snap.utc_stamp(retain) if retain else None,
        "expires_in_seconds": round((retain - now).total_seconds()) if retain else None,
        "status": s.status,
    }


def _expiry_text(seconds: float | None) -> str:
    if seconds is None:
        return "no expiry tag"
    return "expired" if seconds <= 0 else f"in {format_duration(seconds)}"
