"""`prism-dr recover` as a library: spec §4.1 and §4.2 as code.

1. Plan: the backup point (`latest`, an ISO time, or `snapshot:ID`) is checked against what
   AWS says is restorable (boto3) before anything is created; a point outside the window is
   refused (OutsideWindow, exit 2).
2. Stand up a **recovery stack** `recovery-<utc>` through the `StackEngine`: the prod stack's
   own components (`infra.stack.build`) and config, with a `database.restore` block, a new DB
   identifier and a recovery hostname. It keeps prod's safety settings (environment prod:
   deletion protection, final snapshot, 30-day backups, multi-AZ, replication), because it may
   become production. The old instance is not touched: it stays for forensics.
   The runtime secrets (Clerk, Redis) are read from the prod stack's SSM parameters, or from
   the environment when those are out of reach (region loss); they go to the program as
   Pulumi secrets, never to the stack's plain config or to any output.
3. Wait for `/ready` 200 through the recovery hostname (the whole §4.2 path).
4. Cutover (optional, separate): the production hostname moves to the recovery tunnel
   (runbook/cloudflare.py); undone by `undo_cutover`.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from drills.engine import Program, StackEngine
from drills.errors import BadInput
from runbook.aws import Target, aws_errors, describe_instance, error_code
from runbook.cloudflare import Cutover, tunnel_target
from runbook.errors import NotFound, OperationFailed, OutsideWindow, WrongState
from runbook.snapshot import parse_utc, utc_stamp

if TYPE_CHECKING:
    from infra.config import StackConfig

RTO = timedelta(hours=4)  # spec §1
READY_TIMEOUT = timedelta(minutes=30)
READY_INTERVAL_SECONDS = 10.0
SECTIONS = ("network", "database", "apiHost", "tunnel", "alarms")
SECRET_HINT_PREFIX = "PRISM_RECOVERY_"  # e.g. PRISM_RECOVERY_CLERK_SECRET_KEY


# ---------------------------------------------------------------------------------------------
# The point and the restorable window.


@dataclass(frozen=True)
class Point:
    text: str
    kind: str  # latest, time, snapshot
    time: datetime | None = None
    snapshot_id: str | None = None

    @classmethod
    def parse(cls, text: str) -> Point:
        text = text.strip()
        if text == "latest":
            return cls(text, "latest")
        if text.startswith("snapshot:"):
            snapshot_id = text.removeprefix("snapshot:")
            if not snapshot_id:
                raise BadInput("--point snapshot: needs an id, e.g. snapshot:prism-prod-premig-…")
            return cls(text, "snapshot", snapshot_id=snapshot_id)
        when = parse_utc(text)
        if when is None:
            raise BadInput(
                f"--point {text!r} is not latest, snapshot:ID or an ISO time with a zone "
                "(e.g. 2026-12-01T03:00:00Z)"
            )
        return cls(utc_stamp(when), "time", time=when)


@dataclass(frozen=True)
class Source:
    """What the restore reads from, and the window AWS says it can restore."""

    region: str
    source_identifier: str | None = None  # point in time, home region
    automated_backups_arn: str | None = None  # point in time, replicated backups (--region)
    snapshot_id: str | None = None
    earliest: datetime | None = None
    latest: datetime | None = None
    description: str = ""


def find_source(
    rds: Any, *, db_instance: str, home_region: str, region: str, point: Point, now: datetime
) -> Source:
    """Look the point's source up with boto3 (in the recovery region) and check the point."""
    if point.kind == "snapshot":
        return _snapshot_source(rds, point.snapshot_id or "", region)
    if region == home_region:
        source = _home_source(rds, db_instance, region)
    else:
        source = _replicated_source(rds, db_instance, home_region, region)
    check_point(point, source, now)
    return source


