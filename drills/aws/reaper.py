"""`prism-dr drill reap`: what crashed drills left behind, found and removed.

1. Drill stacks (`drill-<utc-timestamp>`) in the Pulumi backend past their expiry (the
   `prism:expires-at` the drill put in the stack's tags or config; a stack that never got
   that far is judged by the start time in its name against `--older-than`) are refreshed,
   destroyed and removed: a crash before anything was tagged is found this way.
2. AWS resources tagged `prism:drill` whose `prism:expires-at` has passed, found with the
   Resource Groups Tagging API (RDS instances and snapshots, EC2 instances, security groups,
   SSM parameters), are deleted in dependency order: instances before the groups they use.

Safety: the tagging API's answer is not trusted alone; each resource's own tags are read
again right before it is deleted, and anything without `prism:drill`, without a readable
expiry, not yet expired, or under deletion protection is left alone and reported. Without
`yes` nothing is deleted: the run only says what it would do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from drills.aws.plan import DRILL_TAG, EXPIRES_TAG, STACK_PREFIX, memo_clients
from infra.errors import BadInput
from recovery.engine import EngineError, StackEngine

RESOURCE_TYPES = ("ec2:instance", "rds:db", "rds:snapshot", "ec2:security-group", "ssm:parameter")
DESTROY_BACKOFF = 30.0
# Polling of the deletions: an EC2 instance ends in about a minute, an RDS one in 5-15.
INSTANCE_WAIT = {"Delay": 5, "MaxAttempts": 60}
DB_WAIT = {"Delay": 15, "MaxAttempts": 120}
_STACK_TIME = re.compile(r"^drill-(\d{8}-\d{6})$")


@dataclass
class Finding:
    kind: str  # stack, or a tagging-API resource type
    name: str
    region: str
    drill: str
    expires_at: str
    action: str  # destroyed, deleted, would ..., left: ..., failed: ...

    @property
    def failed(self) -> bool:
        return self.action.startswith("failed")


def run(
    *,
    older_than: timedelta,
    yes: bool,
    regions: list[str],
    skip_stacks: list[str],
    as_json: bool,
) -> int:
    """The exit code: 0 when everything due was removed (or, without `yes`, listed), 1 when
    something due could not be removed, 2 for bad input."""
    findings = reap(
        older_than=older_than,
        yes=yes,
        regions=regions or _default_regions(),
        skip_stacks=skip_stacks,
        engine_factory=make_engine,
        clients=memo_clients(_client),
        now=datetime.now(UTC),
    )
    _print(findings, yes, as_json)
    return 1 if any(f.failed for f in findings) else 0


def make_engine() -> StackEngine:
    from recovery.engine import AutomationEngine

    return AutomationEngine("prism-infra")


def _client(service: str, region: str) -> Any:
    from recovery.aws import client

    return client(service, region)


def _default_regions() -> list[str]:
    """Where drills run: every stack's region and its backups' DR region (the stack files),
    else AWS_REGION."""
    from infra.offline import available_stacks, read_stack_config
    from recovery.aws import env_region

    found: list[str] = []
    for stack in available_stacks():
        config = read_stack_config(stack)
        replication = (config.get("prism-infra:database") or {}).get("backupReplication") or {}
        for region in (config.get("aws:region"), replication.get("region")):
            if isinstance(region, str) and region and region not in found:
                found.append(region)
    if not found and env_region():
        found.append(env_region() or "")
    if not found:
        raise BadInput("no AWS region to reap: pass --region (repeatable) or set AWS_REGION")
    return found


def reap(
    *,
    older_than: timedelta,
    yes: bool,
    regions: list[str],
    skip_stacks: list[str],
    engine_factory: Callable[[], StackEngine],
    clients: Callable[[str, str], Any],
    now: datetime,
) -> list[Finding]:
    skipped_ids = {s.removeprefix(STACK_PREFIX) for s in skip_stacks}
    findings = _reap_stacks(engine_factory, older_than, yes, set(skip_stacks), now)
    for region in regions:
        findings += _reap_resources(clients, region, yes, skipped_ids, now)
    return findings


# -- stacks ------------------------------------------------------------------------------------


def stack_started(name: str) -> datetime | None:
    match = _STACK_TIME.match(name)
    if not match:
        return None
    return datetime.strptime(match[1], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)


def _reap_stacks(
    engine_factory: Callable[[], StackEngine],
    older_than: timedelta,
    yes: bool,
    skip: set[str],
    now: datetime,
) -> list[Finding]:
    from drills.aws.runner import teardown

    try:
        engine = engine_factory()
        stacks = engine.list_stacks(prefix=STACK_PREFIX)
    except (EngineError, BadInput) as error:
        return [Finding("stack", "*", "-", "-", "-", f"failed: stacks not checked: {error}")]
    found = []
    for info in stacks:
        expires = _parse_time(info.tags.get(EXPIRES_TAG))
        started = stack_started(info.name)
        drill = info.name.removeprefix(STACK_PREFIX)
        shown = expires.strftime("%Y-%m-%dT%H:%M:%SZ") if expires else "untagged"
        if info.name in skip:
            found.append(Finding("stack", info.name, "-", drill, shown, "left: skipped"))
            continue
        if expires is not None:
            due = expires <= now
        elif started is not None:
            due = now - started >= older_than
        else:
            due = info.last_update is not None and now - info.last_update >= older_than
        if not due:
            found.append(Finding("stack", info.name, "-", drill, shown, "left: not expired"))
            continue
        if not yes:
            found.append(Finding("stack", info.name, "-", drill, shown, "would destroy"))
            continue
        # A crashed drill may have left pending creates and its lock: refresh, cancel, retry.
        result = teardown(engine, info.name, after_interrupted_up=True, backoff=DESTROY_BACKOFF)
        action = "destroyed" if result.destroyed else "failed: " + "; ".join(result.notes)
        found.append(Finding("stack", info.name, "-", drill, shown, action))
    return found


# -- tagged resources --------------------------------------------------------------------------


def _reap_resources(
    clients: Callable[[str, str], Any], region: str, yes: bool, skipped: set[str], now: datetime
) -> list[Finding]:
    from recovery.aws import aws_errors

    tagging = clients("resourcegroupstaggingapi", region)
    with aws_errors(f"listing drill-tagged resources in {region}"):
        pages = tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": DRILL_TAG}], ResourceTypeFilters=list(RESOURCE_TYPES)
        )
        listed = [r for page in pages for r in page.get("ResourceTagMappingList", [])]
    candidates = []
    for item in listed:
        arn = item["ResourceARN"]
        kind = _kind(arn)
        if kind is None:
            continue
        tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
        candidates.append((RESOURCE_TYPES.index(kind), kind, arn, tags))
    found = []
    for _, kind, arn, tags in sorted(candidates):
        name = _name(kind, arn)
        drill = tags.get(DRILL_TAG, "")
        verdict = _verdict(tags, skipped, now)
        shown = tags.get(EXPIRES_TAG, "none")
        if verdict:
            found.append(Finding(kind, name, region, drill, shown, f"left: {verdict}"))
            continue
        if not yes:
            found.append(Finding(kind, name, region, drill, shown, "would delete"))
            continue
        try:
            action = _delete(clients, region, kind, name, arn, skipped, now)
        except Exception as error:  # one failure must not stop the rest; reported, exit 1
            action = f"failed: {type(error).__name__}: {str(error)[:200]}"
        found.append(Finding(kind, name, region, drill, shown, action))
    return found


def _verdict(tags: dict[str, str], skipped: set[str], now: datetime) -> str | None:
    """Why a resource must be left alone; None when it is a drill's and has expired."""
    if not tags.get(DRILL_TAG):
        return f"no {DRILL_TAG} tag"
    if tags[DRILL_TAG] in skipped:
        return "its drill is skipped"
    expires = _parse_time(tags.get(EXPIRES_TAG))
    if expires is None:
        return f"no readable {EXPIRES_TAG} tag"
    if expires > now:
        return "not expired"
    return None


