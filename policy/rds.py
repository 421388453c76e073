"""RDS policies: the backup and safe-deletion posture the DR spec asks for (sections 1, 3, 4.1).

Properties are the aws:rds/instance:Instance inputs (pulumi-aws 7). A property left unset
takes RDS's or the provider's default, and the messages say which: retention 1 day (the
API's default), no encryption, no tag copy, a random backup window, automated backups deleted
with the instance. A value only the update computes (UNKNOWN) is not judged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from policy.base import Resource, is_drill, is_prod, is_unknown
from policy.config import PolicyConfig

INSTANCE = "aws:rds/instance:Instance"
REPLICATION = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
API_DEFAULT_RETENTION_DAYS = 1  # CreateDBInstance's default when BackupRetentionPeriod is unset
REPLICATION_DEFAULT_RETENTION_DAYS = 7  # StartDBInstanceAutomatedBackupsReplication's default
MIN_BACKUP_WINDOW_MINUTES = 30  # RDS refuses a shorter preferred backup window

_WINDOW = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


def _is_replica(db: Resource) -> bool:
    # A read replica's backups follow other rules; Prism's stacks have none.
    return bool(db.get("replicateSourceDb"))


def _needs_backups(db: Resource, config: PolicyConfig) -> bool:
    # A drill's restored instance lives for hours and is torn down: backups off is right
    # there (the drill policies make sure it is found and deleted instead).
    return not _is_replica(db) and not is_drill(db, config)


def retention(db: Resource, config: PolicyConfig) -> Iterator[str]:
    days = db.get("backupRetentionPeriod")
    if is_unknown(days) or not _needs_backups(db, config):
        return
    prod = is_prod(db, config)
    floor = config.retention_floor(prod)
    where = " on prod" if prod else ""
    if days is None:
        yield (
            f"backupRetentionPeriod is not set (RDS keeps {API_DEFAULT_RETENTION_DAYS} day); "
            f"at least {floor} days required{where}"
        )
    elif days < floor:
        yield f"backupRetentionPeriod is {days} days; at least {floor} required{where}"


def _minutes(hours: str, minutes: str) -> int:
    return int(hours) * 60 + int(minutes)


def backup_window(db: Resource, config: PolicyConfig) -> Iterator[str]:
    window = db.get("backupWindow")
    if is_unknown(window) or not _needs_backups(db, config):
        return
    if not window:
        yield "backupWindow is not set: RDS picks a random 30-minute window each day"
        return
    match = _WINDOW.fullmatch(str(window))
    if not match:
        yield f"backupWindow {window!r} is not hh24:mi-hh24:mi in UTC"
        return
    start, end = _minutes(*match.group(1, 2)), _minutes(*match.group(3, 4))
    length = (end - start) % (24 * 60)
    if length < MIN_BACKUP_WINDOW_MINUTES:
        yield f"backupWindow {window} lasts {length} minutes; RDS needs at least 30"


def encrypted(db: Resource, config: PolicyConfig) -> Iterator[str]:
    value = db.get("storageEncrypted")
    if not is_unknown(value) and value is not True:
        yield "storageEncrypted is not true: the database and its backups are unencrypted"


def not_public(db: Resource, config: PolicyConfig) -> Iterator[str]:
    value = db.get("publiclyAccessible")
    if value is True:
        yield "publiclyAccessible is true: the instance gets a public address"


def copy_tags(db: Resource, config: PolicyConfig) -> Iterator[str]:
    value = db.get("copyTagsToSnapshot")
    if not is_unknown(value) and value is not True:
        yield (
            "copyTagsToSnapshot is not true: snapshots lose the tags that say whose they are "
            "(prism:stack) and when they may go"
        )


def storage_headroom(db: Resource, config: PolicyConfig) -> Iterator[str]:
    allocated, ceiling = db.get("allocatedStorage"), db.get("maxAllocatedStorage")
    if is_unknown(allocated) or is_unknown(ceiling):
        return
    if not ceiling:
        yield (
            "maxAllocatedStorage is not set: storage autoscaling is off and a full disk stops "
            "the database"
        )
        return
    # Rounded: 1.1 x 50 is 55.000000000000007 in floating point, and 55 is enough.
    if allocated and ceiling < round(config.storage_headroom * allocated, 6):
        yield (
            f"maxAllocatedStorage {ceiling} GiB is below {config.storage_headroom} x "
            f"allocatedStorage ({allocated} GiB); RDS refuses it or cannot grow"
        )


def prod_deletion_protection(db: Resource, config: PolicyConfig) -> Iterator[str]:
    if not is_prod(db, config):
        return
    value = db.get("deletionProtection")
    if not is_unknown(value) and value is not True:
        yield "deletionProtection is not true on prod: one API call could delete the database"


def prod_final_snapshot(db: Resource, config: PolicyConfig) -> Iterator[str]:
    if not is_prod(db, config):
        return
    skip = db.get("skipFinalSnapshot")
    if skip is True:
        yield "skipFinalSnapshot is true on prod: deleting the instance would leave no snapshot"
    elif not is_unknown(skip) and not db.get("finalSnapshotIdentifier"):
        yield (
            "finalSnapshotIdentifier is not set on prod: the provider cannot take the final "
            "snapshot, so the delete fails or leaves none"
        )


def prod_keep_automated_backups(db: Resource, config: PolicyConfig) -> Iterator[str]:
    if not is_prod(db, config):
        return
    value = db.get("deleteAutomatedBackups")
    if not is_unknown(value) and value is not False:
        yield (
            "deleteAutomatedBackups is not false on prod: deleting the instance would delete "
            "its automated backups and the point-in-time window with it"
        )


def prod_multi_az(db: Resource, config: PolicyConfig) -> Iterator[str]:
    if not is_prod(db, config):
        return
    value = db.get("multiAz")
    if not is_unknown(value) and value is not True:
        yield "multiAz is not true on prod: an AZ outage means a restore instead of a failover"


def _linked(instance: Resource, replication: Resource) -> bool | None:
    """True or False when the replication's source is known; None when it cannot be told."""
    if instance.urn in replication.dependencies.get("sourceDbInstanceArn", ()):
        return True
    source, arn = replication.get("sourceDbInstanceArn"), instance.get("arn")
    if is_unknown(source) or is_unknown(arn) or arn is None:
        return None
    return source == arn


