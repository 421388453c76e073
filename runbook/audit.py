"""The backup posture audit: the live account against the spec's targets (§1, §3, §5, §6).

Gathering (boto3) and judging are apart: `gather` reads what AWS says into `Facts`, and
`evaluate` turns facts + expectations into checks, so each rule is plain code over data.

| check | fails when |
|---|---|
| automated_backups | retention is 0 (off) or below the target (the stack's, else 7 days) |
| pitr | LatestRestorableTime missing, or more than 15 min (and the RPO) behind now |
| deletion_protection | off where the stack (or prod) wants it on |
| encryption | storage not encrypted |
| backup_replication | expected, but no replicated automated backups in the DR region, or |
|   | their newest restorable time is older than the RPO |
| pre_migration_snapshot | with --last-migration: no available pre-migration snapshot for it |
| restore_drill | no passing drill record in the last 92 days (a quarter, spec §6) |
| untagged_snapshots | (warn) manual snapshots without prism:retain-until: nobody will prune them |
| expired_drill_resources | (warn) resources tagged prism:expires-at in the past still exist |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from infra.errors import BadInput
from recovery.aws import Target, aws_errors, describe_instance
from recovery.times import parse_utc, utc_stamp
from runbook.snapshot import RETAIN_UNTIL_TAG, Snapshot, snapshots_of

SPEC_MIN_RETENTION_DAYS = 7  # §3: "automated backups with a retention period of at least 7 days"
PITR_MAX_LAG = timedelta(minutes=15)  # RDS uploads transaction logs every 5 minutes
RPO = timedelta(hours=24)  # §1
DRILL_MAX_AGE = timedelta(days=92)  # §6: at least quarterly
EXPIRES_TAG = "prism:expires-at"


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Expectations:
    min_retention_days: int = SPEC_MIN_RETENTION_DAYS
    deletion_protection: bool = True
    replication: bool = True
    replication_region: str | None = None
    pitr_max_lag: timedelta = PITR_MAX_LAG
    rpo: timedelta = RPO
    drill_max_age: timedelta = DRILL_MAX_AGE

    @classmethod
    def for_target(cls, target: Target, dr_region: str | None = None) -> Expectations:
        """The stack's own settings when there is one; prod's posture for a bare instance."""
        db = target.database
        if db is None:
            return cls(replication_region=dr_region)
        return cls(
            min_retention_days=max(SPEC_MIN_RETENTION_DAYS, db.backup_retention_days),
            deletion_protection=db.deletion_protection,
            replication=db.backup_replication.enabled,
            replication_region=dr_region or db.backup_replication.region,
        )


@dataclass(frozen=True)
class LastMigration:
    """`--last-migration`: the newest migration's id (a snapshot tagged with it must exist) or
    its time (when it was written or merged): the newest pre-migration snapshot must be newer."""

    migration_id: str | None = None
    applied_at: datetime | None = None

    @classmethod
    def parse(cls, text: str) -> LastMigration:
        text = text.strip()
        if not text:
            raise BadInput("--last-migration is empty: pass a migration id or an ISO time")
        if re.match(r"\d{4}-\d{2}-\d{2}[T ]\d", text):
            when = parse_utc(text)
            if when is None:
                raise BadInput(
                    f"--last-migration {text!r} looks like a time but is not an ISO time with a "
                    "zone, e.g. 2026-11-30T12:00:00Z"
                )
            return cls(applied_at=when)
        return cls(migration_id=text)


class DrillRecordLike(Protocol):
    started_at: datetime
    environment: str

    @property
    def result(self) -> Any: ...


@dataclass(frozen=True)
class Facts:
    instance: dict[str, Any]
    snapshots: list[Snapshot]
    replicated_backups: list[dict[str, Any]] | None  # None: no DR region to look in
    replication_region: str | None
    tagged_resources: list[tuple[str, dict[str, str]]]  # (ARN, tags) with prism:expires-at
    drill_records: list[DrillRecordLike]


def replication_regions_of(instance: dict[str, Any]) -> list[str]:
    """Regions named by the instance's DBInstanceAutomatedBackupsReplications ARNs."""
    regions = []
    for entry in instance.get("DBInstanceAutomatedBackupsReplications") or []:
        parts = str(entry.get("DBInstanceAutomatedBackupsArn", "")).split(":")
        if len(parts) > 3 and parts[3]:
            regions.append(parts[3])
    return regions


