"""`prism-dr recover`: a recovery environment from a backup point, spec §4.1/§4.2 as code.

The plan is printed first and the point checked against the restorable window before
anything is created (exit 2 when outside). `--dry-run` stops there, adding the resources the
recovery stack would declare and their hourly cost. Otherwise the plan is confirmed (unless
`--yes`), the recovery stack goes up through the StackEngine, the API's application role gets
the stack's new password on the restored instance (through an SSM port forward via the
recovery host, or `--direct` from inside the VPC), `/ready` is awaited through its hostname,
and with `--cutover` (confirmed again, or `--yes`) the production hostname moves to it and
`/ready` is probed there. The same command with the same `--name` continues a recovery that
stopped half-way; every hint prints it. Exit 0 when the recovery serves `/ready`, 1 when
something was created and did not get there, 2 on bad input or when nothing was created. The
work is in runbook/recover.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from drills.aws.forward import (
    DatabaseAccess,
    Direct,
    SsmPortForward,
    check_forward_tools,
    reset_app_role,
    secrets_manager_credentials,
)
from drills.record import format_duration
from infra.errors import BadInput, OperationFailed
from prism_dr.runbook_options import PROJECT_DIR_HELP, STACK_HELP
from recovery.aws import client, resolve_target
from recovery.cloudflare import CloudflareApi, CloudflareError, Cutover
from recovery.engine import EngineError, StackEngine, check_backend
from recovery.points import Point, find_source
from recovery.stack import RecoveryPlan, build_plan, recovery_program, runtime_secrets
from runbook import recover as rec

out = Console()
err = Console(stderr=True, soft_wrap=True)
_NAME = re.compile(r"[a-z][a-z0-9-]{0,40}[a-z0-9]")

# Seams for tests: the real engine and Cloudflare cannot run here.
base_url = rec.https_url


def make_engine() -> StackEngine:
    if shutil.which("pulumi") is None:  # checked here: the adapter would fail only at `up`
        raise BadInput(
            "the Pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/) "
            "and run again; --dry-run shows the plan without it"
        )
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


def make_access(region: str, direct: bool) -> DatabaseAccess:
    """How the restored instance is reached: the port forward needs the AWS CLI and its
    Session Manager plugin, checked here, before anything is created."""
    credentials = secrets_manager_credentials(region)
    if direct:
        return Direct(credentials=credentials)
    check_forward_tools()
    return SsmPortForward(region=region, credentials=credentials)


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
        replicate_to: str | None = typer.Option(
            None,
            "--replicate-to",
            help="With --region: a third region for the recovered instance's backup copies "
            "(never the lost home region).",
        ),
        name: str | None = typer.Option(
            None,
            "--name",
            help="Recovery stack name (default recovery-<utc minute>); the same name continues "
            "that recovery.",
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Print the plan, resources and cost; create nothing."
        ),
        do_cutover: bool = typer.Option(
            False, "--cutover", help="Move the production hostname to the recovery tunnel."
        ),
        undo: bool = typer.Option(
            False, "--undo-cutover", help="Move the production hostname back (needs --name)."
        ),
        yes: bool = typer.Option(
            False, "--yes", help="Do not ask before creating the stack or moving the hostname."
        ),
        direct: bool = typer.Option(
            False,
            "--direct",
            help="Reach the restored DB directly (this machine is in its VPC), not through an "
            "SSM port forward via the recovery host.",
        ),
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
        if name is not None and not _NAME.fullmatch(name):
            raise BadInput(f"--name {name!r}: lowercase letters, digits and hyphens, up to 42")
        if undo:
            check_backend(os.environ, local_state=local_state, recovering=True)
            _undo(target, name, yes, info, as_json)
            return
        name = name or f"recovery-{started.strftime('%Y%m%d%H%M')}"
        where = region or target.region
        parsed = Point.parse(point)
        resume = resume_command(
            stack, name, point, region, replicate_to, do_cutover, ready_minutes, project_dir,
            direct,
        )
        source = find_source(
            client("rds", where),
            db_instance=target.db_instance,
            home_region=target.region,
            region=where,
            point=parsed,
            now=started,
            home_rds=client("rds", target.region) if where != target.region else None,
        )
        plan = build_plan(target, point=parsed, source=source, name=name, replicate_to=replicate_to)
        if dry_run:
            if do_cutover:  # declared as it would be, with where it points read at cutover
                plan = replace(plan, cutover_from="(read at cutover)")
            _dry_run(plan, project_dir, info, as_json, resume)
            return
        info.print(_table("Recovery plan", [*plan.lines(), ("to continue", resume)]))
        # A recovery stack may become production: its state must outlive this machine (the dry
        # run above creates no state).
        check_backend(os.environ, local_state=local_state, recovering=True)
        engine = make_engine()  # a missing CLI or passphrase stops us before anything
        access = make_access(where, direct)  # and so does a missing port-forward tool
        previous = _outputs_or_none(engine, name)
        dns = make_cutover() if do_cutover else None  # a missing token, too
        cutover_from = (previous or {}).get("cutoverFrom")
        if dns is not None and not cutover_from:
            # Read before anything moves: the undo points the hostname back here.
            cutover_from = dns.cname_target(plan.cfg.tunnel.zone_id, plan.prod_hostname)
        if cutover_from:
            plan = replace(plan, cutover_from=str(cutover_from))
        secrets = runtime_secrets(client("ssm", target.region), target.stack or stack)
        if previous is not None:
            info.print(f"continuing the recovery stack {plan.name}", highlight=False)
        if not yes:
            typer.confirm(
                f"Create the recovery stack {plan.name} as planned above (a new "
                f"{plan.cfg.database.instance_class} DB instance, its host and tunnel)?",
                abort=True,
                err=True,
            )
        info.print(f"standing up {plan.name} …", highlight=False)
        outcome = rec.stand_up(
            plan,
            engine,
            secrets,
            started_at=started,
            resume=resume,
            base_url=base_url,
            ready_timeout=timedelta(minutes=ready_minutes),
            ready_interval=ready_interval,
            on_step=lambda s: info.print(f"  done: {s.name} ({format_duration(s.seconds)})"),
            app_role=lambda outputs: reset_app_role(access, outputs),
        )
        if dns is not None:
            _cutover(plan, outcome, dns, yes, ready_minutes, ready_interval, resume)
        _summary(outcome, info, as_json)


def resume_command(
    stack: str,
    name: str,
    point: str,
    region: str | None,
    replicate_to: str | None,
    cutover: bool,
    ready_minutes: float,
    project_dir: Path | None,
    direct: bool = False,
) -> str:
    """The exact command that continues this recovery: the same stack, name and point."""
    argv = ["prism-dr", "recover", "--stack", stack, "--name", name, "--point", point]
    if region:
        argv += ["--region", region]
    if replicate_to:
        argv += ["--replicate-to", replicate_to]
    if cutover:
        argv.append("--cutover")
    if ready_minutes != rec.READY_TIMEOUT.total_seconds() / 60:
        argv += ["--ready-timeout", f"{ready_minutes:g}"]
    if project_dir is not None:
        argv += ["--project-dir", str(project_dir)]
    if direct:
        argv.append("--direct")
    return shlex.join(argv)


def _outputs_or_none(engine: StackEngine, name: str) -> dict[str, Any] | None:
    """The stack's outputs when it exists (a recovery to continue), else None."""
    try:
        found = [s for s in engine.list_stacks(name) if s.name == name]
        return dict(engine.outputs(name)) if found else None
    except EngineError:
        return None


