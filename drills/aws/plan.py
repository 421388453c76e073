"""What an AWS drill restores, where, for how long and who runs it: all checked with boto3
before anything is created.

- Source: the stack's database (`Pulumi.<stack>.yaml`, validated by `infra.config`), or
  `--db-instance ID` in its place; the stack still supplies the host and tunnel settings.
- Point: `latest`, an ISO time inside the restorable window, `snapshot:ID` or
  `snapshot:latest` (the newest available snapshot of the source), resolved and checked by
  recovery/points.py, the code `prism-dr recover` uses.
- Region: the home region restores into the source's own VPC and DB subnet group, found
  with boto3 from the source instance; `--region R` restores from the automated backups
  replicated to R and gives the drill a network of its own there.
- TTL (default 6 h) → the `prism:expires-at` tag; the run id names the stack `drill-<id>`.
- Optional stack-file knobs under `prism-infra:drill` (DrillSettings): instance sizes,
  hourly prices for the cost estimate, the tunnel on or off.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drills.verify.model import Tier
from infra.errors import BadInput, NotFound
from recovery.aws import Target, aws_errors, client, describe_instance, resolve_target
from recovery.points import Point, Source, find_source
from recovery.times import utc_stamp

if TYPE_CHECKING:
    from infra.config import StackConfig

DEFAULT_TTL = timedelta(hours=6)
MAX_TTL = timedelta(days=2)
DRILL_KEY = "prism-infra:drill"
STACK_PREFIX = "drill-"
DRILL_TAG = "prism:drill"
EXPIRES_TAG = "prism:expires-at"

# On-demand hourly prices, us-east-1, Linux / PostgreSQL single-AZ, from the AWS price pages
# (aws.amazon.com/ec2/pricing/on-demand, aws.amazon.com/rds/postgresql/pricing) as last read
# in 2025; not re-checked from this machine. Override per stack with prism-infra:drill.prices.
DEFAULT_HOURLY_PRICES_USD: dict[str, float] = {
    "db.t4g.micro": 0.016,
    "db.t4g.small": 0.032,
    "db.t4g.medium": 0.065,
    "db.t4g.large": 0.129,
    "db.m7g.large": 0.168,
    "t4g.micro": 0.0084,
    "t4g.small": 0.0168,
    "t4g.medium": 0.0336,
    "t4g.large": 0.0672,
}
PRICE_SOURCE = (
    "AWS on-demand list prices, us-east-1, read 2025 (override: prism-infra:drill.prices)"
)
BILLING_MINIMUM = timedelta(minutes=10)  # RDS and EC2 bill per second after a 10-minute minimum


class DrillSettings(BaseModel):
    """`prism-infra:drill` in the stack file; every key optional."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    instance_class: str | None = Field(
        default=None, alias="instanceClass", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$"
    )  # default: the stack's own class, single-AZ
    host_instance_type: str | None = Field(
        default=None, alias="hostInstanceType", pattern=r"^[a-z0-9]+\.[a-z0-9]+$"
    )
    tunnel: bool = True  # off: no drill hostname; /ready is then not checked through it
    ttl_hours: float = Field(default=6, alias="ttlHours", gt=0, le=48)
    prices: dict[str, float] = Field(default_factory=dict)
    # The drill's own Redis network, when /prism/drill/api/REDIS_URL is set (drills/aws/runtime.py).
    redis_egress_cidr: str | None = Field(
        default=None, alias="redisEgressCidr", pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$"
    )


@dataclass(frozen=True)
class SourceNetwork:
    """The source instance's network in the home region; the drill restores into it."""

    vpc_id: str
    vpc_cidr: str
    subnet_group_name: str
    private_subnet_ids: tuple[str, ...]
    host_subnet_id: str
    host_public_ip: bool