def _kind(arn: str) -> str | None:
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return None
    service, rest = parts[2], parts[5]
    if service == "ec2" and rest.startswith("instance/"):
        return "ec2:instance"
    if service == "ec2" and rest.startswith("security-group/"):
        return "ec2:security-group"
    if service == "rds" and rest.startswith("db:"):
        return "rds:db"
    if service == "rds" and rest.startswith("snapshot:"):
        return "rds:snapshot"
    if service == "ssm" and rest.startswith("parameter/"):
        return "ssm:parameter"
    return None


def _name(kind: str, arn: str) -> str:
    rest = arn.split(":", 5)[5]
    if kind == "ssm:parameter":
        return "/" + rest.removeprefix("parameter/").lstrip("/")
    return re.split(r"[/:]", rest, maxsplit=1)[1]


def _delete(
    clients: Callable[[str, str], Any],
    region: str,
    kind: str,
    name: str,
    arn: str,
    skipped: set[str],
    now: datetime,
) -> str:
    """Read the resource's own tags again, then delete it and wait until it is gone."""
    tags = current_tags(clients, region, kind, name, arn)
    verdict = _verdict(tags, skipped, now)
    if verdict:
        return f"left: {verdict} (re-read before deleting)"
    if kind == "ec2:instance":
        ec2 = clients("ec2", region)
        ec2.terminate_instances(InstanceIds=[name])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[name], WaiterConfig=INSTANCE_WAIT)
    elif kind == "rds:db":
        rds = clients("rds", region)
        instance = rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
        if instance.get("DeletionProtection"):
            return "left: deletion protection is on (a drill never sets it)"
        rds.delete_db_instance(
            DBInstanceIdentifier=name, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
        )
        rds.get_waiter("db_instance_deleted").wait(DBInstanceIdentifier=name, WaiterConfig=DB_WAIT)
    elif kind == "rds:snapshot":
        clients("rds", region).delete_db_snapshot(DBSnapshotIdentifier=name)
    elif kind == "ec2:security-group":
        clients("ec2", region).delete_security_group(GroupId=name)
    elif kind == "ssm:parameter":
        clients("ssm", region).delete_parameter(Name=name)
    return "deleted"