def gather(
    rds: Any,
    *,
    db_instance: str,
    expectations: Expectations,
    dr_client: Callable[[str], Any],
    tagging: Callable[[str], Any],
    drill_records: Iterable[DrillRecordLike],
) -> Facts:
    instance = describe_instance(rds, db_instance)
    snapshots = snapshots_of(rds, db_instance)
    replicated: list[dict[str, Any]] | None = None
    regions = replication_regions_of(instance)
    dr_region = expectations.replication_region or (regions[0] if regions else None)
    dr_rds = dr_client(dr_region) if dr_region else None
    if dr_rds is not None:
        with aws_errors(f"listing replicated backups in {dr_rds.meta.region_name}"):
            pages = dr_rds.get_paginator("describe_db_instance_automated_backups").paginate(
                DbiResourceId=instance.get("DbiResourceId", "")
            )
            replicated = [
                b
                for page in pages
                for b in page.get("DBInstanceAutomatedBackups", [])
                # Only copies of this instance, not a same-named instance of the DR region.
                if b.get("DBInstanceArn") == instance.get("DBInstanceArn")
            ]
    tagged: list[tuple[str, dict[str, str]]] = []
    # Drills restore in the home region, or with --region in the DR region: look in both.
    for region in dict.fromkeys([rds.meta.region_name, dr_region]):
        if region is None:
            continue
        with aws_errors(f"listing resources tagged {EXPIRES_TAG} in {region}"):
            pages = (
                tagging(region)
                .get_paginator("get_resources")
                .paginate(TagFilters=[{"Key": EXPIRES_TAG}])
            )
            tagged += [
                (m["ResourceARN"], {t["Key"]: t["Value"] for t in m.get("Tags", [])})
                for page in pages
                for m in page.get("ResourceTagMappingList", [])
            ]
    return Facts(
        instance=instance,
        snapshots=snapshots,
        replicated_backups=replicated,
        replication_region=dr_region,
        tagged_resources=tagged,
        drill_records=list(drill_records),
    )


def evaluate(
    facts: Facts,
    expectations: Expectations,
    now: datetime,
    last_migration: LastMigration | None = None,
) -> list[Check]:
    return [
        _automated_backups(facts.instance, expectations),
        _pitr(facts.instance, expectations, now),
        _deletion_protection(facts.instance, expectations),
        _encryption(facts.instance),
        _replication(facts, expectations, now),
        _pre_migration_snapshot(facts.snapshots, last_migration),
        _restore_drill(facts.drill_records, expectations, now),
        _untagged_snapshots(facts.snapshots),
        _expired_drill_resources(facts.tagged_resources, now),
    ]


def passed(checks: list[Check]) -> bool:
    return all(c.status is not Status.FAIL for c in checks)


# ---------------------------------------------------------------------------------------------
# The rules.


def _automated_backups(instance: dict[str, Any], exp: Expectations) -> Check:
    days = int(instance.get("BackupRetentionPeriod") or 0)
    if days == 0:
        return Check("automated_backups", Status.FAIL, "automated backups are off (retention 0)")
    if days < exp.min_retention_days:
        return Check(
            "automated_backups",
            Status.FAIL,
            f"retention {days} days, below the target of {exp.min_retention_days}",
        )
    return Check(
        "automated_backups",
        Status.PASS,
        f"retention {days} days (target ≥ {exp.min_retention_days})",
    )


def _pitr(instance: dict[str, Any], exp: Expectations, now: datetime) -> Check:
    latest = instance.get("LatestRestorableTime")
    if not isinstance(latest, datetime):
        return Check(
            "pitr", Status.FAIL, "no LatestRestorableTime: point-in-time recovery is not working"
        )
    lag = now - latest.astimezone(UTC)
    limit = min(exp.pitr_max_lag, exp.rpo)
    minutes = lag.total_seconds() / 60
    if lag > limit:
        return Check(
            "pitr",
            Status.FAIL,
            f"latest restorable time {utc_stamp(latest)} is {minutes:.0f} min behind "
            f"(limit {limit.total_seconds() / 60:.0f} min): transaction logs are not archived",
        )
    return Check("pitr", Status.PASS, f"latest restorable time {max(0.0, minutes):.1f} min behind")


def _deletion_protection(instance: dict[str, Any], exp: Expectations) -> Check:
    on = bool(instance.get("DeletionProtection"))
    if exp.deletion_protection and not on:
        return Check("deletion_protection", Status.FAIL, "deletion protection is off")
    return Check(
        "deletion_protection", Status.PASS, "on" if on else "off (not required by the stack)"
    )


def _encryption(instance: dict[str, Any]) -> Check:
    if not instance.get("StorageEncrypted"):
        return Check(
            "encryption", Status.FAIL, "storage is not encrypted (and neither are its backups)"
        )
    return Check("encryption", Status.PASS, "storage and backups encrypted")


