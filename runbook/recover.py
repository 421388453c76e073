"""`prism-dr recover` as a library: spec §4.1 and §4.2 as code.

1. Plan: the point is checked against the restorable window (recovery/points.py)
   before anything is created; out of the window is OutsideWindow, exit 2.
2. Stand up the **recovery stack** (recovery/stack.py) through the `StackEngine`:
   prod's own program with a restore block, a new instance while the old one is kept for
   forensics, prod's safety settings, because it may become production. A failed `up`
   keeps what it created in the stack's state: the same command with the same `--name`
   continues it. One that created nothing is bad input (exit 2).
3. Set the API's application-role password on the restored instance (it holds prod's):
   the recovery stack's own new secret, applied as the instance's own master user through
   the host's port forward (drills/aws/forward.py). Prod's application secret is never read.
4. Wait for `/ready` 200 through the recovery hostname (the whole §4.2 path).
5. Cutover (optional): the recovery stack declares the production hostname in its tunnel's
   ingress and records where the hostname pointed (`cutoverFrom`); then the CNAME moves
   (recovery/cloudflare.py) and `/ready` is probed on the production hostname itself.
   `undo_cutover` points it back at the recorded target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from drills.aws.forward import ForwardError
from drills.verify.smoke import probe as probe_ready
from infra.errors import BadInput, OperationFailed, PrismError
from recovery.app_role import RoleReport
from recovery.cloudflare import Cutover, tunnel_target
from recovery.engine import EngineError, StackEngine, StackInfo
from recovery.redact import mask_dsn
from recovery.stack import RecoveryPlan, recovery_program

RTO = timedelta(hours=4)  # spec §1
READY_TIMEOUT = timedelta(minutes=30)
READY_INTERVAL_SECONDS = 10.0


@dataclass
class Step:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class Outcome:
    plan: RecoveryPlan
    started_at: datetime
    steps: list[Step] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    cutover_from: str | None = None  # the prod hostname's CNAME before the cutover

    def elapsed(self, now: datetime) -> timedelta:
        return now - self.started_at


def https_url(hostname: str) -> str:
    return f"https://{hostname}"


def stand_up(
    plan: RecoveryPlan,
    engine: StackEngine,
    secrets: Mapping[str, str],
    *,
    started_at: datetime,
    resume: str,
    base_url: Callable[[str], str] = https_url,
    ready_timeout: timedelta = READY_TIMEOUT,
    ready_interval: float = READY_INTERVAL_SECONDS,
    probe: Callable[[str], int | None] = probe_ready,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_step: Callable[[Step], None] | None = None,
    app_role: Callable[[Mapping[str, Any]], RoleReport] | None = None,
) -> Outcome:
    """`resume` is the exact command that continues this recovery (printed in every hint);
    `app_role` sets the API role's password on the restored instance from the stack's
    outputs (drills/aws/forward.py: reset_app_role over the chosen access)."""
    outcome = Outcome(plan=plan, started_at=started_at, cutover_from=plan.cutover_from)

    def done(step: Step) -> None:
        outcome.steps.append(step)
        if on_step is not None:
            on_step(step)

    t0 = clock()
    try:
        result = engine.up(
            plan.name,
            recovery_program(plan, secrets),
            config=plan.config_values,
            tags={"prism:recovery-of": plan.prod_stack, "prism:point": plan.point.text},
        )
    except EngineError as error:
        if not created_anything(engine, plan.name):
            raise BadInput(
                f"the recovery stack {plan.name} did not come up and holds nothing: {error}; "
                f"fix that, then run `{resume}`"
            ) from None
        # Whatever was created stays in the stack's state: a re-run continues, a destroy ends it.
        raise OperationFailed(
            f"the recovery stack {plan.name} did not come up: {error}; to continue it, run "
            f"`{resume}` (inspect it with `pulumi stack -s {plan.name}`)"
        ) from None
    outcome.outputs = dict(result.outputs)
    done(
        Step(
            "recovery stack up",
            clock() - t0,
            f"DB {outcome.outputs.get('dbIdentifier', plan.db_identifier)}",
        )
    )

    if app_role is not None:
        t = clock()
        try:
            report = app_role(outcome.outputs)
        except (ForwardError, PrismError, psycopg.Error) as error:
            raise OperationFailed(
                f"the recovery stack {plan.name} is up, but its API's role could not be set on "
                f"the restored instance: {mask_dsn(str(error))[:300]}; once fixed, run "
                f"`{resume}`"
            ) from None
        how = "created, with its grants" if report.created else "password set"
        done(Step("application role", clock() - t, f"{report.role}: {how}"))

    url = base_url(str(outcome.outputs.get("apiHostname") or plan.hostname)) + "/ready"
    t1 = clock()
    last = wait_ready(url, ready_timeout, ready_interval, probe=probe, clock=clock, sleep=sleep)
    if last != 200:
        raise OperationFailed(
            f"{url} answered {last or 'nothing'} for "
            f"{ready_timeout.total_seconds() / 60:.0f} min; "
            f"the recovery stack {plan.name} stays up for inspection; once fixed, run "
            f"`{resume}` (destroy it with `pulumi destroy -s {plan.name}` once done; its DB "
            "has deletion protection)"
        )
    outcome.ready = True
    done(Step("/ready 200 through the recovery hostname", clock() - t1, url))
    return outcome


def created_anything(engine: StackEngine, name: str) -> bool:
    """Whether the stack holds resources; True when that cannot be told (the safe answer:
    a failure that may have created something is exit 1, never 'nothing was created')."""
    try:
        found: list[StackInfo] = [s for s in engine.list_stacks(name) if s.name == name]
    except EngineError:
        return True
    if not found:
        return False
    count = found[0].resource_count
    return count is None or count > 0


def wait_ready(
    url: str,
    timeout: timedelta,
    interval: float,
    *,
    probe: Callable[[str], int | None] = probe_ready,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int | None:
    """Probe `url` until it answers 200 or `timeout` passes; the last answer."""
    deadline = clock() + timeout.total_seconds()
    while True:
        last = probe(url)
        if last == 200 or clock() >= deadline:
            return last
        sleep(interval)


def cutover(plan: RecoveryPlan, outputs: Mapping[str, Any], api: Cutover) -> str:
    """Point the production hostname at the recovery tunnel; return its new target.

    The recovery stack already serves the hostname (its ingress declares it once
    `plan.cutover_from` is set), so no request meets a 404 when the record moves."""
    tunnel_id = outputs.get("tunnelId")
    if not tunnel_id:
        raise BadInput(f"the recovery stack {plan.name} exports no tunnelId; is it up?")
    if outputs.get("servesHostname") != plan.prod_hostname:
        raise BadInput(
            f"the recovery stack {plan.name} does not serve {plan.prod_hostname} yet; "
            "run recover with --cutover"
        )
    target = tunnel_target(str(tunnel_id))
    api.point_cname(plan.cfg.tunnel.zone_id, plan.prod_hostname, target)
    return target


def undo_cutover(
    *,
    recovery_name: str,
    recovery_outputs: Mapping[str, Any],
    zone_id: str,
    prod_hostname: str,
    api: Cutover,
) -> str:
    """Point the production hostname back where the cutover found it; return that target.

    The recovery stack keeps serving the hostname in its ingress: harmless while the record
    points elsewhere, and a later cutover is then only the record again."""
    before = recovery_outputs.get("cutoverFrom")
    if not before:
        raise BadInput(
            f"the recovery stack {recovery_name} records no cutoverFrom: it was never cut over "
            f"by `prism-dr recover --cutover`; check where {prod_hostname} points in Cloudflare"
        )
    api.point_cname(zone_id, prod_hostname, str(before))
    return str(before)


def declared_resources(run: Any, default_region: str) -> list[tuple[str, str, str]]:
    """(type, name, region) of every resource an offline run of the program declared; the
    region is its explicit provider's, else the stack's."""
    regions = {
        r.urn: str(r.inputs.get("region") or default_region)
        for r in run.resources
        if r.type == "pulumi:providers:aws"
    }
    found = []
    for r in run.resources:
        if not r.custom or r.type.startswith("pulumi:providers:"):
            continue
        provider = (r.provider or "").rsplit("::", 1)[0]
        region = regions.get(provider, default_region) if r.type.startswith("aws:") else "—"
        found.append((r.type, r.name, region))
    return found


def hourly_cost(plan: RecoveryPlan) -> str:
    """What the recovery's DB instance and host cost per hour at list price."""
    from drills.aws.plan import DEFAULT_HOURLY_PRICES_USD

    db = plan.cfg.database
    parts, total, unknown = [], 0.0, []
    for kind, count in (
        (db.instance_class, 2 if db.multi_az else 1),
        (plan.cfg.api_host.instance_type, 1),
    ):
        price = DEFAULT_HOURLY_PRICES_USD.get(kind)
        if price is None:
            unknown.append(kind)
            continue
        total += price * count
        parts.append(f"{kind} ${price:g}/h" + (" x 2 (Multi-AZ)" if count == 2 else ""))
    text = (
        f"${total:.3f}/h, ${total * 24 * 30:.0f} a month ({'; '.join(parts)}; on-demand list "
        "prices of us-east-1 as drills/aws/plan.py holds them)"
    )
    if unknown:
        text += f"; no list price here for {', '.join(unknown)}"
    return text + "; storage, backups and transfer extra"