def _snapshot_source(rds: Any, snapshot_id: str, region: str) -> Source:
    with aws_errors(f"describing snapshot {snapshot_id}"):
        try:
            found = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot_id)["DBSnapshots"]
        except ClientError as error:
            if error_code(error) != "DBSnapshotNotFound":
                raise
            found = []
    if not found:
        raise NotFound(
            f"snapshot {snapshot_id} does not exist in {region}; see `prism-dr snapshot list`"
        )
    status = found[0].get("Status")
    if status != "available":
        raise WrongState(f"snapshot {snapshot_id} is {status!r}, not 'available'; retry once it is")
    created = found[0].get("SnapshotCreateTime")
    return Source(
        region=region,
        snapshot_id=snapshot_id,
        latest=created if isinstance(created, datetime) else None,
        description=f"snapshot {snapshot_id}",
    )


def _home_source(rds: Any, db_instance: str, region: str) -> Source:
    try:
        instance = describe_instance(rds, db_instance)
    except NotFound:
        return _retained_source(rds, db_instance, region)
    retention = int(instance.get("BackupRetentionPeriod") or 0)
    latest = instance.get("LatestRestorableTime")
    if retention == 0 or not isinstance(latest, datetime):
        raise WrongState(
            f"{db_instance} has no point-in-time recovery (retention {retention}); "
            "recover from a snapshot with --point snapshot:ID"
        )
    earliest = _earliest_restorable(rds, instance)
    return Source(
        region=region,
        source_identifier=db_instance,
        earliest=earliest,
        latest=latest.astimezone(UTC),
        description=f"{db_instance} point-in-time backups in {region}",
    )


def _earliest_restorable(rds: Any, instance: dict[str, Any]) -> datetime:
    """RestoreWindow.EarliestTime of the automated backups; else what retention allows."""
    with aws_errors("describing automated backups"):
        backups = rds.describe_db_instance_automated_backups(
            DBInstanceIdentifier=instance["DBInstanceIdentifier"]
        ).get("DBInstanceAutomatedBackups", [])
    for backup in backups:
        earliest = (backup.get("RestoreWindow") or {}).get("EarliestTime")
        if isinstance(earliest, datetime):
            return earliest.astimezone(UTC)
    latest = instance["LatestRestorableTime"].astimezone(UTC)
    by_retention = latest - timedelta(days=int(instance["BackupRetentionPeriod"]))
    created = instance.get("InstanceCreateTime")
    return (
        max(by_retention, created.astimezone(UTC))
        if isinstance(created, datetime)
        else by_retention
    )


def _retained_source(rds: Any, db_instance: str, region: str) -> Source:
    """The instance is gone (§4.2): its automated backups outlive it (deleteAutomatedBackups
    is false in every stack), restorable by their ARN."""
    with aws_errors(f"listing retained backups of {db_instance}"):
        backups = rds.describe_db_instance_automated_backups(DBInstanceIdentifier=db_instance).get(
            "DBInstanceAutomatedBackups", []
        )
    retained = [
        b
        for b in backups
        if b.get("Status") == "retained"
        and b.get("DBInstanceAutomatedBackupsArn")
        and b.get("Region", region) == region
    ]
    if not retained:
        raise NotFound(
            f"DB instance {db_instance} does not exist in {region} and left no retained "
            "automated backups; recover from a snapshot (--point snapshot:ID) or from the "
            "replicated backups (--region)"
        )
    newest = max(
        retained,
        key=lambda b: (
            (b.get("RestoreWindow") or {}).get("LatestTime") or datetime.min.replace(tzinfo=UTC)
        ),
    )
    window = newest.get("RestoreWindow") or {}
    return Source(
        region=region,
        automated_backups_arn=newest["DBInstanceAutomatedBackupsArn"],
        earliest=window.get("EarliestTime"),
        latest=window.get("LatestTime"),
        description=f"retained automated backups of the deleted {db_instance} in {region}",
    )


def _replicated_source(rds: Any, db_instance: str, home_region: str, region: str) -> Source:
    with aws_errors(f"listing replicated backups in {region}"):
        backups = rds.describe_db_instance_automated_backups(DBInstanceIdentifier=db_instance).get(
            "DBInstanceAutomatedBackups", []
        )
    copies = [
        b
        for b in backups
        if b.get("Region") == home_region and b.get("DBInstanceAutomatedBackupsArn")
    ]
    if not copies:
        raise NotFound(
            f"no backups of {db_instance} replicated from {home_region} to {region}; "
            "pick the stack's backupReplication region, or recover in the home region"
        )
    backup = copies[0]
    window = backup.get("RestoreWindow") or {}
    return Source(
        region=region,
        automated_backups_arn=backup["DBInstanceAutomatedBackupsArn"],
        earliest=window.get("EarliestTime"),
        latest=window.get("LatestTime"),
        description=f"{db_instance} backups replicated to {region}",
    )