def current_tags(
    clients: Callable[[str, str], Any], region: str, kind: str, name: str, arn: str
) -> dict[str, str]:
    """The resource's tags as its own service reports them now."""
    if kind in ("ec2:instance", "ec2:security-group"):
        answer = clients("ec2", region).describe_tags(
            Filters=[{"Name": "resource-id", "Values": [name]}]
        )
        return {t["Key"]: t["Value"] for t in answer.get("Tags", [])}
    if kind in ("rds:db", "rds:snapshot"):
        answer = clients("rds", region).list_tags_for_resource(ResourceName=arn)
        return {t["Key"]: t["Value"] for t in answer.get("TagList", [])}
    answer = clients("ssm", region).list_tags_for_resource(
        ResourceType="Parameter", ResourceId=name
    )
    return {t["Key"]: t["Value"] for t in answer.get("TagList", [])}


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo else None


def _print(findings: list[Finding], yes: bool, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"dry_run": not yes, "findings": [asdict(f) for f in findings]}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not findings:
        console.print("nothing to reap: no drill stacks or drill-tagged resources")
        return
    table = Table(title="drill reap" + ("" if yes else " (dry run: pass --yes to delete)"))
    for column in ("kind", "name", "region", "drill", "expires", "action"):
        table.add_column(column, overflow="fold")
    for f in findings:
        table.add_row(f.kind, f.name, f.region, f.drill, f.expires_at, f.action)
    console.print(table)