@dataclass(frozen=True)
class AwsDrillPlan:
    run_id: str
    stack: str  # the source stack
    target: Target
    point: Point
    source: Source
    home_region: str
    region: str
    started_at: datetime
    expires_at: datetime
    actor: str
    tier: Tier
    settings: DrillSettings
    cfg: StackConfig  # the source stack's config (secrets not included)
    network: SourceNetwork | None  # None: the drill creates its own (--region, or source gone)
    hostname: str | None  # drill-<id>.<zone>, None with the tunnel off
    record_dir: Path = Path("docs/audit/restore-drills")
    keep: bool = False
    direct: bool = False
    notes: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    source_storage_gb: int | None = None  # the source's allocated storage, when found

    @property
    def stack_name(self) -> str:
        return f"{STACK_PREFIX}{self.run_id}"

    @property
    def db_identifier(self) -> str:
        head = self.target.db_instance[: 63 - len(self.run_id) - 7].rstrip("-")
        return f"{head}-drill-{self.run_id}"

    @property
    def environment(self) -> str:
        """The record's environment (its file name too: no ':' or '@')."""
        suffix = "" if self.region == self.home_region else f"-{self.region}"
        return f"aws-{self.stack}{suffix}"

    @property
    def instance_class(self) -> str:
        return self.settings.instance_class or self.cfg.database.instance_class

    @property
    def storage_gb(self) -> int:
        """A restore needs at least the source's storage: a source grown past the stack
        file's figure would not fit in it."""
        return max(self.cfg.database.allocated_storage_gb, self.source_storage_gb or 0)

    @property
    def host_instance_type(self) -> str:
        return self.settings.host_instance_type or self.cfg.api_host.instance_type

    @property
    def restore_point(self) -> datetime | None:
        """The data's time: the point, the latest restorable time, or the snapshot's."""
        if self.point.kind == "time":
            return self.point.time
        return self.source.latest

    def drill_tags(self) -> dict[str, str]:
        return {DRILL_TAG: self.run_id, EXPIRES_TAG: utc_stamp(self.expires_at)}

    def lines(self) -> list[tuple[str, str]]:
        where = self.region if self.region == self.home_region else f"{self.region} (DR region)"
        net = (
            f"source VPC {self.network.vpc_id}, subnet group {self.network.subnet_group_name}"
            if self.network
            else "a new network of the drill's own"
        )
        return [
            ("drill stack", self.stack_name),
            ("source", f"{self.target.label}"),
            ("backup point", f"{self.point.text} from {self.source.description}"),
            ("restore time", utc_stamp(self.restore_point) if self.restore_point else "—"),
            ("region", where),
            ("network", net),
            ("DB instance", f"{self.db_identifier} ({self.instance_class}, single-AZ)"),
            ("API host", self.host_instance_type),
            ("hostname", self.hostname or "none (tunnel off)"),
            (
                "expires",
                f"{utc_stamp(self.expires_at)} (TTL {_hours(self.expires_at - self.started_at)})",
            ),
            ("run by", self.actor),
        ]


Clients = Callable[[str, str], Any]
"""(service, region) → a boto3 client; recovery.aws.client by default, a Stubber's in tests."""


def run_id_for(now: datetime) -> str:
    """`20261202-011500`: sortable, a valid stack name and RDS identifier suffix."""
    return now.astimezone(UTC).strftime("%Y%m%d-%H%M%S")


