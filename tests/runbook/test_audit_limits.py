"""The audit's limits at their edges: each one at, just inside and just outside its boundary.

`evaluate` judges plain facts, so these tests build the facts as DescribeDBInstances and
DescribeDBInstanceAutomatedBackups return them (field names from the RDS API reference:
https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DBInstance.html and
API_DBInstanceAutomatedBackup.html) and read one check's verdict. tests/runbook/test_audit.py
runs the whole command against the moto server.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest

from runbook.audit import (
    DRILL_MAX_AGE,
    PITR_MAX_LAG,
    RPO,
    SPEC_MIN_RETENTION_DAYS,
    Check,
    Expectations,
    Facts,
    LastMigration,
    Status,
    evaluate,
    passed,
)
from runbook.snapshot import Snapshot

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


class Result(StrEnum):  # as drills.record.model.Result (the runbook may not import it)
    PASSED = "passed"
    FAILED = "failed"


@dataclass
class Drill:
    started_at: datetime
    environment: str = "prod"
    result: Any = Result.PASSED
    backup_source: str = "prism-prod point-in-time backups"


def healthy_instance(**changes: Any) -> dict[str, Any]:
    instance = {
        "DBInstanceIdentifier": "prism-prod",
        "BackupRetentionPeriod": 30,
        "LatestRestorableTime": NOW - timedelta(minutes=5),
        "DeletionProtection": True,
        "StorageEncrypted": True,
    }
    instance.update(changes)
    return instance


def replicated(latest: datetime | None) -> dict[str, Any]:
    window = {} if latest is None else {"LatestTime": latest, "EarliestTime": latest - RPO}
    return {"DBInstanceArn": "arn:aws:rds:us-east-1:1:db:prism-prod", "RestoreWindow": window}


def snap(identifier: str, *, created: datetime, snapshot_type: str = "manual",
         status: str = "available", tags: dict[str, str] | None = None) -> Snapshot:
    return Snapshot(identifier, "prism-prod", snapshot_type, status, created, None,
                    {"prism:purpose": "pre-migration", **(tags or {})})


def facts(
    *,
    instance: dict[str, Any] | None = None,
    snapshots: list[Snapshot] | None = None,
    backups: list[dict[str, Any]] | None = None,
    drills: list[Drill] | None = None,
    tagged: list[tuple[str, dict[str, str]]] | None = None,
) -> Facts:
    return Facts(
        db_instance="prism-prod",
        instance=instance or healthy_instance(),
        snapshots=snapshots or [],
        replicated_backups=[replicated(NOW - timedelta(hours=1))] if backups is None else backups,
        replication_region="us-west-2",
        tagged_resources=tagged or [],
        drill_records=[Drill(NOW - timedelta(days=10))] if drills is None else drills,
    )


def no_dr_region() -> Facts:
    return replace(facts(), replicated_backups=None, replication_region=None)


def check(name: str, found: Facts, exp: Expectations | None = None,
          last: LastMigration | None = None) -> Check:
    [one] = [c for c in evaluate(found, exp or Expectations(), NOW, last) if c.name == name]
    return one


def test_a_healthy_account_passes_every_check():
    checks = evaluate(facts(), Expectations(), NOW)
    assert [c.status for c in checks if c.status is not Status.PASS] == [Status.SKIP]
    assert passed(checks)


# -- automated backups: the retention target --------------------------------------------------


@pytest.mark.parametrize(
    ("days", "status"),
    [
        (SPEC_MIN_RETENTION_DAYS - 1, Status.FAIL),
        (SPEC_MIN_RETENTION_DAYS, Status.PASS),
        (SPEC_MIN_RETENTION_DAYS + 1, Status.PASS),
    ],
)
def test_retention_is_judged_against_the_spec_minimum(days, status):
    found = check("automated_backups", facts(instance=healthy_instance(BackupRetentionPeriod=days)))
    assert found.status is status
    assert f"retention {days} days" in found.detail


def test_retention_below_a_stack_target_fails_and_names_both():
    exp = Expectations(min_retention_days=30)
    low = check("automated_backups", facts(instance=healthy_instance(BackupRetentionPeriod=29)),
                exp)
    assert (low.status, low.detail) == (Status.FAIL,
                                        "retention 29 days, below the target of 30")
    met = check("automated_backups", facts(instance=healthy_instance(BackupRetentionPeriod=30)),
                exp)
    assert (met.status, met.detail) == (Status.PASS, "retention 30 days (target ≥ 30)")


@pytest.mark.parametrize("value", [0, None])
def test_backups_off_say_so(value):
    instance = healthy_instance(BackupRetentionPeriod=value)
    found = check("automated_backups", facts(instance=instance), Expectations(min_retention_days=0))
    assert (found.status, found.detail) == (Status.FAIL, "automated backups are off (retention 0)")


# -- point-in-time recovery: the log archiving lag --------------------------------------------


@pytest.mark.parametrize(
    ("lag", "status"),
    [(PITR_MAX_LAG - SECOND, Status.PASS), (PITR_MAX_LAG, Status.PASS),
     (PITR_MAX_LAG + SECOND, Status.FAIL)],
)
def test_pitr_lag_limit(lag, status):
    found = check("pitr", facts(instance=healthy_instance(LatestRestorableTime=NOW - lag)))
    assert found.status is status


def test_a_lagging_pitr_names_its_lag_and_limit():
    latest = NOW - timedelta(minutes=40)
    found = check("pitr", facts(instance=healthy_instance(LatestRestorableTime=latest)))
    assert found.detail == (
        "latest restorable time 2026-12-01T11:20:00Z is 40 min behind (limit 15 min): "
        "transaction logs are not archived"
    )


def test_the_pitr_limit_is_the_rpo_when_that_is_shorter():
    exp = Expectations(rpo=timedelta(minutes=10))
    at = check("pitr", facts(instance=healthy_instance(
        LatestRestorableTime=NOW - timedelta(minutes=10))), exp)
    past = check("pitr", facts(instance=healthy_instance(
        LatestRestorableTime=NOW - timedelta(minutes=10) - SECOND)), exp)
    assert (at.status, past.status) == (Status.PASS, Status.FAIL)
    assert "(limit 10 min)" in past.detail


def test_a_restorable_time_in_another_zone_is_the_same_instant():
    latest = (NOW - PITR_MAX_LAG).astimezone(timezone(timedelta(hours=-5)))
    assert check("pitr", facts(instance=healthy_instance(LatestRestorableTime=latest))).status \
        is Status.PASS


def test_a_restorable_time_ahead_of_the_clock_passes_as_zero_lag():
    found = check("pitr", facts(instance=healthy_instance(
        LatestRestorableTime=NOW + timedelta(minutes=2))))
    assert (found.status, found.detail) == (Status.PASS, "latest restorable time 0.0 min behind")
    behind = check("pitr", facts(instance=healthy_instance(
        LatestRestorableTime=NOW - timedelta(minutes=4, seconds=30))))
    assert behind.detail == "latest restorable time 4.5 min behind"


@pytest.mark.parametrize("value", [None, "2026-12-01T11:59:00Z"])
def test_no_restorable_time_fails(value):
    found = check("pitr", facts(instance=healthy_instance(LatestRestorableTime=value)))
    assert found.status is Status.FAIL
    assert "point-in-time recovery is not working" in found.detail


# -- deletion protection and encryption -------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "on", "status", "detail"),
    [
        (True, True, Status.PASS, "on"),
        (True, False, Status.FAIL, "deletion protection is off"),
        (True, None, Status.FAIL, "deletion protection is off"),
        (False, False, Status.PASS, "off (not required by the stack)"),
        (False, True, Status.PASS, "on"),
    ],
)
def test_deletion_protection_is_required_only_where_wanted(wanted, on, status, detail):
    found = check("deletion_protection", facts(instance=healthy_instance(DeletionProtection=on)),
                  Expectations(deletion_protection=wanted))
    assert (found.status, found.detail) == (status, detail)


@pytest.mark.parametrize(("value", "status"), [(True, Status.PASS), (False, Status.FAIL),
                                               (None, Status.FAIL)])
def test_unencrypted_storage_fails(value, status):
    found = check("encryption", facts(instance=healthy_instance(StorageEncrypted=value)))
    assert found.status is status
    assert ("not encrypted" in found.detail) is (status is Status.FAIL)


# -- backup replication: the RPO on the DR region's copy --------------------------------------


@pytest.mark.parametrize(
    ("age", "status"),
    [(RPO - SECOND, Status.PASS), (RPO, Status.PASS), (RPO + SECOND, Status.FAIL)],
)
def test_replicated_backups_older_than_the_rpo_fail(age, status):
    found = check("backup_replication", facts(backups=[replicated(NOW - age)]))
    assert found.status is status


def test_a_stale_replica_names_its_age_and_the_rpo():
    found = check("backup_replication",
                  facts(backups=[replicated(NOW - timedelta(hours=30))]))
    assert found.detail == (
        "newest replicated restorable time in us-west-2 is 2026-11-30T06:00:00Z, 30.0 h old "
        "(RPO 24 h)"
    )


def test_the_newest_of_several_replicated_backups_counts_whatever_their_order():
    fresh, stale = NOW - timedelta(hours=1), NOW - timedelta(days=3)
    for order in ([replicated(stale), replicated(fresh)], [replicated(fresh), replicated(stale)]):
        found = check("backup_replication", facts(backups=[replicated(None), *order]))
        assert (found.status, found.detail) == (
            Status.PASS, "replicated to us-west-2, restorable to 2026-12-01T11:00:00Z")


def test_replication_failures_say_what_is_missing():
    nowhere = check("backup_replication", no_dr_region())
    assert nowhere.status is Status.FAIL and "--dr-region" in nowhere.detail
    empty = check("backup_replication", facts(backups=[]))
    assert (empty.status, empty.detail) == (Status.FAIL,
                                            "no replicated automated backups in us-west-2")
    unrestorable = check("backup_replication",
                         facts(backups=[replicated(None), {"RestoreWindow": None}]))
    assert (unrestorable.status, unrestorable.detail) == (
        Status.FAIL, "replicated backups in us-west-2 have no restorable time yet")


def test_replication_not_wanted_is_skipped_even_when_absent():
    found = check("backup_replication", facts(backups=[]), Expectations(replication=False))
    assert found.status is Status.SKIP


# -- the restore drill: at least quarterly ----------------------------------------------------


@pytest.mark.parametrize(
    ("age", "status"),
    [(DRILL_MAX_AGE - SECOND, Status.PASS), (DRILL_MAX_AGE, Status.PASS),
     (DRILL_MAX_AGE + SECOND, Status.FAIL)],
)
def test_the_newest_passing_drill_must_be_within_the_quarter(age, status):
    found = check("restore_drill", facts(drills=[Drill(NOW - age)]))
    assert found.status is status


def test_an_overdue_drill_names_its_day_environment_and_the_limit():
    found = check("restore_drill", facts(drills=[Drill(NOW - timedelta(days=100), "staging")]))
    assert found.detail == (
        "newest passing drill of prism-prod 2026-08-23 (staging), 100 days ago: older than 92 "
        "days, the quarterly drill is overdue"
    )


def test_only_passing_drills_count_and_the_newest_of_them_decides():
    old_pass = Drill(NOW - timedelta(days=200))
    new_fail = Drill(NOW - timedelta(days=1), result=Result.FAILED)
    recent_pass = Drill(NOW - timedelta(days=30), "staging", result="passed")
    assert check("restore_drill", facts(drills=[old_pass, new_fail])).status is Status.FAIL
    found = check("restore_drill", facts(drills=[old_pass, recent_pass, new_fail]))
    assert (found.status, found.detail) == (
        Status.PASS, "newest passing drill of prism-prod 2026-11-01 (staging), 30 days ago")


def test_no_passing_drill_at_all_fails():
    failing = [Drill(NOW - timedelta(days=1), result=Result.FAILED)]
    for drills in ([], failing):
        found = check("restore_drill", facts(drills=drills))
        assert found.status is Status.FAIL
        assert found.detail.startswith("no passing restore drill of prism-prod on record")


# -- the pre-migration snapshot ---------------------------------------------------------------

APPLIED = NOW - timedelta(hours=2)


@pytest.mark.parametrize(
    ("created", "status"),
    [(APPLIED - SECOND, Status.FAIL), (APPLIED, Status.PASS), (APPLIED + SECOND, Status.PASS)],
)
def test_a_pre_migration_snapshot_must_not_predate_the_migration(created, status):
    found = check("pre_migration_snapshot", facts(snapshots=[snap("premig", created=created)]),
                  last=LastMigration(applied_at=APPLIED))
    assert found.status is status


def test_only_available_manual_pre_migration_snapshots_count():
    late = APPLIED + timedelta(minutes=1)
    not_ready = [
        snap("rds:auto", created=late, snapshot_type="automated"),
        snap("creating", created=late, status="creating"),
        Snapshot("untagged", "prism-prod", "manual", "available", late, None, {}),
    ]
    ready = snap("ready", created=APPLIED - timedelta(days=1))
    found = check("pre_migration_snapshot", facts(snapshots=[ready, *not_ready]),
                  last=LastMigration(applied_at=APPLIED))
    assert found.status is Status.FAIL
    assert found.detail.endswith("newest is ready")
    none = check("pre_migration_snapshot", facts(snapshots=not_ready),
                 last=LastMigration(applied_at=APPLIED))
    assert none.status is Status.FAIL and none.detail.endswith("there is none")


def test_a_migration_id_must_match_an_available_snapshot_tag():
    tagged = [
        snap("older-0042", created=NOW - timedelta(days=2), tags={"prism:migration": "0042"}),
        snap("newer-0042", created=NOW - timedelta(days=1), tags={"prism:migration": "0042"}),
        snap("auto-0043", created=NOW, snapshot_type="automated",
             tags={"prism:migration": "0043"}),
    ]
    found = check("pre_migration_snapshot", facts(snapshots=tagged),
                  last=LastMigration(migration_id="0042"))
    assert (found.status, found.detail) == (
        Status.PASS, "newer-0042 (migration 0042, from the --last-migration)")
    missing = check("pre_migration_snapshot", facts(snapshots=tagged),
                    last=LastMigration(migration_id="0043"))
    assert (missing.status, missing.detail) == (
        Status.FAIL, "no available pre-migration snapshot tagged prism:migration=0043 (the last "
        "migration, from the --last-migration)")


def test_without_last_migration_the_check_is_skipped_and_shows_the_newest():
    found = check("pre_migration_snapshot",
                  facts(snapshots=[snap("a", created=NOW - timedelta(days=2)),
                                   snap("b", created=NOW - timedelta(days=1))]))
    unknown = "no migration known (no --last-migration, Prism-Migration trailer or snapshot record)"
    assert (found.status, found.detail) == (
        Status.SKIP, f"{unknown}; newest: b (2026-11-30T12:00:00Z)")
    empty = check("pre_migration_snapshot", facts())
    assert empty.detail == f"{unknown}; none yet"


# -- the warnings: untagged snapshots, expired drill resources --------------------------------


def test_manual_snapshots_without_an_expiry_are_listed_and_automated_ones_are_not():
    snaps = [
        Snapshot("mine", "prism-prod", "manual", "available", NOW, None, {}),
        Snapshot("rds:auto", "prism-prod", "automated", "available", NOW, None, {}),
        snap("kept", created=NOW, tags={"prism:retain-until": "2027-01-01T00:00:00Z"}),
    ]
    found = check("untagged_snapshots", facts(snapshots=snaps))
    assert (found.status, found.items) == (Status.WARN, ["mine"])
    assert found.detail.startswith("1 manual snapshot(s) without a readable prism:retain-until")
    clean = check("untagged_snapshots", facts(snapshots=snaps[1:]))
    assert (clean.status, clean.items) == (Status.PASS, [])


@pytest.mark.parametrize(
    ("expires", "listed"),
    [(NOW - SECOND, True), (NOW, False), (NOW + SECOND, False)],
)
def test_a_drill_resource_is_expired_only_once_its_time_has_passed(expires, listed):
    arn = "arn:aws:rds:us-east-1:1:db:drill-1"
    tags = {"prism:expires-at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
    found = check("expired_drill_resources", facts(tagged=[(arn, tags)]))
    assert found.status is (Status.WARN if listed else Status.PASS)
    assert found.items == ([f"{arn} (expired {tags['prism:expires-at']})"] if listed else [])


def test_an_unreadable_expiry_is_not_reported_as_expired():
    found = check("expired_drill_resources",
                  facts(tagged=[("arn:x", {"prism:expires-at": "soon"}), ("arn:y", {})]))
    assert found.status is Status.PASS


def test_the_audit_fails_on_a_failure_only():
    warn = Check("w", Status.WARN, "")
    assert passed([Check("p", Status.PASS, ""), warn, Check("s", Status.SKIP, "")])
    assert not passed([warn, Check("f", Status.FAIL, "")])
    assert passed([])


def test_each_detail_says_what_was_found():
    bare = healthy_instance(StorageEncrypted=False, LatestRestorableTime=None)
    found = {c.name: c.detail for c in evaluate(
        facts(instance=bare, tagged=[("arn:x", {"prism:expires-at": "2026-11-30T00:00:00Z"})],
              snapshots=[Snapshot("mine", "prism-prod", "manual", "available", NOW, None, {})]),
        Expectations(replication=False), NOW)}
    assert found["encryption"] == "storage is not encrypted (and neither are its backups)"
    assert found["pitr"] == "no LatestRestorableTime: point-in-time recovery is not working"
    assert found["backup_replication"] == "not required by the stack"
    assert found["expired_drill_resources"] == (
        "1 resource(s) past prism:expires-at still exist: `prism-dr drill reap` removes them")
    assert found["untagged_snapshots"] == (
        "1 manual snapshot(s) without a readable prism:retain-until (an RFC 3339 UTC time): kept "
        "(and paid for) until someone deletes them")
    clean = {c.name: c.detail for c in evaluate(facts(), Expectations(), NOW)}
    assert clean["encryption"] == "storage and backups encrypted"
    assert clean["expired_drill_resources"] == "none"
    assert clean["untagged_snapshots"] == "every manual snapshot has an expiry"
    nowhere = check("backup_replication", no_dr_region())
    assert nowhere.detail == (
        "no DR region to check: the instance replicates its backups nowhere (set "
        "backupReplication in the stack, or pass --dr-region)")


def test_the_pitr_limit_is_shown_in_minutes():
    exp = Expectations(pitr_max_lag=timedelta(hours=1))
    found = check("pitr", facts(instance=healthy_instance(
        LatestRestorableTime=NOW - timedelta(hours=2))), exp)
    assert "is 120 min behind (limit 60 min)" in found.detail


def test_a_long_stale_replica_shows_its_age_in_hours():
    found = check("backup_replication", facts(backups=[replicated(NOW - timedelta(hours=200))]))
    assert ", 200.0 h old (RPO 24 h)" in found.detail


def test_the_newest_snapshot_of_a_migration_and_after_a_time_is_named():
    tagged = [snap(f"s{i}", created=NOW - timedelta(days=3 - i), tags={"prism:migration": "7"})
              for i in range(3)]
    by_id = check("pre_migration_snapshot", facts(snapshots=tagged),
                  last=LastMigration(migration_id="7"))
    assert (by_id.status, by_id.detail) == (
        Status.PASS, "s2 (migration 7, from the --last-migration)")
    by_time = check("pre_migration_snapshot", facts(snapshots=tagged),
                    last=LastMigration(applied_at=NOW - timedelta(days=2)))
    assert (by_time.status, by_time.detail) == (Status.PASS, "s2")


# -- whose drill, which expiry, which source ----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "counts"),
    [
        ("prism-prod point-in-time backups, restorable to 2026-11-30T00:00:00Z", True),
        ("rds:prism-prod-2026-11-30-03-00", True),
        ("snapshot prism-prod-premig-0042-add-index-20261130030000", True),
        ("prism-prod-replica point-in-time backups", False),
        ("rds:prism-prod-replica-2026-11-30-03-00", False),
        ("prism-prod@latest", True),
        ("prism-production point-in-time backups", False),
        ("old-prism-prod snapshot", False),
        ("dump.pgdump", False),
    ],
)
def test_only_a_drill_of_this_database_counts(source, counts):
    found = check("restore_drill", facts(drills=[Drill(NOW - timedelta(days=1),
                                                       backup_source=source)]))
    assert found.status is (Status.PASS if counts else Status.FAIL)
    if not counts:
        assert found.detail.endswith("; 1 record(s) of other backups do not count")


def test_a_manual_snapshot_with_an_unreadable_expiry_is_listed_with_it():
    snaps = [snap("odd", created=NOW, tags={"prism:retain-until": "next month"})]
    found = check("untagged_snapshots", facts(snapshots=snaps))
    assert (found.status, found.items) == (
        Status.WARN, ["odd (unreadable prism:retain-until: 'next month')"])


def test_a_source_that_cannot_be_read_fails_only_the_checks_that_need_it():
    unread = replace(facts(), unreadable={"drill records": "the drill record directory is gone",
                                          "tagging API": "AWS refused"})
    checks = {c.name: c for c in evaluate(unread, Expectations(), NOW)}
    assert (checks["restore_drill"].status, checks["restore_drill"].detail) == (
        Status.FAIL, "the drill record directory is gone")
    assert (checks["expired_drill_resources"].status,
            checks["expired_drill_resources"].detail) == (Status.FAIL, "AWS refused")
    assert {n for n, c in checks.items() if c.status is Status.FAIL} == {
        "restore_drill", "expired_drill_resources"}


def test_records_of_other_backups_are_counted_apart():
    own_failed = Drill(NOW - timedelta(days=1), result=Result.FAILED)
    other = Drill(NOW - timedelta(days=1), backup_source="prism-staging point-in-time backups")
    found = check("restore_drill", facts(drills=[own_failed, other]))
    assert found.detail == ("no passing restore drill of prism-prod on record (spec §6: "
                            "quarterly); 1 record(s) of other backups do not count")


def test_automated_snapshots_listed_first_do_not_hide_the_manual_ones():
    snaps = [Snapshot("rds:auto", "prism-prod", "automated", "available", NOW, None, {}),
             Snapshot("mine", "prism-prod", "manual", "available", NOW, None, {})]
    assert check("untagged_snapshots", facts(snapshots=snaps)).items == ["mine"]
