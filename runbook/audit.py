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
| pre_migration_snapshot | no available pre-migration snapshot for the last migration (given, |
|   | else the newest `Prism-Migration` trailer or snapshot record of the project) |
| restore_drill | no passing drill of this database on record in the last 92 days (spec §6) |
| untagged_snapshots | (warn) manual snapshots without a readable prism:retain-until: nobody |
|   | will prune them |
| expired_drill_resources | (warn) resources tagged prism:expires-at in the past still exist |

Each source (the instance, its snapshots, the replicated backups, the tagging API, the drill
records) is read on its own: when one cannot be read, the checks that need it fail saying why
and every other check is still judged. A missing instance is such a failure, not bad input.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

from infra.errors import BadInput
from recovery.aws import Target, aws_errors, describe_instance
from recovery.times import parse_utc, utc_stamp
from runbook.snapshot import RETAIN_UNTIL_TAG, Snapshot, snapshots_of

SPEC_MIN_RETENTION_DAYS = 7  # §3: "automated backups with a retention period of at least 7 days"
PITR_MAX_LAG = timedelta(minutes=15)  # RDS uploads transaction logs every 5 minutes
RPO = timedelta(hours=24)  # §1
DRILL_MAX_AGE = timedelta(days=92)  # §6: at least quarterly
EXPIRES_TAG = "prism:expires-at"
MIGRATION_TRAILER = "Prism-Migration"  # the commit trailer deploy.yml snapshots for

# The sources `gather` reads, and the checks that need each one.
INSTANCE, SNAPSHOTS, REPLICATION, TAGGING, DRILLS = (
    "instance",
    "snapshots",
    "replicated backups",
    "tagging API",
    "drill records",
)
_NEEDS = {
    "automated_backups": (INSTANCE,),
    "pitr": (INSTANCE,),
    "deletion_protection": (INSTANCE,),
    "encryption": (INSTANCE,),
    "backup_replication": (INSTANCE, REPLICATION),
    "pre_migration_snapshot": (SNAPSHOTS,),
    "restore_drill": (DRILLS,),
    "untagged_snapshots": (SNAPSHOTS,),
    "expired_drill_resources": (TAGGING,),
}
T = TypeVar("T")


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
    found_in: str = "--last-migration"

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
    db_instance: str
    instance: dict[str, Any]
    snapshots: list[Snapshot]
    replicated_backups: list[dict[str, Any]] | None  # None: no DR region to look in
    replication_region: str | None
    tagged_resources: list[tuple[str, dict[str, str]]]  # (ARN, tags) with prism:expires-at
    drill_records: list[DrillRecordLike]
    # source -> why it could not be read; the checks needing it fail with that line
    unreadable: dict[str, str] = field(default_factory=dict)


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
    drill_records: Callable[[], Iterable[DrillRecordLike]],
) -> Facts:
    unreadable: dict[str, str] = {}

    def read(source: str, fetch: Callable[[], T], empty: T) -> T:
        # BadInput is what aws_errors makes of a refusal, a lost route or missing credentials,
        # and what a missing instance or a corrupt drill record raises.
        try:
            return fetch()
        except (BadInput, OSError) as error:
            unreadable[source] = str(error)
            return empty

    instance = read(INSTANCE, lambda: describe_instance(rds, db_instance), {})
    snapshots = read(SNAPSHOTS, lambda: snapshots_of(rds, db_instance), [])
    regions = replication_regions_of(instance)
    dr_region = expectations.replication_region or (regions[0] if regions else None)
    replicated: list[dict[str, Any]] | None = None
    if dr_region and instance:
        replicated = read(
            REPLICATION, lambda: _replicated_backups(dr_client(dr_region), instance), []
        )
    tagged: list[tuple[str, dict[str, str]]] = []
    # Drills restore in the home region, or with --region in the DR region: look in both.
    for region in dict.fromkeys([rds.meta.region_name, dr_region]):
        if region is not None:
            tagged += read(TAGGING, lambda r=region: _expiring_resources(tagging(r), r), [])
    records = read(DRILLS, lambda: list(drill_records()), [])
    return Facts(
        db_instance=db_instance,
        instance=instance,
        snapshots=snapshots,
        replicated_backups=replicated,
        replication_region=dr_region,
        tagged_resources=tagged,
        drill_records=records,
        unreadable=unreadable,
    )