def _cutover(
    plan: RecoveryPlan,
    outcome: rec.Outcome,
    dns: Cutover,
    yes: bool,
    ready_minutes: float,
    ready_interval: float,
    resume: str,
) -> None:
    undo = shlex.join(
        ["prism-dr", "recover", "--stack", plan.prod_stack, "--name", plan.name, "--undo-cutover"]
    )
    if not yes:
        question = f"Move {plan.prod_hostname} to the recovery tunnel of {plan.name}?"
        typer.confirm(question, abort=True, err=True)
    try:
        rec.cutover(plan, outcome.outputs, dns)
    except CloudflareError as error:
        raise OperationFailed(
            f"{plan.name} is up and ready, but the cutover failed: {error}; run `{resume}`"
        ) from None
    outcome.steps.append(rec.Step("cutover", 0.0, f"{plan.prod_hostname} → {plan.name}"))
    url = base_url(plan.prod_hostname) + "/ready"
    last = rec.wait_ready(url, timedelta(minutes=ready_minutes), ready_interval)
    if last != 200:
        raise OperationFailed(
            f"{plan.prod_hostname} now points at {plan.name}, but {url} answered "
            f"{last or 'nothing'}; move it back with `{undo}`"
        )
    outcome.steps.append(rec.Step("/ready 200 on the production hostname", 0.0, url))


