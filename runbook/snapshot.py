"""The pre-migration snapshot (spec §3 and §5): take it, confirm it, keep it 30 days, prune it.

A snapshot taken here is a *manual* RDS snapshot named `<db>-premig-<migration>-<utc>` and
tagged so that every later step can tell it apart from anything else in the account:

    prism:purpose       pre-migration
    prism:migration     the migration id (characters RDS refuses in tag values become _)
    prism:retain-until  an RFC 3339 UTC time, 30 days on by default (spec §5: at least 30)
    prism:created-by    who or what took it

Pruning deletes only manual snapshots with `prism:purpose=pre-migration` whose
`prism:retain-until` has passed. Automated (`rds:`) snapshots, untagged manual snapshots and
anything with an unreadable expiry are never touched.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from infra.errors import BadInput, OperationFailed
from recovery.aws import aws_errors, describe_instance, error_code, require_available, tags_of
from recovery.times import parse_utc, utc_stamp

PURPOSE_TAG = "prism:purpose"
PURPOSE = "pre-migration"
MIGRATION_TAG = "prism:migration"
RETAIN_UNTIL_TAG = "prism:retain-until"
CREATED_BY_TAG = "prism:created-by"
STACK_TAG = "prism:stack"

MIN_RETAIN_DAYS = 30  # spec §5: keep the snapshot at least 30 days after the migration
DEFAULT_RETAIN_DAYS = 30
DEFAULT_POLL_SECONDS = 30  # what the db_snapshot_available waiter itself uses
DEFAULT_TIMEOUT_SECONDS = 3600

_SNAPSHOT_ID_MAX = 255
_SLUG_MAX = 80
_TAG_VALUE_MAX = 256
# Besides Unicode letters, digits and white space, what an RDS tag value may hold.
_TAG_VALUE_PUNCTUATION = set("_.:/=+-@")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_migration_id(migration: str) -> str:
    value = migration.strip()
    if not value:
        raise BadInput("--migration is empty; pass the migration's id, e.g. 0042_add_reports")
    if _CONTROL.search(value):
        raise BadInput("--migration contains control characters; pass the migration's id")
    if len(value) > _TAG_VALUE_MAX:
        raise BadInput(f"--migration is {len(value)} characters; at most {_TAG_VALUE_MAX}")
    return value


def snapshot_identifier(db_instance: str, migration: str, when: datetime) -> str:
    """`<db>-premig-<migration>-<utc>`, a valid RDS snapshot identifier whatever the id holds.

    RDS: 1 to 255 letters, digits or hyphens, starting with a letter, no `--`, no trailing `-`.
    The migration becomes lowercase runs of letters and digits joined by single hyphens.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", migration.lower()).strip("-")[:_SLUG_MAX].strip("-")
    stamp = when.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    parts = [db_instance, "premig", slug or "unnamed", stamp]
    identifier = "-".join(parts)
    assert len(identifier) <= _SNAPSHOT_ID_MAX
    return identifier


def tag_value(text: str) -> str:
    """`text` with the characters RDS refuses in a tag value replaced by `_`."""
    return "".join(
        c if c.isalnum() or c.isspace() or c in _TAG_VALUE_PUNCTUATION else "_" for c in text
    )[:_TAG_VALUE_MAX]


def pre_migration_tags(
    *, migration: str, retain_until: datetime, created_by: str, stack: str | None
) -> list[dict[str, str]]:
    tags = {
        PURPOSE_TAG: PURPOSE,
        MIGRATION_TAG: tag_value(migration),
        RETAIN_UNTIL_TAG: utc_stamp(retain_until),
        CREATED_BY_TAG: tag_value(created_by) or "unknown",
    }
    if stack:
        tags[STACK_TAG] = stack
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def waiter_attempts(timeout_seconds: float, poll_seconds: float) -> int:
    if poll_seconds <= 0:
        raise BadInput(f"--poll must be more than 0 seconds (got {poll_seconds:g})")
    return max(1, math.ceil(timeout_seconds / poll_seconds))