def reconcile_steps(plan: RecoveryPlan) -> list[str]:
    dns_urn = (
        f"urn:pulumi:{plan.prod_stack}::prism-infra::prism:infra:ApiTunnel$"
        "cloudflare:index/dnsRecord:DnsRecord::api-tunnel-dns"
    )
    return [
        f"Freeze `pulumi up -s {plan.prod_stack}` (the deploy workflow): it would point "
        f"{plan.prod_hostname} back at the old tunnel.",
        f"To go back: `prism-dr recover --stack {plan.prod_stack} --name {plan.name} "
        "--undo-cutover`.",
        f"To make {plan.name} production (not verifiable here; check with `pulumi preview`): "
        f"`pulumi state delete -s {plan.prod_stack} '{dns_urn}'` so prod stops managing the "
        f"record, delete that record in Cloudflare, then `pulumi config set --path "
        f"'prism-infra:tunnel.hostname' {plan.prod_hostname} -s {plan.name}` and "
        f"`pulumi up -s {plan.name}`: its own record is renamed to {plan.prod_hostname}.",
        f"Keep {plan.prod_identifier} for forensics until the incident review is done.",
    ]


def manual_steps(plan: RecoveryPlan) -> list[str]:
    return [
        "Rotate the secrets the recovery stack copied (Clerk keys, REDIS_URL) and the DB master "
        "password: docs/security/secrets-management.md (spec §7).",
        "Smoke test the API and run the k6 smoke gate (spec §4.2 step 7).",
        f"Before any `pulumi up -s {plan.name}` from the CLI, set its secret keys "
        f"(`pulumi config set --secret prism-infra:clerkSecretKey … -s {plan.name}`, "
        "clerkPublishableKey, redisUrl): the recovery put them in its state, not its config.",
        "Follow docs/security/incident-response.md; docs/ops/production-runbook.md for the next "
        "deploy.",
    ]
