"""`prism-dr drill --stack STACK …`: the AWS drill (prism_dr/drill_cmd.py hands over here).

Everything that can be refused is refused before anything is created: the stack file, the
point against the restorable window, the DR region's replica, the network, the record
directory, the drill's own runtime values (`/prism/drill/`, never the source stack's), the
port-forward tools, the engine's settings.
`--dry-run` stops after the plan: it runs the drill program under Pulumi's mocks and prints
the resources, the runtime values' sources, the TTL and the cost estimate.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from drills.aws.forward import (
    DatabaseAccess,
    Direct,
    SsmPortForward,
    check_forward_tools,
    secrets_manager_credentials,
)
from drills.aws.plan import (
    DEFAULT_TTL,
    AwsDrillPlan,
    cost_estimate,
    parse_ttl,
    plan_aws_drill,
    with_zone_hostname,
)
from drills.aws.runtime import (
    RuntimeValue,
    drill_runtime_values,
    registry_password_of,
    secrets_of,
)
from drills.local.preflight import check_record_dir
from drills.record import format_duration, redacted
from drills.verify.model import Tier
from infra.errors import BadInput
from prism_dr.console import ConsoleObserver
from recovery.aws import client
from recovery.engine import EngineError, StackEngine, check_backend

if TYPE_CHECKING:
    from drills.aws.runner import Sweep
    from recovery.cloudflare import TunnelCleanup

err = Console(stderr=True)
out = Console()
ASSUMED_DRILL_HOURS = 1.0  # the dry run's estimate: a 20-30 min restore, checks, teardown


@dataclass(frozen=True)
class AwsDrillOptions:
    stack: str
    point: str = "latest"
    db_instance: str | None = None
    region: str | None = None
    tier: Tier = Tier.STANDARD
    ttl: str | None = None
    tunnel: bool | None = None
    keep: bool = False
    direct: bool = False
    dry_run: bool = False
    as_json: bool = False
    record_dir: Path = Path("docs/audit/restore-drills")
    manifest: Path | None = None
    smoke_cmd: str | None = None
    operator: str | None = None
    notes: str = ""
    project_dir: Path | None = None
    local_state: bool = False


def make_engine() -> StackEngine:
    from recovery.engine import AutomationEngine

    try:
        return AutomationEngine("prism-infra")
    except EngineError as error:  # e.g. no passphrase for the drill stack's secrets
        raise BadInput(str(error)) from None


def make_access(plan: AwsDrillPlan) -> DatabaseAccess:
    credentials = secrets_manager_credentials(plan.region)
    if plan.direct:
        return Direct(credentials=credentials)
    check_forward_tools()
    return SsmPortForward(region=plan.region, credentials=credentials)


base_url = None  # tests replace it: the stand-in API answers on http://127.0.0.1:<port>


RUN_FILE_ENV = "PRISM_DRILL_RUN_FILE"


def note_run_id(run_id: str) -> None:
    """Append the run id to $PRISM_DRILL_RUN_FILE before anything is created: the workflow's
    `if: always()` step sweeps each id it finds there, whatever became of the drill."""
    path = os.environ.get(RUN_FILE_ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as runs:
            runs.write(run_id + "\n")
    except OSError as error:
        raise BadInput(f"{RUN_FILE_ENV}={path} cannot be written: {error.strerror}") from None


def make_tunnels(plan: AwsDrillPlan) -> TunnelCleanup | None:
    """The Cloudflare calls of the teardown and the sweep; refused without the token."""
    if plan.hostname is None:
        return None
    from recovery.cloudflare import CloudflareTunnels

    return CloudflareTunnels()


def make_sweep(plan: AwsDrillPlan, tunnels: TunnelCleanup | None) -> Sweep:
    """After the teardown: the run's tagged leftovers in its region (and IAM), its tunnel
    and DNS record."""
    from drills.aws.plan import memo_clients
    from drills.aws.reaper import CloudflareScope, drill_sweep

    scope = None
    if plan.hostname is not None:
        scope = CloudflareScope(plan.cfg.tunnel.account_id, plan.cfg.tunnel.zone_id, plan.hostname)
    return drill_sweep([plan.region], memo_clients(client), tunnels, scope)


def run(options: AwsDrillOptions) -> int:
    """The exit code: 0 passed, 1 failed, 128+n interrupted by signal n (recorded)."""
    started = time.monotonic()  # the RTO counts the plan and Pulumi's start-up too
    ttl = parse_ttl(options.ttl, DEFAULT_TTL) if options.ttl else None  # None: the stack's
    plan = plan_aws_drill(
        stack=options.stack,
        point_text=options.point,
        db_instance=options.db_instance,
        region=options.region,
        tier=options.tier,
        ttl=ttl,
        tunnel=options.tunnel,
        record_dir=options.record_dir,
        keep=options.keep,
        direct=options.direct,
        notes=options.notes,
        project_dir=options.project_dir,
        actor=options.operator,
    )
    values = drill_runtime_values(
        client("ssm", plan.home_region),
        registry=plan.cfg.api_host.registry_username is not None,
        redis_egress_cidr=plan.settings.redis_egress_cidr,
        environ=os.environ,
    )
    if options.dry_run:
        _dry_run(plan, values, options.as_json, options.project_dir)
        return 0

    from infra.config import reject_example_values

    reject_example_values(plan.cfg)
    check_backend(os.environ, local_state=options.local_state)
    check_record_dir(plan.record_dir)  # the local drill's probe: the same refusal
    secrets = secrets_of(values)
    registry_password = registry_password_of(values)
    access = make_access(plan)
    tunnels = make_tunnels(plan)
    if tunnels is not None:  # the drill hostname goes directly under the zone Cloudflare names
        plan = with_zone_hostname(plan, tunnels.zone_name)
    engine = make_engine()
    for label, value in plan.lines():
        err.print(f"[bold]{label}[/]: {value}", highlight=False)

    from drills.aws.runner import run_aws_drill

    note_run_id(plan.run_id)

    extra = {"base_url": base_url} if base_url is not None else {}
    outcome = run_aws_drill(
        plan,
        engine,
        secrets=secrets,
        registry_password=registry_password,
        access=access,
        manifest_path=options.manifest,
        smoke_cmd=options.smoke_cmd,
        observer=ConsoleObserver(err),
        started=started,
        sweep=make_sweep(plan, tunnels),
        tunnels=tunnels,
        **extra,
    )
    record = redacted(outcome.record)
    if options.as_json:
        payload = json.loads(record.model_dump_json())
        payload["record_files"] = [str(p) for p in outcome.record_paths]
        payload["stack"] = plan.stack_name
        payload["kept_stack"] = outcome.kept_stack
        out.print_json(data=payload)
    else:
        _report(record, outcome.record_paths[0], plan)
    if outcome.interrupted:
        return 128 + outcome.interrupted
    return 0 if outcome.passed else 1


def _report(record, record_path: Path, plan: AwsDrillPlan) -> None:
    table = Table(title=f"AWS restore drill {plan.stack_name}: {record.result.value.upper()}")
    for column in ("check", "status", "time", "detail"):
        table.add_column(column, overflow="fold")
    for check in record.checks:
        table.add_row(check.name, check.status.value, f"{check.seconds:.2f} s", check.detail)
    out.print(table)
    out.print(
        f"RTO {format_duration(record.rto_seconds)} (target {record.targets.rto_hours:g} h) · "
        f"RPO {format_duration(record.rpo_seconds)} · cost {record.cost_estimate}",
        highlight=False,
    )
    out.print(f"record: {record_path}", highlight=False)


def _dry_run(
    plan: AwsDrillPlan, values: list[RuntimeValue], as_json: bool, project_dir: Path | None
) -> None:
    """The drill program under mocks: what would be created, for how long, at what cost,
    and each runtime value the drill host would get with where it comes from (no value)."""
    from drills.aws.program import drill_program
    from infra.offline import run_program

    placeholders = {env: "dry-run-placeholder" for env in secrets_of(values)}
    registry = "dry-run-placeholder" if registry_password_of(values) else None
    result = run_program(
        plan.stack,
        project_dir=project_dir,
        program=drill_program(plan, placeholders, registry),
        preview=True,
    )
    resources = [(r.type, r.name) for r in result.resources if r.custom]
    hours = ASSUMED_DRILL_HOURS * 3600
    ttl_seconds = (plan.expires_at - plan.started_at).total_seconds()
    estimate = cost_estimate(plan, hours, hours)
    worst = cost_estimate(plan, ttl_seconds, ttl_seconds)
    if as_json:
        out.print_json(
            data={
                "stack": plan.stack_name,
                "plan": dict(plan.lines()),
                "resources": [{"type": t, "name": n} for t, n in resources],
                "expires_at": plan.drill_tags()["prism:expires-at"],
                "cost_estimate": estimate,
                "cost_if_kept_until_ttl": worst,
                "runtime_values": [v.describe() for v in values],
                "created": [],
            }
        )
        return
    for label, value in plan.lines():
        out.print(f"[bold]{label}[/]: {value}", highlight=False)
    table = Table(title=f"{len(resources)} resources the drill would create (dry run)")
    table.add_column("type")
    table.add_column("name")
    for type_, name in resources:
        table.add_row(type_, name)
    out.print(table)
    sources = Table(title="runtime values the drill host gets (never prod's)")
    sources.add_column("variable")
    sources.add_column("from")
    for value in values:
        sources.add_row(value.env, value.source)
    out.print(sources)
    out.print(f"cost estimate ({ASSUMED_DRILL_HOURS:g} h): {estimate}", highlight=False)
    out.print(f"if kept until its TTL: {worst}", highlight=False)
    out.print("dry run: nothing was created", highlight=False)