def default_actor(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTOR"):
        return f"{env['GITHUB_ACTOR']} (GitHub Actions)"
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def drill_settings(stack_config: dict[str, Any] | None) -> DrillSettings:
    raw = (stack_config or {}).get(DRILL_KEY) or {}
    if not isinstance(raw, dict):
        raise BadInput(f"{DRILL_KEY} must be a mapping of settings (see README: The AWS drill)")
    try:
        return DrillSettings.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput(f"{DRILL_KEY}.{where}: {first['msg']}") from None


def parse_ttl(text: str | None, default: timedelta) -> timedelta:
    if text is None:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([mhd])", text.strip())
    if not match:
        raise BadInput(f"--ttl {text!r} is not a duration like 90m, 6h or 1d")
    value = float(match[1]) * {"m": 60, "h": 3600, "d": 86400}[match[2]]
    ttl = timedelta(seconds=value)
    if not timedelta(minutes=30) <= ttl <= MAX_TTL:
        raise BadInput(f"--ttl {text!r} must be between 30m and 2d")
    return ttl


def drill_hostname(zone: str, run_id: str) -> str:
    """`drill-<id>.<zone>`: a label directly under the zone, whatever the stack's hostname
    (an apex hostname has no parent to put it under)."""
    return f"{STACK_PREFIX}{run_id}.{zone}"


def guess_zone(hostname: str) -> str:
    """The zone when Cloudflare cannot be asked (a dry run without a token): the parent of a
    name of three labels or more, else the name itself (an apex is its own zone)."""
    labels = hostname.split(".")
    return ".".join(labels[1:]) if len(labels) >= 3 else hostname


def drill_zone(hostname: str, zone_id: str, zone_name: Callable[[str], str] | None) -> str:
    """The zone's name (Cloudflare's GET /zones/{id} when `zone_name` is given), checked to
    hold the stack's hostname."""
    if zone_name is None:
        return guess_zone(hostname)
    zone = zone_name(zone_id).strip(".").lower()
    if hostname.lower() != zone and not hostname.lower().endswith("." + zone):
        raise BadInput(
            f"prism-infra:tunnel.hostname {hostname} is not in the zone {zone_id} ({zone}); "
            "fix the hostname or the zoneId in the stack file"
        )
    return zone


def with_zone_hostname(plan: AwsDrillPlan, zone_name: Callable[[str], str]) -> AwsDrillPlan:
    """The plan with its hostname directly under the zone Cloudflare names (the plan itself
    guessed the zone, to need no token for a dry run)."""
    if plan.hostname is None:
        return plan
    tunnel = plan.cfg.tunnel
    zone = drill_zone(tunnel.hostname, tunnel.zone_id, zone_name)
    return replace(plan, hostname=drill_hostname(zone, plan.run_id))


def plan_aws_drill(
    *,
    stack: str,
    point_text: str = "latest",
    db_instance: str | None = None,
    region: str | None = None,
    tier: Tier = Tier.STANDARD,
    ttl: timedelta | None = None,
    tunnel: bool | None = None,
    record_dir: Path = Path("docs/audit/restore-drills"),
    keep: bool = False,
    direct: bool = False,
    notes: str = "",
    project_dir: Path | None = None,
    now: datetime | None = None,
    actor: str | None = None,
    clients: Clients = client,
    zone_name: Callable[[str], str] | None = None,
) -> AwsDrillPlan:
    """Resolve and check everything the drill needs; create nothing."""
    clients = memo_clients(clients)
    point = Point.parse(point_text)
    target = resolve_target(stack, None, project_dir)
    if db_instance is not None:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", db_instance):
            raise BadInput(f"--db-instance {db_instance!r} is not an RDS identifier")
        target = replace(target, db_instance=db_instance)
    cfg = stack_config(target)
    settings = drill_settings(target.stack_config)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    home = target.region
    where = region or home
    if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", where):
        raise BadInput(f"--region {where!r} is not an AWS region name like us-west-2")

    rds = clients("rds", where)
    if point.snapshot_id == "latest":
        point = _latest_snapshot(rds, target.db_instance, where)
    source = find_source(
        rds, db_instance=target.db_instance, home_region=home, region=where, point=point, now=now
    )
    network = None
    if where == home and point.kind != "snapshot":
        network = find_source_network(clients, target, cfg)
    elif where == home:
        network = _network_if_source_exists(clients, target, cfg)
    run_id = run_id_for(now)
    use_tunnel = settings.tunnel if tunnel is None else tunnel
    storage = source_storage(clients, target.db_instance, home, where, point)
    return AwsDrillPlan(
        run_id=run_id,
        stack=stack,
        target=target,
        point=point,
        source=source,
        home_region=home,
        region=where,
        started_at=now,
        expires_at=now + (ttl or timedelta(hours=settings.ttl_hours)),
        actor=actor or default_actor(),
        tier=tier,
        settings=settings,
        cfg=cfg,
        network=network,
        hostname=(
            drill_hostname(drill_zone(cfg.tunnel.hostname, cfg.tunnel.zone_id, zone_name), run_id)
            if use_tunnel
            else None
        ),
        record_dir=record_dir,
        keep=keep,
        direct=direct,
        notes=notes,
        source_storage_gb=storage,
    )


def source_storage(
    clients: Clients, db_instance: str, home: str, region: str, point: Point
) -> int | None:
    """The source's allocated storage (DescribeDBInstances), else the snapshot's being
    restored (DescribeDBSnapshots); None when neither is found."""
    try:
        instance = describe_instance(clients("rds", home), db_instance)
        if instance.get("AllocatedStorage"):
            return int(instance["AllocatedStorage"])
    except NotFound:
        pass
    if point.kind == "snapshot" and point.snapshot_id:
        with aws_errors(f"describing snapshot {point.snapshot_id}"):
            found = clients("rds", region).describe_db_snapshots(
                DBSnapshotIdentifier=point.snapshot_id
            )["DBSnapshots"]
        if found and found[0].get("AllocatedStorage"):
            return int(found[0]["AllocatedStorage"])
    return None


def memo_clients(clients: Clients) -> Clients:
    """One client per service and region for the whole plan (each new one reloads models)."""
    made: dict[tuple[str, str], Any] = {}

    def get(service: str, region: str) -> Any:
        if (service, region) not in made:
            made[service, region] = clients(service, region)
        return made[service, region]

    return get


def stack_config(target: Target) -> StackConfig:
    from infra.config import StackConfig, full_key, parse_section

    raw = target.stack_config or {}
    sections = {
        s: parse_section(s, raw.get(full_key(s)))
        for s in ("network", "apiHost", "tunnel", "alarms")
    }
    # The source stack's own config, checked by its own rules (StackConfig runs them).
    return StackConfig(
        stack=target.stack or "",
        environment=target.environment or "staging",
        region=target.region,
        network=sections["network"],  # type: ignore[arg-type]
        database=target.database,  # type: ignore[arg-type]
        api_host=sections["apiHost"],  # type: ignore[arg-type]
        tunnel=sections["tunnel"],  # type: ignore[arg-type]
        alarms=sections["alarms"],  # type: ignore[arg-type]
    )


def _latest_snapshot(rds: Any, db_instance: str, region: str) -> Point:
    """`snapshot:latest`: the newest available snapshot of the source, manual or automated."""
    with aws_errors(f"listing snapshots of {db_instance}"):
        pages = rds.get_paginator("describe_db_snapshots").paginate(
            DBInstanceIdentifier=db_instance
        )
        snapshots = [s for page in pages for s in page.get("DBSnapshots", [])]
    ready = [s for s in snapshots if s.get("Status") == "available" and s.get("SnapshotCreateTime")]
    if not ready:
        raise NotFound(
            f"{db_instance} has no available snapshot in {region}; use --point latest "
            "(point in time) or take one with `prism-dr snapshot create`"
        )
    newest = max(ready, key=lambda s: s["SnapshotCreateTime"])
    return Point.parse(f"snapshot:{newest['DBSnapshotIdentifier']}")


def _network_if_source_exists(
    clients: Clients, target: Target, cfg: StackConfig
) -> SourceNetwork | None:
    try:
        return find_source_network(clients, target, cfg)
    except NotFound:
        return None


def find_source_network(clients: Clients, target: Target, cfg: StackConfig) -> SourceNetwork | None:
    """The source's VPC and DB subnet group, and a subnet in that VPC with egress for the host.

    None when the source instance is gone (§4.2: its retained backups are restored into a
    network of the drill's own).
    """
    rds = clients("rds", target.region)
    try:
        instance = describe_instance(rds, target.db_instance)
    except NotFound:
        return None
    group = instance.get("DBSubnetGroup") or {}
    vpc_id, group_name = group.get("VpcId"), group.get("DBSubnetGroupName")
    if not vpc_id or not group_name:
        raise BadInput(
            f"{target.db_instance} has no DB subnet group in a VPC; the drill restores into the "
            "source's subnet group (or use --region to give it a network of its own)"
        )
    private = tuple(
        s["SubnetIdentifier"] for s in group.get("Subnets") or [] if s.get("SubnetIdentifier")
    )
    ec2 = clients("ec2", target.region)
    with aws_errors(f"describing VPC {vpc_id}"):
        vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    host_subnet = _host_subnet(ec2, vpc_id, target, cfg)
    return SourceNetwork(
        vpc_id=vpc_id,
        vpc_cidr=vpc["CidrBlock"],
        subnet_group_name=group_name,
        private_subnet_ids=private,
        host_subnet_id=host_subnet,
        host_public_ip=_routes_to_internet_gateway(ec2, vpc_id, host_subnet),
    )


def _host_subnet(ec2: Any, vpc_id: str, target: Target, cfg: StackConfig) -> str:
    """The stack's host subnet: from its file (adopt mode), else the one the Network
    component created and tagged, else the subnet the source stack's API host runs in."""
    if cfg.network.mode == "adopt" and cfg.network.host_subnet_id:
        return cfg.network.host_subnet_id
    with aws_errors(f"finding the host subnet in {vpc_id}"):
        tagged = ec2.describe_subnets(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "tag:prism:stack", "Values": [target.stack or ""]},
                {"Name": "tag:Name", "Values": ["host"]},
            ]
        )["Subnets"]
        if tagged:
            return tagged[0]["SubnetId"]
        hosts = ec2.describe_instances(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "tag:prism:stack", "Values": [target.stack or ""]},
                {"Name": "tag:prism:component", "Values": ["api-host"]},
            ]
        )["Reservations"]
    for reservation in hosts:
        for instance in reservation.get("Instances", []):
            if instance.get("SubnetId"):
                return instance["SubnetId"]
    raise NotFound(
        f"no subnet for the drill's API host in {vpc_id} (none tagged Name=host for stack "
        f"{target.stack}, no API host of it running); use --region to give the drill a "
        "network of its own"
    )


