"""The recovery point and the window AWS can restore (spec §4.1 step 2), checked with boto3
before anything is created.

`latest` needs a latest restorable time; an ISO time must lie inside the window (the
automated backups' RestoreWindow, else retention and the instance's creation time);
`snapshot:ID` must exist and be `available`. The source is the instance's point-in-time
backups in its region, its retained automated backups when the instance is gone (§4.2), or
the backups replicated to another region (`--region`, region loss).

Automated backups are listed by instance *name*, and a name outlives its instance: the
retained backups of an earlier instance called the same come back too. Each is matched to
the instance by `DbiResourceId`, the id RDS gives one instance for its whole life.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from infra.errors import BadInput, NotFound, OutsideWindow, WrongState
from recovery.aws import aws_errors, describe_instance, error_code
from recovery.times import parse_utc, utc_stamp


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
    rds: Any,
    *,
    db_instance: str,
    home_region: str,
    region: str,
    point: Point,
    now: datetime,
    home_rds: Any | None = None,
) -> Source:
    """Look the point's source up with boto3 (in the recovery region) and check the point.

    `home_rds` (recovering in another region): asked for the instance's DbiResourceId, to
    pick its replicated backups; a lost home region that cannot answer is expected."""
    if point.kind == "snapshot":
        return _snapshot_source(rds, point.snapshot_id or "", region)
    if region == home_region:
        source = _home_source(rds, db_instance, region)
    else:
        source = _replicated_source(
            rds, db_instance, home_region, region, _resource_id(home_rds, db_instance)
        )
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
        if backup.get("DbiResourceId") != instance.get("DbiResourceId"):
            continue  # an earlier instance of the same name: its window is not this one's
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


def _resource_id(home_rds: Any | None, db_instance: str) -> str | None:
    if home_rds is None:
        return None
    try:
        return describe_instance(home_rds, db_instance).get("DbiResourceId")
    except BadInput:  # gone, or the region does not answer: the copies must tell
        return None


def _replicated_source(
    rds: Any, db_instance: str, home_region: str, region: str, resource_id: str | None
) -> Source:
    with aws_errors(f"listing replicated backups in {region}"):
        backups = rds.describe_db_instance_automated_backups(DBInstanceIdentifier=db_instance).get(
            "DBInstanceAutomatedBackups", []
        )
    copies = [
        b
        for b in backups
        if b.get("Region") == home_region and b.get("DBInstanceAutomatedBackupsArn")
    ]
    if resource_id is not None:
        copies = [b for b in copies if b.get("DbiResourceId") == resource_id]
    else:
        # The home region cannot say which instance is current: the one still replicating
        # is (a deleted instance's copies are `retained`), else the newest restorable.
        copies = [b for b in copies if b.get("Status") == "replicating"] or copies
    if not copies:
        which = f" (DbiResourceId {resource_id})" if resource_id else ""
        raise NotFound(
            f"no backups of {db_instance}{which} replicated from {home_region} to {region}; "
            "pick the stack's backupReplication region, or recover in the home region"
        )
    epoch = datetime.min.replace(tzinfo=UTC)
    backup = max(copies, key=lambda b: (b.get("RestoreWindow") or {}).get("LatestTime") or epoch)
    window = backup.get("RestoreWindow") or {}
    return Source(
        region=region,
        automated_backups_arn=backup["DBInstanceAutomatedBackupsArn"],
        earliest=window.get("EarliestTime"),
        latest=window.get("LatestTime"),
        description=f"{db_instance} backups replicated to {region}"
        + (f" ({backup['DbiResourceId']})" if backup.get("DbiResourceId") else ""),
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
