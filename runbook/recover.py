"""`prism-dr recover` as a library: spec §4.1 and §4.2 as code.

1. Plan: the point is checked against the restorable window (recovery/points.py)
   before anything is created; out of the window is OutsideWindow, exit 2.
2. Stand up the **recovery stack** (recovery/stack.py) through the `StackEngine`:
   prod's own program with a restore block, a new instance while the old one is kept for
   forensics, prod's safety settings, because it may become production.
3. Wait for `/ready` 200 through the recovery hostname (the whole §4.2 path).
4. Cutover (optional, separate): the production hostname moves to the recovery tunnel
   (recovery/cloudflare.py); undone by `undo_cutover`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from drills.verify.smoke import probe as probe_ready
from infra.errors import BadInput, OperationFailed
from recovery.cloudflare import Cutover, tunnel_target
from recovery.engine import EngineError, StackEngine
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
    base_url: Callable[[str], str] = https_url,
    ready_timeout: timedelta = READY_TIMEOUT,
    ready_interval: float = READY_INTERVAL_SECONDS,
    probe: Callable[[str], int | None] = probe_ready,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_step: Callable[[Step], None] | None = None,
) -> Outcome:
    outcome = Outcome(plan=plan, started_at=started_at)

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
        # Whatever was created stays in the stack's state: a re-run continues, a destroy ends it.
        raise OperationFailed(
            f"the recovery stack {plan.name} did not come up: {error}; re-run the same command "
            f"to continue, or inspect it with `pulumi stack -s {plan.name}`"
        ) from None
    outcome.outputs = dict(result.outputs)
    done(
        Step(
            "recovery stack up",
            clock() - t0,
            f"DB {outcome.outputs.get('dbIdentifier', plan.db_identifier)}",
        )
    )

    url = base_url(str(outcome.outputs.get("apiHostname") or plan.hostname)) + "/ready"
    t1 = clock()
    deadline = t1 + ready_timeout.total_seconds()
    last: int | None = None
    while True:
        last = probe(url)
        if last == 200:
            break
        if clock() >= deadline:
            raise OperationFailed(
                f"{url} answered {last or 'nothing'} for "
                f"{ready_timeout.total_seconds() / 60:.0f} min; "
                f"the recovery stack {plan.name} stays up for inspection (destroy it with "
                f"`pulumi destroy -s {plan.name}` once done; its DB has deletion protection)"
            )
        sleep(ready_interval)
    outcome.ready = True
    done(Step("/ready 200 through the recovery hostname", clock() - t1, url))
    return outcome


def cutover(plan: RecoveryPlan, outputs: Mapping[str, Any], api: Cutover) -> str:
    """Point the production hostname at the recovery tunnel; return where it pointed before."""
    tunnel_id = outputs.get("tunnelId")
    if not tunnel_id:
        raise BadInput(f"the recovery stack {plan.name} exports no tunnelId; is it up?")
    t = plan.cfg.tunnel
    api.set_ingress(
        t.account_id,
        str(tunnel_id),
        plan.prod_hostname,
        f"http://localhost:{plan.cfg.api_host.port}",
    )
    before = api.cname_target(t.zone_id, plan.prod_hostname)
    api.point_cname(t.zone_id, plan.prod_hostname, tunnel_target(str(tunnel_id)))
    return before


def undo_cutover(
    *,
    prod_outputs: Mapping[str, Any],
    recovery_outputs: Mapping[str, Any],
    account_id: str,
    zone_id: str,
    prod_hostname: str,
    api: Cutover,
) -> str:
    """Point the production hostname back at the prod stack's tunnel; return the new target."""
    prod_tunnel = prod_outputs.get("tunnelId")
    if not prod_tunnel:
        raise BadInput("the prod stack exports no tunnelId: nothing to move the hostname back to")
    target = tunnel_target(str(prod_tunnel))
    api.point_cname(zone_id, prod_hostname, target)
    recovery_tunnel = recovery_outputs.get("tunnelId")
    if recovery_tunnel:
        api.set_ingress(account_id, str(recovery_tunnel), prod_hostname, None)
    return target


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
