"""`prism-dr recover`: a recovery environment from a backup point, spec §4.1/§4.2 as code.

The plan is printed first and the point checked against the restorable window before
anything is created (exit 2 when outside). Then the recovery stack goes up through the
StackEngine, `/ready` is awaited through its hostname, and with `--cutover` (confirmed, or
`--yes`) the production hostname moves to it. Exit 0 when the recovery serves `/ready`, 1
when it was stood up but never got ready, 2 on bad input. The work is in runbook/recover.py.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from drills.record import format_duration
from infra.errors import BadInput, OperationFailed
from prism_dr.runbook_options import PROJECT_DIR_HELP, STACK_HELP
from recovery.aws import client, resolve_target
from recovery.cloudflare import CloudflareApi, CloudflareError, Cutover
from recovery.engine import EngineError, StackEngine, check_backend
from recovery.points import Point, find_source
from recovery.stack import build_plan, runtime_secrets
from runbook import recover as rec

out = Console()
err = Console(stderr=True, soft_wrap=True)
_NAME = re.compile(r"[a-z][a-z0-9-]{0,40}[a-z0-9]")

# Seams for tests: the real engine and Cloudflare cannot run here.
base_url = rec.https_url


def make_engine() -> StackEngine:
    try:
        from recovery.engine import AutomationEngine  # type: ignore[attr-defined]
    except ImportError:
        raise BadInput(
            "this build has no Pulumi Automation API adapter (recovery.engine.AutomationEngine)"
        ) from None
    try:
        return AutomationEngine("prism-infra")
    except EngineError as error:  # e.g. no passphrase for the stacks' secrets
        raise BadInput(str(error)) from None


def make_cutover() -> Cutover:
    return CloudflareApi()


def register(app: typer.Typer) -> None:
    @app.command("recover")
    def recover(
        stack: str = typer.Option(..., "--stack", "-s", help=STACK_HELP),
        point: str = typer.Option(
            "latest", "--point", help="latest, an ISO time with a zone, or snapshot:ID."
        ),
        region: str | None = typer.Option(
            None, "--region", help="Recover in this region from the replicated backups."
        ),
        name: str | None = typer.Option(
            None, "--name", help="Recovery stack name (default recovery-<utc minute>)."
        ),
        do_cutover: bool = typer.Option(
            False, "--cutover", help="Move the production hostname to the recovery tunnel."
        ),
        undo: bool = typer.Option(
            False, "--undo-cutover", help="Move the production hostname back (needs --name)."
        ),
        yes: bool = typer.Option(False, "--yes", help="Do not ask before moving the hostname."),
        ready_minutes: float = typer.Option(
            rec.READY_TIMEOUT.total_seconds() / 60,
            "--ready-timeout",
            min=0,
            help="Minutes to wait for /ready 200 through the recovery hostname.",
        ),
        ready_interval: float = typer.Option(
            rec.READY_INTERVAL_SECONDS,
            "--ready-interval",
            min=0.1,
            help="Seconds between /ready probes.",
        ),
        project_dir: Path | None = typer.Option(None, "--project-dir", help=PROJECT_DIR_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
        local_state: bool = typer.Option(
            False,
            "--local-state",
            help="Accept a file:// Pulumi backend: the recovery stack's state stays here.",
        ),
    ) -> None:
        """Restore into a new instance and environment, wait for /ready, optionally cut over."""
        started = datetime.now(UTC)
        info = err if as_json else out
        target = resolve_target(stack, None, project_dir)
        # A recovery stack may become production: its state must outlive this machine.
        check_backend(os.environ, local_state=local_state, recovering=True)
        if name is not None and not _NAME.fullmatch(name):
            raise BadInput(f"--name {name!r}: lowercase letters, digits and hyphens, up to 42")
        if undo:
            _undo(target, name, yes, info, as_json)
            return
        name = name or f"recovery-{started.strftime('%Y%m%d%H%M')}"
        where = region or target.region
        parsed = Point.parse(point)
        source = find_source(
            client("rds", where),
            db_instance=target.db_instance,
            home_region=target.region,
            region=where,
            point=parsed,
            now=started,
        )
        plan = build_plan(target, point=parsed, source=source, name=name)
        info.print(_table("Recovery plan", plan.lines()))
        secrets = runtime_secrets(client("ssm", target.region), target.stack or stack)
        engine = make_engine()
        dns = make_cutover() if do_cutover else None  # a missing token stops us before anything
        info.print(f"standing up {plan.name} …", highlight=False)
        outcome = rec.stand_up(
            plan,
            engine,
            secrets,
            started_at=started,
            base_url=base_url,
            ready_timeout=timedelta(minutes=ready_minutes),
            ready_interval=ready_interval,
            on_step=lambda s: info.print(f"  done: {s.name} ({format_duration(s.seconds)})"),
        )
        if dns is not None:
            question = f"Move {plan.prod_hostname} to the recovery tunnel of {plan.name}?"
            if not yes:
                typer.confirm(question, abort=True, err=True)
            try:
                outcome.cutover_from = rec.cutover(plan, outcome.outputs, dns)
            except CloudflareError as error:
                raise OperationFailed(
                    f"{plan.name} is up and ready, but the cutover failed: {error}; re-run with "
                    f"--name {plan.name} --cutover"
                ) from None
            outcome.steps.append(rec.Step("cutover", 0.0, f"{plan.prod_hostname} → {plan.name}"))
        _summary(outcome, info, as_json)


def _undo(target: Any, name: str | None, yes: bool, info: Console, as_json: bool) -> None:
    if name is None:
        raise BadInput("--undo-cutover needs --name: the recovery stack the hostname moved to")
    from infra.config import full_key, parse_section

    tunnel = parse_section("tunnel", (target.stack_config or {}).get(full_key("tunnel")))
    engine = make_engine()
    if not yes:
        typer.confirm(
            f"Move {tunnel.hostname} back to the tunnel of stack {target.stack}?",  # type: ignore[attr-defined]
            abort=True,
            err=True,
        )
    try:
        prod_outputs, recovery_outputs = engine.outputs(target.stack), engine.outputs(name)
    except EngineError as error:
        raise BadInput(f"cannot read the stacks' outputs: {error}") from None
    new_target = rec.undo_cutover(
        prod_outputs=prod_outputs,
        recovery_outputs=recovery_outputs,
        account_id=tunnel.account_id,  # type: ignore[attr-defined]
        zone_id=tunnel.zone_id,  # type: ignore[attr-defined]
        prod_hostname=tunnel.hostname,  # type: ignore[attr-defined]
        api=make_cutover(),
    )
    message = {"hostname": tunnel.hostname, "points_at": new_target, "recovery_stack": name}  # type: ignore[attr-defined]
    if as_json:
        typer.echo(json.dumps(message, indent=2))
    else:
        info.print(f"{message['hostname']} points at {new_target} again (stack {target.stack})")


def _summary(outcome: rec.Outcome, info: Console, as_json: bool) -> None:
    plan = outcome.plan
    elapsed = outcome.elapsed(datetime.now(UTC))
    met = elapsed <= rec.RTO
    reconcile = rec.reconcile_steps(plan) if outcome.cutover_from is not None else []
    if as_json:
        report = {
            "recovery_stack": plan.name,
            "point": plan.point.text,
            "region": plan.region,
            "db_instance": plan.db_identifier,
            "kept_instance": plan.prod_identifier,
            "hostname": plan.hostname,
            "steps": [
                {"name": s.name, "seconds": round(s.seconds, 3), "detail": s.detail}
                for s in outcome.steps
            ],
            "elapsed_seconds": round(elapsed.total_seconds(), 3),
            "rto_seconds": rec.RTO.total_seconds(),
            "rto_met": met,
            "outputs": outcome.outputs,
            "cutover_from": outcome.cutover_from,
            "reconcile": reconcile,
            "manual_steps": rec.manual_steps(plan),
        }
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    table = Table(title=f"Recovery {plan.name}: steps done")
    for column in ("step", "time", "detail"):
        table.add_column(column)
    for s in outcome.steps:
        table.add_row(s.name, format_duration(s.seconds), s.detail)
    out.print(table)
    verdict = "[green]within[/]" if met else "[bold red]over[/]"
    out.print(f"elapsed {format_duration(elapsed.total_seconds())}: {verdict} the 4 h RTO")
    if reconcile:
        out.print("[bold]Reconcile the prod stack:[/]")
        for line in reconcile:
            out.print(f"  - {line}", highlight=False)
    out.print("[bold]Manual steps left:[/]")
    for line in rec.manual_steps(plan):
        out.print(f"  - {line}", highlight=False)


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False)
    for key, value in rows:
        table.add_row(key, value)
    return table