def _replication(facts: Facts, exp: Expectations, now: datetime) -> Check:
    if not exp.replication:
        return Check("backup_replication", Status.SKIP, "not required by the stack")
    if facts.replicated_backups is None:
        return Check(
            "backup_replication",
            Status.FAIL,
            "no DR region to check: the instance replicates its backups nowhere "
            "(set backupReplication in the stack, or pass --dr-region)",
        )
    region = facts.replication_region
    if not facts.replicated_backups:
        return Check(
            "backup_replication", Status.FAIL, f"no replicated automated backups in {region}"
        )
    newest = None
    for backup in facts.replicated_backups:
        latest = (backup.get("RestoreWindow") or {}).get("LatestTime")
        if isinstance(latest, datetime) and (newest is None or latest > newest):
            newest = latest
    if newest is None:
        return Check(
            "backup_replication",
            Status.FAIL,
            f"replicated backups in {region} have no restorable time yet",
        )
    age = now - newest.astimezone(UTC)
    if age > exp.rpo:
        return Check(
            "backup_replication",
            Status.FAIL,
            f"newest replicated restorable time in {region} is {utc_stamp(newest)}, "
            f"{age.total_seconds() / 3600:.1f} h old (RPO {exp.rpo.total_seconds() / 3600:.0f} h)",
        )
    return Check(
        "backup_replication",
        Status.PASS,
        f"replicated to {region}, restorable to {utc_stamp(newest)}",
    )


def _pre_migration_snapshot(snapshots: list[Snapshot], last: LastMigration | None) -> Check:
    ready = [
        s
        for s in snapshots
        if s.is_pre_migration and not s.is_automated and s.status == "available"
    ]
    if last is None:
        newest = ready[-1] if ready else None
        detail = (
            f"newest: {newest.identifier} ({utc_stamp(newest.created_at)})"
            if newest and newest.created_at
            else "none yet"
        )
        return Check("pre_migration_snapshot", Status.SKIP, f"no --last-migration given; {detail}")
    if last.migration_id is not None:
        found = [s for s in ready if s.migration == last.migration_id]
        if not found:
            return Check(
                "pre_migration_snapshot",
                Status.FAIL,
                f"no available pre-migration snapshot tagged prism:migration={last.migration_id}",
            )
        return Check("pre_migration_snapshot", Status.PASS, f"{found[-1].identifier}")
    assert last.applied_at is not None
    newest = ready[-1] if ready else None
    if newest is None or newest.created_at is None or newest.created_at < last.applied_at:
        seen = f"newest is {newest.identifier}" if newest else "there is none"
        return Check(
            "pre_migration_snapshot",
            Status.FAIL,
            f"no available pre-migration snapshot newer than the last migration "
            f"({utc_stamp(last.applied_at)}); {seen}",
        )
    return Check("pre_migration_snapshot", Status.PASS, f"{newest.identifier}")


def _restore_drill(records: list[DrillRecordLike], exp: Expectations, now: datetime) -> Check:
    passing = [r for r in records if str(getattr(r.result, "value", r.result)) == "passed"]
    if not passing:
        return Check(
            "restore_drill", Status.FAIL, "no passing restore drill on record (spec §6: quarterly)"
        )
    newest = max(passing, key=lambda r: r.started_at)
    age = now - newest.started_at.astimezone(UTC)
    days = age.total_seconds() / 86400
    day = newest.started_at.date().isoformat()
    detail = f"newest passing drill {day} ({newest.environment}), {days:.0f} days ago"
    if age > exp.drill_max_age:
        return Check(
            "restore_drill",
            Status.FAIL,
            f"{detail}: older than {exp.drill_max_age.days} days, the quarterly drill is overdue",
        )
    return Check("restore_drill", Status.PASS, detail)


def _untagged_snapshots(snapshots: list[Snapshot]) -> Check:
    untagged = [
        s.identifier for s in snapshots if not s.is_automated and RETAIN_UNTIL_TAG not in s.tags
    ]
    if untagged:
        return Check(
            "untagged_snapshots",
            Status.WARN,
            f"{len(untagged)} manual snapshot(s) without {RETAIN_UNTIL_TAG}: kept (and paid for) "
            "until someone deletes them",
            untagged,
        )
    return Check("untagged_snapshots", Status.PASS, "every manual snapshot has an expiry")


def _expired_drill_resources(tagged: list[tuple[str, dict[str, str]]], now: datetime) -> Check:
    expired = []
    for arn, tags in tagged:
        when = parse_utc(tags.get(EXPIRES_TAG, ""))
        if when is not None and when < now:
            expired.append(f"{arn} (expired {utc_stamp(when)})")
    if expired:
        return Check(
            "expired_drill_resources",
            Status.WARN,
            f"{len(expired)} resource(s) past prism:expires-at still exist: "
            "`prism-dr drill reap` removes them",
            expired,
        )
    return Check("expired_drill_resources", Status.PASS, "none")