def prod_backup_replication(
    resources: Sequence[Resource], config: PolicyConfig
) -> Iterator[tuple[Resource | None, str]]:
    """Every prod instance has its automated backups replicated to a second region.

    The replication names its source by ARN, which a preview does not know for a new
    instance; the engine's property dependencies (in the pack) link them then, and where no
    link can be told the unlinked replications are paired with the unlinked instances."""
    instances = [
        r for r in resources if r.type == INSTANCE and is_prod(r, config) and not _is_replica(r)
    ]
    replications = [r for r in resources if r.type == REPLICATION]
    undecided = []
    claimed: set[str] = set()
    found: dict[str, Resource] = {}
    for db in instances:
        match = next((rep for rep in replications if _linked(db, rep) is True), None)
        if match is None:
            undecided.append(db)
        else:
            found[db.urn] = match
            claimed.add(match.urn)
    spare = [
        rep
        for rep in replications
        if rep.urn not in claimed and all(_linked(db, rep) is None for db in undecided)
    ]
    for db in undecided:
        if spare:
            found[db.urn] = spare.pop(0)
    for db in instances:
        rep = found.get(db.urn)
        if rep is None:
            yield (
                db,
                (
                    "no aws:rds/instanceAutomatedBackupsReplication for this prod instance: a "
                    "region outage would take its backups with it"
                ),
            )
            continue
        floor = config.prod_min_retention_days
        days = rep.get("retentionPeriod")
        if not is_unknown(days) and (days or REPLICATION_DEFAULT_RETENTION_DAYS) < floor:
            yield (
                rep,
                (
                    f"the replicated backups are kept {days or REPLICATION_DEFAULT_RETENTION_DAYS} "
                    f"days; at least {floor} required on prod"
                ),
            )
        if db.get("storageEncrypted") is True and not rep.get("kmsKeyId"):
            yield (
                rep,
                (
                    "kmsKeyId is not set: RDS refuses to replicate an encrypted instance's backups "
                    "without a key in the destination region"
                ),
            )