def _replicated_backups(dr_rds: Any, instance: dict[str, Any]) -> list[dict[str, Any]]:
    with aws_errors(f"listing replicated backups in {dr_rds.meta.region_name}"):
        pages = dr_rds.get_paginator("describe_db_instance_automated_backups").paginate(
            DbiResourceId=instance.get("DbiResourceId", "")
        )
        return [
            b
            for page in pages
            for b in page.get("DBInstanceAutomatedBackups", [])
            # Only copies of this instance, not a same-named instance of the DR region.
            if b.get("DBInstanceArn") == instance.get("DBInstanceArn")
        ]


def _expiring_resources(client: Any, region: str) -> list[tuple[str, dict[str, str]]]:
    with aws_errors(f"listing resources tagged {EXPIRES_TAG} in {region}"):
        pages = client.get_paginator("get_resources").paginate(TagFilters=[{"Key": EXPIRES_TAG}])
        return [
            (m["ResourceARN"], {t["Key"]: t["Value"] for t in m.get("Tags", [])})
            for page in pages
            for m in page.get("ResourceTagMappingList", [])
        ]


def read_drill_records(record_dir: Path | None, missing_hint: str) -> list[DrillRecordLike]:
    """The drill records, or BadInput naming the directory that is not there."""
    from drills.record import load_records  # here: the audit's other checks need no pydantic

    if record_dir is None or not Path(record_dir).is_dir():
        where = f"{record_dir} does not exist" if record_dir is not None else "is unknown"
        raise BadInput(f"the drill record directory {where}: {missing_hint}")
    return list(load_records(Path(record_dir)))


