"""`prism-dr drill …`: the local drill of a logical backup, the demo, and the drill log."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from drills.local.plan import LocalDrillPlan, parse_point
from drills.local.preflight import check_inputs
from drills.local.runner import DrillOutcome, run_local_drill, terminate_as_interrupt
from drills.record import DEFAULT_RECORD_DIR, Result, format_duration, rebuild_log, redacted
from drills.verify.model import Tier
from infra.errors import BadInput, EnvironmentFault
from prism_dr.console import STATUS_STYLE, ConsoleObserver
from recovery.redact import shown

err = Console(stderr=True)
out = Console()

DEMO_SOURCE_PLACEHOLDER = "postgresql://demo@127.0.0.1/prism"  # built once the inputs pass

def register(app: typer.Typer) -> None:
    drill = typer.Typer(
        help="Restore drills: restore a backup into an ephemeral database, verify, record.",
        invoke_without_command=True,
        no_args_is_help=False,
    )

    @drill.callback()
    def run(
        ctx: typer.Context,
        demo: bool = typer.Option(
            False, "--demo", help="Drill a generated sample Prism database end to end."
        ),
        backup: Path | None = typer.Option(
            None,
            "--backup",
            help="pg_dump archive or directory, .sql/.sql.gz, or Supabase .backup.gz.",
        ),
        source_dsn: str | None = typer.Option(
            None,
            "--source-dsn",
            envvar="PRISM_DR_SOURCE_DSN",
            show_envvar=True,
            help="Live database to compare with; dumped first when no --backup is given.",
        ),
        point: str | None = typer.Option(
            None, "--point", help="Backup point (ISO 8601 with offset) when the file lacks one."
        ),
        manifest: Path | None = typer.Option(
            None, "--manifest", help="YAML manifest of extra expectations (default: Prism's)."
        ),
        tier: Tier = typer.Option(Tier.STANDARD, "--tier", help="How deep to verify."),
        record_dir: Path | None = typer.Option(
            None,
            "--record-dir",
            help=f"Where records go (default {DEFAULT_RECORD_DIR}; demo: demo-records).",
        ),
        environment: str | None = typer.Option(
            None, "--environment", help="Environment named in the record (default local/demo)."
        ),
        api_url: str | None = typer.Option(
            None, "--api-url", help="Probe /health and /ready of an API using the restored DB."
        ),
        api_cmd: str | None = typer.Option(
            None,
            "--api-cmd",
            help="Start this command with DATABASE_URL and PORT set, then probe it.",
        ),
        jobs: int | None = typer.Option(None, "--jobs", min=1, help="pg_restore parallelism."),
        operator: str | None = typer.Option(
            None, "--operator", envvar="PRISM_DR_OPERATOR", help="Who completed the drill."
        ),
        notes: str = typer.Option("", "--notes", help="Free text for the record."),
        keep: bool = typer.Option(
            False, "--keep", help="Leave the restored database running and print how to reach it."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the record as JSON on stdout."),
        # The AWS drill (prism_dr/aws_drill_cmd.py): a restored stack from RDS backups.
        stack: str | None = typer.Option(
            None, "--stack", help="AWS drill: restore this stack's database (Pulumi.<stack>.yaml)."
        ),
        db_instance: str | None = typer.Option(
            None, "--db-instance", help="AWS drill: restore this instance instead of the stack's."
        ),
        region: str | None = typer.Option(
            None, "--region", help="AWS drill: restore from the backups replicated to this region."
        ),
        direct: bool = typer.Option(
            False, "--direct", help="AWS drill: connect to the DB directly (runner in the VPC)."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="AWS drill: show what would be created, and the cost."
        ),
        ttl: str | None = typer.Option(
            None, "--ttl", help="AWS drill: expiry tag for the reaper (default 6h)."
        ),
        local_state: bool = typer.Option(
            False,
            "--local-state",
            help="AWS drill: accept a file:// Pulumi backend in CI (state on this runner).",
        ),
        no_tunnel: bool = typer.Option(
            False, "--no-tunnel", help="AWS drill: no drill hostname and tunnel."
        ),
        smoke_cmd: str | None = typer.Option(
            None,
            "--smoke-cmd",
            help="Your smoke test, run with BASE_URL set to the API (the AWS drill's "
            "hostname; the local drill's --api-cmd/--api-url); its exit code is a check.",
        ),
        project_dir: Path | None = typer.Option(
            None, "--project-dir", help="AWS drill: where Pulumi.<stack>.yaml lives.", hidden=True
        ),
        pg_bindir: Path | None = typer.Option(
            None,
            "--pg-bindir",
            envvar="PRISM_DR_PG_BINDIR",
            show_envvar=True,
            help="PostgreSQL bin directory to restore with (default: found by the backup's major).",
        ),
    ) -> None:
        if ctx.invoked_subcommand:
            return
        if stack or db_instance or region or direct or dry_run or local_state:
            from prism_dr import aws_drill_cmd

            if not stack:
                raise BadInput("the AWS drill needs --stack STACK (its host and tunnel settings)")
            if demo or backup:
                raise BadInput("--stack drills AWS backups; drop --demo/--backup")
            options = aws_drill_cmd.AwsDrillOptions(
                stack=stack,
                point=point or "latest",
                db_instance=db_instance,
                region=region,
                tier=tier,
                ttl=ttl,
                tunnel=False if no_tunnel else None,
                keep=keep,
                direct=direct,
                dry_run=dry_run,
                as_json=as_json,
                record_dir=record_dir or DEFAULT_RECORD_DIR,
                manifest=manifest,
                smoke_cmd=smoke_cmd,
                operator=operator,
                notes=notes,
                project_dir=project_dir,
                local_state=local_state,
            )
            raise typer.Exit(aws_drill_cmd.run(options))
        # An exported PRISM_DR_SOURCE_DSN is the user's default, not a clash with --demo.
        dsn_source = ctx.get_parameter_source("source_dsn")
        dsn_given = dsn_source is not None and dsn_source.name == "COMMANDLINE"
        if demo and (backup or dsn_given):
            raise BadInput("--demo builds its own source; drop --backup/--source-dsn")
        if demo:
            source_dsn = None
        settings = dict(
            backup=backup,
            source_dsn=source_dsn,
            point=parse_point(point),
            tier=tier,
            manifest=manifest,
            keep=keep,
            api_url=api_url,
            api_cmd=api_cmd,
            smoke_cmd=smoke_cmd,
            completed_by=operator,
            notes=notes,
            pg_bindir=pg_bindir,
        )
        if jobs:
            settings["jobs"] = jobs
        observer = ConsoleObserver(err)
        try:
            with terminate_as_interrupt():
                if demo:
                    outcome = _run_demo(settings, record_dir, environment, observer)
                else:
                    if not (backup or source_dsn):
                        raise BadInput(
                            "nothing to drill: pass --backup FILE, --source-dsn DSN, or --demo"
                        )
                    plan = LocalDrillPlan(
                        **settings,
                        environment="local" if environment is None else environment,
                        record_dir=record_dir or DEFAULT_RECORD_DIR,
                    )
                    outcome = run_local_drill(plan, observer)
        except KeyboardInterrupt:
            observer.flush()  # stopped on purpose (exit 130): what ran so far is worth showing
            raise
        finally:
            observer.close()
        if outcome.record.result == Result.ERROR:
            if as_json:
                _report(outcome, as_json)
            raise EnvironmentFault(
                f"the drill could not finish: {outcome.record.error}; recorded as an "
                f"environment error (the backup was not judged) in {outcome.record_paths[1]}"
            )
        observer.flush()
        _report(outcome, as_json)
        raise typer.Exit(0 if outcome.passed else 1)

    @drill.command("log")
    def log(
        record_dir: Path = typer.Option(
            DEFAULT_RECORD_DIR, "--record-dir", help="Directory holding the drill records."
        ),
    ) -> None:
        """Rebuild the drill log (README.md + RTO/RPO chart) from the records."""
        if not record_dir.is_dir():
            raise BadInput(
                f"--record-dir {shown(record_dir)}: no such directory; pass the records' one"
            )
        path = rebuild_log(record_dir)
        out.print(f"drill log: {path}")

    app.add_typer(drill, name="drill")


def _run_demo(
    settings: dict, record_dir: Path | None, environment: str | None, observer: ConsoleObserver
) -> DrillOutcome:
    from drills.local.demo import DEMO_RECORD_DIR, sample_source, standin_api_command

    if not settings["api_url"] and not settings["api_cmd"]:
        settings["api_cmd"] = standin_api_command()
    demo_plan = {
        **{key: value for key, value in settings.items() if key != "source_dsn"},
        "environment": "demo" if environment is None else environment,
        "record_dir": record_dir or DEMO_RECORD_DIR,
    }
    # The sample source takes a while to build: every other input is checked first.
    check_inputs(LocalDrillPlan(**demo_plan, source_dsn=DEMO_SOURCE_PLACEHOLDER), probe=False)
    observer.phase_started("build sample source")
    started = time.monotonic()
    with ExitStack() as resources:
        try:
            source_dsn = resources.enter_context(sample_source())
        finally:  # stop the spinner even when building the source fails
            observer.phase_finished("build sample source", time.monotonic() - started)
        return run_local_drill(LocalDrillPlan(**demo_plan, source_dsn=source_dsn), observer)


def _report(outcome: DrillOutcome, as_json: bool) -> None:
    record = redacted(outcome.record)
    if as_json:
        payload = json.loads(record.model_dump_json())
        payload["record_files"] = [str(p) for p in outcome.record_paths]
        if outcome.kept:
            payload["kept"] = {
                "dsn": outcome.kept.dsn_without_password,
                "password_file": str(outcome.kept.password_file),
                "stop_command": outcome.kept.stop_command,
            }
        out.print_json(data=payload)
        return
    table = Table(title=f"Restore drill — {record.result.value.upper()}", show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("detail", overflow="fold")
    for check in record.checks:
        style = STATUS_STYLE[check.status]
        table.add_row(
            check.name, f"[{style}]{check.status.value}[/]", f"{check.seconds:.2f} s", check.detail
        )
    out.print(table)
    lag = (
        f" · data lag {format_duration(record.data_lag_seconds)} (newest source row → newest "
        "restored row)"
        if record.data_lag_seconds is not None
        else ""
    )
    out.print(
        f"RTO {format_duration(record.rto_seconds)} ({record.rto_kind.label}; target "
        f"{record.targets.rto_hours:g} h) · RPO {format_duration(record.rpo_seconds)} (backup "
        f"age at drill start; target {record.targets.rpo_hours:g} h){lag} · backup point "
        f"{record.backup_point_used}",
        highlight=False,
    )
    out.print(f"record: {outcome.record_paths[0]}  log: {outcome.log_path}", highlight=False)
    if outcome.kept:
        kept = outcome.kept
        out.print(
            f"kept running: {kept.dsn_without_password} (password in {kept.password_file})\n"
            f"remove it with: {kept.stop_command}",
            highlight=False,
        )