def check_point(point: Point, source: Source, now: datetime) -> None:
    if source.latest is None:
        raise OutsideWindow(f"{source.description} have no restorable time yet; nothing to restore")
    window = (
        f"{utc_stamp(source.earliest) if source.earliest else '?'} to {utc_stamp(source.latest)}"
    )
    if point.kind == "time":
        assert point.time is not None
        too_early = source.earliest is not None and point.time < source.earliest
        if too_early or point.time > source.latest:
            raise OutsideWindow(
                f"--point {point.text} is outside the restorable window of "
                f"{source.description} ({window}); pick a time inside it or `latest`"
            )


# ---------------------------------------------------------------------------------------------
# The recovery stack.


def recovery_hostname(prod_hostname: str, name: str) -> str:
    """`api.example.com` → `api-<name>.example.com`: one label deep, so the zone's
    Universal SSL certificate (`*.example.com`) covers it."""
    first, _, rest = prod_hostname.partition(".")
    return f"{first}-{name}.{rest}"


def recovery_identifier(prod_identifier: str, name: str) -> str:
    suffix = name.removeprefix("recovery-")
    head = prod_identifier[: 63 - len(suffix) - 5].rstrip("-")
    return f"{head}-rec-{suffix}"


@dataclass(frozen=True)
class RecoveryPlan:
    name: str  # the recovery stack
    prod_stack: str
    prod_identifier: str
    home_region: str
    region: str
    point: Point
    source: Source
    cfg: StackConfig  # secrets not included: they are read at up time
    config_values: dict[str, str]  # the recovery stack's plain config, for the engine
    prod_hostname: str
    hostname: str

    @property
    def db_identifier(self) -> str:
        return self.cfg.database.identifier

    def lines(self) -> list[tuple[str, str]]:
        db = self.cfg.database
        return [
            ("recovery stack", f"{self.name} (from stack {self.prod_stack}'s config)"),
            (
                "region",
                self.region
                + ("" if self.region == self.home_region else " (DR region: replicated backups)"),
            ),
            ("backup point", f"{self.point.text} from {self.source.description}"),
            (
                "restorable window",
                f"{utc_stamp(self.source.earliest) if self.source.earliest else '—'} to "
                f"{utc_stamp(self.source.latest) if self.source.latest else '—'}",
            ),
            (
                "new DB instance",
                f"{db.identifier} ({db.instance_class}); {self.prod_identifier} is kept",
            ),
            (
                "safety",
                f"deletion protection {db.deletion_protection}, "
                f"final snapshot {db.final_snapshot}, "
                f"backups {db.backup_retention_days} days, multi-AZ {db.multi_az}",
            ),
            ("recovery hostname", self.hostname),
            ("production hostname", f"{self.prod_hostname} (moves only with --cutover)"),
        ]