def _dry_run(
    plan: RecoveryPlan, project_dir: Path | None, info: Console, as_json: bool, resume: str
) -> None:
    """The plan, every resource the recovery stack would declare (Pulumi's mocks, no cloud)
    and its hourly cost; nothing is created and no secret is read."""
    from infra.config import SECRET_SETTINGS
    from infra.offline import run_program

    placeholders = dict.fromkeys(SECRET_SETTINGS.values(), "dry-run")
    run = run_program(
        plan.prod_stack,
        project_dir=project_dir,
        overrides={"aws:region": plan.region},
        program=recovery_program(plan, placeholders),
        preview=True,
    )
    resources = rec.declared_resources(run, plan.region)
    cost = rec.hourly_cost(plan)
    if as_json:
        report = {
            "dry_run": True,
            "plan": dict(plan.lines()),
            "resources": [{"type": t, "name": n, "region": r} for t, n, r in resources],
            "cost": cost,
            "run": resume,
        }
        typer.echo(json.dumps(report, indent=2))
        return
    out.print(_table("Recovery plan (dry run: nothing is created)", plan.lines()))
    table = Table(title=f"Resources {plan.name} would create ({len(resources)})")
    for column in ("type", "name", "region"):
        table.add_column(column, overflow="fold")
    for row in resources:
        table.add_row(*row)
    out.print(table)
    out.print(f"cost while it runs: {cost}", highlight=False)
    out.print(f"to create it: {resume}", highlight=False, soft_wrap=True)


def _undo(target: Any, name: str | None, yes: bool, info: Console, as_json: bool) -> None:
    if name is None:
        raise BadInput("--undo-cutover needs --name: the recovery stack the hostname moved to")
    from infra.config import full_key, parse_section

    tunnel = parse_section("tunnel", (target.stack_config or {}).get(full_key("tunnel")))
    engine = make_engine()
    try:
        recovery_outputs = engine.outputs(name)
    except EngineError as error:
        raise BadInput(f"cannot read the outputs of the recovery stack {name}: {error}") from None
    before = recovery_outputs.get("cutoverFrom")
    if not yes:
        typer.confirm(
            f"Move {tunnel.hostname} back to {before or '(nothing recorded)'}, where it "  # type: ignore[attr-defined]
            f"pointed before the cutover to {name}?",
            abort=True,
            err=True,
        )
    new_target = rec.undo_cutover(
        recovery_name=name,
        recovery_outputs=recovery_outputs,
        zone_id=tunnel.zone_id,  # type: ignore[attr-defined]
        prod_hostname=tunnel.hostname,  # type: ignore[attr-defined]
        api=make_cutover(),
    )
    message = {"hostname": tunnel.hostname, "points_at": new_target, "recovery_stack": name}  # type: ignore[attr-defined]
    if as_json:
        typer.echo(json.dumps(message, indent=2))
    else:
        info.print(f"{message['hostname']} points at {new_target} again, as before the cutover")


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