# ---------------------------------------------------------------------------------------------
# Create and confirm.


@dataclass(frozen=True)
class Snapshot:
    """One DB snapshot as DescribeDBSnapshots shows it, with its Prism tags read."""

    identifier: str
    db_instance: str
    snapshot_type: str  # manual, automated, shared, public, awsbackup
    status: str
    created_at: datetime | None
    arn: str | None
    tags: dict[str, str]
    engine_version: str | None = None
    allocated_storage_gb: int | None = None
    encrypted: bool | None = None

    @classmethod
    def from_aws(cls, data: dict[str, Any]) -> Snapshot:
        created = data.get("SnapshotCreateTime")
        return cls(
            identifier=data["DBSnapshotIdentifier"],
            db_instance=data.get("DBInstanceIdentifier", ""),
            snapshot_type=data.get("SnapshotType", ""),
            status=data.get("Status", ""),
            created_at=created.astimezone(UTC) if isinstance(created, datetime) else None,
            arn=data.get("DBSnapshotArn"),
            tags=tags_of(data),
            engine_version=data.get("EngineVersion"),
            allocated_storage_gb=data.get("AllocatedStorage"),
            encrypted=data.get("Encrypted"),
        )

    @property
    def is_pre_migration(self) -> bool:
        return self.tags.get(PURPOSE_TAG) == PURPOSE

    @property
    def migration(self) -> str | None:
        return self.tags.get(MIGRATION_TAG)

    @property
    def retain_until(self) -> datetime | None:
        text = self.tags.get(RETAIN_UNTIL_TAG)
        return parse_utc(text) if text else None

    @property
    def is_automated(self) -> bool:
        return self.snapshot_type != "manual" or self.identifier.startswith("rds:")


def create_pre_migration_snapshot(
    rds: Any,
    *,
    db_instance: str,
    migration: str,
    created_by: str,
    stack: str | None,
    now: datetime,
    retain_days: int = DEFAULT_RETAIN_DAYS,
) -> str:
    """Start the snapshot; refuse (nothing created) when the DB is missing or not available."""
    migration = check_migration_id(migration)
    if retain_days < MIN_RETAIN_DAYS:
        raise BadInput(
            f"--retain-days {retain_days} is below the spec's {MIN_RETAIN_DAYS} days (§5); "
            f"pass {MIN_RETAIN_DAYS} or more"
        )
    instance = describe_instance(rds, db_instance)
    require_available(instance, "take a snapshot")
    identifier = snapshot_identifier(db_instance, migration, now)
    tags = pre_migration_tags(
        migration=migration,
        retain_until=now + timedelta(days=retain_days),
        created_by=created_by,
        stack=stack,
    )
    with aws_errors(f"creating snapshot {identifier}"):
        rds.create_db_snapshot(
            DBSnapshotIdentifier=identifier, DBInstanceIdentifier=db_instance, Tags=tags
        )
    return identifier