def _commit_migrations(project_dir: Path) -> list[tuple[datetime, str]]:
    """(commit time, id) of every `Prism-Migration` trailer in the project's git history."""
    fmt = f"%cI%x00%(trailers:key={MIGRATION_TRAILER},valueonly,separator=%x20)"
    try:
        shown = subprocess.run(
            ["git", "-C", str(project_dir), "log", f"--format={fmt}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []  # no git, or not a repository: the snapshot records still tell
    found = []
    for line in shown.splitlines():
        stamp, _, ids = line.partition("\x00")
        when = parse_utc(stamp)
        for migration in ids.split():
            if when is not None:
                found.append((when, migration))
    return found


def last_migration_of(
    project_dir: Path | None, snapshot_record_dir: Path | None
) -> LastMigration | None:
    """The newest migration the project knows: its newest `Prism-Migration` commit trailer
    (what deploy.yml takes a snapshot for) or its newest snapshot record (a manual deploy's
    migration input), whichever is later. None when there is neither."""
    from runbook.snapshot_record import load_records as load_snapshot_records

    candidates = [
        (when, migration, f"{MIGRATION_TRAILER} trailer in {project_dir}")
        for when, migration in (_commit_migrations(project_dir) if project_dir else [])
    ]
    if snapshot_record_dir is not None and Path(snapshot_record_dir).is_dir():
        try:
            records = load_snapshot_records(snapshot_record_dir)
        except BadInput:
            records = []  # a corrupt record is `snapshot create`'s to report, not this check's
        candidates += [
            (r.created_at, r.migration, f"snapshot record in {snapshot_record_dir}")
            for r in records
        ]
    if not candidates:
        return None
    _, migration, where = max(candidates, key=lambda c: c[0])
    return LastMigration(migration_id=migration, found_in=where)


def evaluate(
    facts: Facts,
    expectations: Expectations,
    now: datetime,
    last_migration: LastMigration | None = None,
) -> list[Check]:
    rules: dict[str, Callable[[], Check]] = {
        "automated_backups": lambda: _automated_backups(facts.instance, expectations),
        "pitr": lambda: _pitr(facts.instance, expectations, now),
        "deletion_protection": lambda: _deletion_protection(facts.instance, expectations),
        "encryption": lambda: _encryption(facts.instance),
        "backup_replication": lambda: _replication(facts, expectations, now),
        "pre_migration_snapshot": lambda: _pre_migration_snapshot(facts.snapshots, last_migration),
        "restore_drill": lambda: _restore_drill(
            facts.drill_records, facts.db_instance, expectations, now
        ),
        "untagged_snapshots": lambda: _untagged_snapshots(facts.snapshots),
        "expired_drill_resources": lambda: _expired_drill_resources(facts.tagged_resources, now),
    }
    checks = []
    for name, rule in rules.items():
        missing = [facts.unreadable[s] for s in _NEEDS[name] if s in facts.unreadable]
        checks.append(Check(name, Status.FAIL, missing[0]) if missing else rule())
    return checks


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
        return Check(
            "pre_migration_snapshot",
            Status.SKIP,
            f"no migration known (no --last-migration, {MIGRATION_TRAILER} trailer or snapshot "
            f"record); {detail}",
        )
    if last.migration_id is not None:
        found = [s for s in ready if s.migration == last.migration_id]
        if not found:
            return Check(
                "pre_migration_snapshot",
                Status.FAIL,
                f"no available pre-migration snapshot tagged prism:migration={last.migration_id} "
                f"(the last migration, from the {last.found_in})",
            )
        return Check(
            "pre_migration_snapshot",
            Status.PASS,
            f"{found[-1].identifier} (migration {last.migration_id}, from the {last.found_in})",
        )
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


def drills_of(records: list[DrillRecordLike], db_instance: str) -> list[DrillRecordLike]:
    """The records whose backup came from `db_instance`: its name stands in the record's
    backup source as a word (`prism-prod point-in-time backups …`, `prism-prod@latest`), or
    starts one of its snapshots' names (`rds:prism-prod-2026-…`, `prism-prod-premig-…`).
    A drill of another database (`prism-prod-replica`), or of a dump whose name says nothing,
    is not its drill: after the name, a hyphen may only begin an automated snapshot's date or
    a pre-migration snapshot's `premig-`."""
    own = re.compile(
        rf"(?<![A-Za-z0-9-]){re.escape(db_instance)}(?![A-Za-z0-9])(?!-(?!\d|premig-))"
    )
    return [r for r in records if own.search(str(getattr(r, "backup_source", "")))]


def _restore_drill(
    records: list[DrillRecordLike], db_instance: str, exp: Expectations, now: datetime
) -> Check:
    own = drills_of(records, db_instance)
    passing = [r for r in own if str(getattr(r.result, "value", r.result)) == "passed"]
    if not passing:
        others = len(records) - len(own)
        return Check(
            "restore_drill",
            Status.FAIL,
            f"no passing restore drill of {db_instance} on record (spec §6: quarterly); "
            f"{others} record(s) of other backups do not count",
        )
    newest = max(passing, key=lambda r: r.started_at)
    age = now - newest.started_at.astimezone(UTC)
    days = age.total_seconds() / 86400
    day = newest.started_at.date().isoformat()
    detail = (
        f"newest passing drill of {db_instance} {day} ({newest.environment}), {days:.0f} days ago"
    )
    if age > exp.drill_max_age:
        return Check(
            "restore_drill",
            Status.FAIL,
            f"{detail}: older than {exp.drill_max_age.days} days, the quarterly drill is overdue",
        )
    return Check("restore_drill", Status.PASS, detail)


def _untagged_snapshots(snapshots: list[Snapshot]) -> Check:
    unpruned = []
    for s in snapshots:
        if s.is_automated:
            continue
        if RETAIN_UNTIL_TAG not in s.tags:
            unpruned.append(s.identifier)
        elif s.retain_until is None:  # prune keeps what it cannot read: forever, unless told
            unpruned.append(
                f"{s.identifier} (unreadable {RETAIN_UNTIL_TAG}: {s.tags[RETAIN_UNTIL_TAG]!r})"
            )
    if unpruned:
        return Check(
            "untagged_snapshots",
            Status.WARN,
            f"{len(unpruned)} manual snapshot(s) without a readable {RETAIN_UNTIL_TAG} (an RFC "
            "3339 UTC time): kept (and paid for) until someone deletes them",
            unpruned,
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