def _routes_to_internet_gateway(ec2: Any, vpc_id: str, subnet_id: str) -> bool:
    """Whether the subnet's route table (its own, else the VPC's main one) sends 0.0.0.0/0
    to an internet gateway: then the host needs a public address to get out."""
    with aws_errors(f"reading the routes of {subnet_id}"):
        tables = ec2.describe_route_tables(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}]
        )["RouteTables"]
        if not tables:
            tables = ec2.describe_route_tables(
                Filters=[
                    {"Name": "vpc-id", "Values": [vpc_id]},
                    {"Name": "association.main", "Values": ["true"]},
                ]
            )["RouteTables"]
    for table in tables:
        for route in table.get("Routes", []):
            if route.get("DestinationCidrBlock") == "0.0.0.0/0" and str(
                route.get("GatewayId", "")
            ).startswith("igw-"):
                return True
    return False


def hourly_price(plan: AwsDrillPlan, kind: str) -> float | None:
    return plan.settings.prices.get(kind, DEFAULT_HOURLY_PRICES_USD.get(kind))


def cost_estimate(plan: AwsDrillPlan, db_seconds: float, host_seconds: float) -> str:
    """Each instance's billed hours x its hourly price (per second, 10-minute minimum)."""
    parts, total, unknown = [], 0.0, []
    for kind, seconds in (
        (plan.instance_class, db_seconds),
        (plan.host_instance_type, host_seconds),
    ):
        billed = max(seconds, BILLING_MINIMUM.total_seconds()) / 3600
        price = hourly_price(plan, kind)
        if price is None:
            unknown.append(kind)
            continue
        total += billed * price
        parts.append(f"{kind} {billed:.2f} h x ${price:g}")
    text = f"${total:.2f} ({'; '.join(parts)}; {PRICE_SOURCE})"
    if unknown:
        text += f"; no price for {', '.join(unknown)}: set prism-infra:drill.prices"
    return text


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g} h"