def wait_available(
    rds: Any,
    identifier: str,
    *,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> Snapshot:
    """Block on boto3's `db_snapshot_available` waiter; OperationFailed names the state."""
    waiter = rds.get_waiter("db_snapshot_available")
    attempts = waiter_attempts(timeout_seconds, poll_seconds)
    with aws_errors(f"waiting for snapshot {identifier}"):
        try:
            waiter.wait(
                DBSnapshotIdentifier=identifier,
                WaiterConfig={"Delay": poll_seconds, "MaxAttempts": attempts},
            )
        except WaiterError as error:  # a BotoCoreError: caught here, before aws_errors sees it
            refused = _refusal(error.last_response)
            if refused is not None:
                # AWS answered with an error (access denied, throttled, gone): not a state of
                # the snapshot, so not "take a new snapshot", but the refusal, as everywhere.
                raise BadInput(f"waiting for snapshot {identifier}: {refused}") from None
            state = _last_state(error.last_response)
            if "Max attempts exceeded" in str(error):
                raise OperationFailed(
                    f"snapshot {identifier} is still {state!r} after {attempts} checks "
                    f"{poll_seconds:g} s apart; do not migrate yet. See it with "
                    "`prism-dr snapshot list`, then re-run with a longer --timeout"
                ) from None
            raise OperationFailed(
                f"snapshot {identifier} ended {state!r} instead of 'available'; do not "
                "migrate: take a new snapshot"
            ) from None
    return describe_snapshot(rds, identifier)


def _refusal(response: Any) -> str | None:
    """An error answer as aws_errors words it; None for an answer that names a state."""
    if not isinstance(response, dict) or "Error" not in response:
        return None
    error = response["Error"]
    return f"AWS refused ({error.get('Code') or 'error'}): {error.get('Message') or ''}"


def _last_state(response: Any) -> str:
    if not isinstance(response, dict):
        return "unknown"
    snapshots = response.get("DBSnapshots") or []
    return str(snapshots[0].get("Status")) if snapshots else "missing"


def describe_snapshot(rds: Any, identifier: str) -> Snapshot:
    with aws_errors(f"describing snapshot {identifier}"):
        found = rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"]
    return Snapshot.from_aws(found[0])


# ---------------------------------------------------------------------------------------------
# List and prune.


def snapshots_of(rds: Any, db_instance: str) -> list[Snapshot]:
    """Every manual and automated snapshot of the instance, oldest first (tags included)."""
    found: list[Snapshot] = []
    with aws_errors(f"listing snapshots of {db_instance}"):
        pages = rds.get_paginator("describe_db_snapshots").paginate(
            DBInstanceIdentifier=db_instance
        )
        for page in pages:
            found.extend(Snapshot.from_aws(s) for s in page.get("DBSnapshots", []))
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda s: (s.created_at or epoch, s.identifier))


class Action(StrEnum):
    DELETE = "delete"
    KEEP = "keep"


@dataclass(frozen=True)
class PruneDecision:
    snapshot: Snapshot
    action: Action
    reason: str


def prune_decisions(snapshots: list[Snapshot], now: datetime) -> list[PruneDecision]:
    """What prune does to each snapshot, and why; only expired pre-migration ones go."""
    decisions = []
    for snap in snapshots:
        if snap.is_automated:
            action, reason = Action.KEEP, f"{snap.snapshot_type or 'automated'}: never pruned"
        elif not snap.is_pre_migration:
            action, reason = Action.KEEP, f"not tagged {PURPOSE_TAG}={PURPOSE}"
        elif RETAIN_UNTIL_TAG not in snap.tags:
            action, reason = Action.KEEP, f"no {RETAIN_UNTIL_TAG} tag"
        elif snap.retain_until is None:
            action, reason = (
                Action.KEEP,
                f"unreadable {RETAIN_UNTIL_TAG}: {snap.tags[RETAIN_UNTIL_TAG]!r}",
            )
        elif snap.retain_until > now:
            action, reason = Action.KEEP, f"retained until {utc_stamp(snap.retain_until)}"
        elif snap.status != "available":
            action, reason = Action.KEEP, f"expired but {snap.status!r}; retry later"
        else:
            action, reason = Action.DELETE, f"expired {utc_stamp(snap.retain_until)}"
        decisions.append(PruneDecision(snap, action, reason))
    return decisions


def delete_snapshot(rds: Any, snap: Snapshot) -> None:
    # Checked again at the call: nothing but an expired pre-migration manual snapshot goes.
    if snap.is_automated or not snap.is_pre_migration:
        raise AssertionError(f"refusing to delete {snap.identifier}: not a pre-migration snapshot")
    with aws_errors(f"deleting snapshot {snap.identifier}"):
        try:
            rds.delete_db_snapshot(DBSnapshotIdentifier=snap.identifier)
        except ClientError as error:
            if error_code(error) != "DBSnapshotNotFound":  # already gone: the goal is met
                raise