def build_plan(
    target: Target,
    *,
    point: Point,
    source: Source,
    name: str,
    examples_allowed: bool = False,
) -> RecoveryPlan:
    """The recovery stack's config: prod's, with a restore block, a new identifier and host."""
    if target.stack is None or target.stack_config is None or target.database is None:
        raise BadInput("recover needs --stack: the recovery stack is built from the stack's config")
    from infra.config import (
        NAMESPACE,
        StackConfig,
        check_rules,
        full_key,
        parse_section,
        reject_example_values,
    )

    config = {k: v for k, v in target.stack_config.items()}
    raw = {s: dict(config.get(full_key(s)) or {}) for s in SECTIONS}
    database = raw["database"]
    database.pop("restoredFrom", None)
    database["identifier"] = recovery_identifier(target.db_instance, name)
    restore: dict[str, str] = {
        "point": point.text if point.kind != "time" else utc_stamp(point.time)
    }
    if source.source_identifier:
        restore["sourceIdentifier"] = source.source_identifier
    if source.automated_backups_arn:
        restore["sourceAutomatedBackupsArn"] = source.automated_backups_arn
    database["restore"] = restore
    if source.region != target.region:
        # The copies of the recovered instance go back to the home region; a network of its own
        # in the DR region (adopted subnets exist only in the home region).
        replication = dict(database.get("backupReplication") or {})
        if replication.get("enabled"):
            replication["region"] = target.region
            database["backupReplication"] = replication
        if (raw["network"].get("mode") or "create") == "adopt":
            raw["network"] = {"mode": "create"}
    prod_hostname = str(raw["tunnel"].get("hostname", ""))
    hostname = recovery_hostname(prod_hostname, name)
    raw["tunnel"]["hostname"] = hostname
    sections = {s: parse_section(s, raw[s]) for s in SECTIONS}
    environment = config.get(full_key("environment"))
    cfg = StackConfig(
        stack=name,
        environment=environment,  # type: ignore[arg-type]
        region=source.region,
        network=sections["network"],  # type: ignore[arg-type]
        database=sections["database"],  # type: ignore[arg-type]
        api_host=sections["apiHost"],  # type: ignore[arg-type]
        tunnel=sections["tunnel"],  # type: ignore[arg-type]
        alarms=sections["alarms"],  # type: ignore[arg-type]
    )
    check_rules(cfg)
    if not examples_allowed:
        reject_example_values(cfg)
    import json

    values = {"aws:region": source.region, full_key("environment"): str(environment)}
    for s in SECTIONS:
        values[f"{NAMESPACE}:{s}"] = json.dumps(raw[s])
    return RecoveryPlan(
        name=name,
        prod_stack=target.stack,
        prod_identifier=target.db_instance,
        home_region=target.region,
        region=source.region,
        point=point,
        source=source,
        cfg=cfg,
        config_values=values,
        prod_hostname=prod_hostname,
        hostname=hostname,
    )


def runtime_secrets(
    ssm: Any | None, prod_stack: str, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The prod stack's runtime secrets: its SSM parameters, else PRISM_RECOVERY_<ENV>.

    Read before anything is created; a missing one is bad input naming the variable to set.
    The values stay in memory and reach only the program, as Pulumi secrets.
    """
    from infra.api_host import parameter_prefix
    from infra.config import SECRET_SETTINGS

    envs = list(SECRET_SETTINGS.values())
    found: dict[str, str] = {}
    if ssm is not None:
        names = [f"{parameter_prefix(prod_stack)}/api/{env}" for env in envs]
        try:
            with aws_errors("reading the prod stack's runtime secrets"):
                answer = ssm.get_parameters(Names=names, WithDecryption=True)
            by_name = {p["Name"]: p["Value"] for p in answer.get("Parameters", [])}
            found = {env: by_name[n] for env, n in zip(envs, names, strict=True) if n in by_name}
        except BadInput:
            found = {}  # out of reach (a lost region): the environment must supply them
    for env in envs:
        if env not in found and environ.get(SECRET_HINT_PREFIX + env):
            found[env] = environ[SECRET_HINT_PREFIX + env]
    missing = [SECRET_HINT_PREFIX + env for env in envs if env not in found]
    if missing:
        raise BadInput(
            f"the prod stack's runtime secrets are out of reach; set {', '.join(missing)} "
            "(spec §4.2 step 4: restore the production secrets in the new environment)"
        )
    return found


def recovery_program(plan: RecoveryPlan, secrets: Mapping[str, str]) -> Program:
    def program() -> None:
        import pulumi

        from infra.stack import build

        cfg = replace(plan.cfg, secret_env={k: pulumi.Output.secret(v) for k, v in secrets.items()})
        build(cfg)

    return program


# ---------------------------------------------------------------------------------------------
# Running it.


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


def probe_ready(url: str, timeout: float = 10.0) -> int | None:
    """The HTTP status of GET url, None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


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
    result = engine.up(
        plan.name,
        recovery_program(plan, secrets),
        config=plan.config_values,
        tags={"prism:recovery-of": plan.prod_stack, "prism:point": plan.point.text},
    )
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
