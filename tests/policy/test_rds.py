"""RDS policies on the instance the stacks declare, and on that instance with one property
changed; the replication policy on the stack's instance and replication resources."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE

from tests.policy.conftest import DROP, POLICIES, changed, check, check_stack

DB = "aws:rds/instance:Instance"
REPLICATION = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
PROD_CONFIG = {"environment": "prod", "minRetentionDays": 7, "prodMinRetentionDays": 30}


@pytest.fixture(scope="module")
def prod_db(prod_declared: dict) -> dict[str, Any]:
    return prod_declared[(DB, "database-instance")]


@pytest.fixture(scope="module")
def staging_db(staging_declared: dict) -> dict[str, Any]:
    return staging_declared[(DB, "database-instance")]


RESOURCE_POLICIES = [
    "rds-backup-retention",
    "rds-backup-window",
    "rds-storage-encrypted",
    "rds-not-public",
    "rds-copy-tags-to-snapshot",
    "rds-storage-headroom",
    "rds-prod-deletion-protection",
    "rds-prod-final-snapshot",
    "rds-prod-keep-automated-backups",
    "rds-prod-multi-az",
]


@pytest.mark.parametrize("policy", RESOURCE_POLICIES)
def test_the_declared_instances_pass(policy: str, prod_db: dict, staging_db: dict) -> None:
    assert check(policy, DB, prod_db, config=PROD_CONFIG, stack="prod") == []
    assert check(policy, DB, staging_db, stack="staging") == []


def test_retention_floor_7_and_30_on_prod(prod_db: dict, staging_db: dict) -> None:
    assert (
        check(
            "rds-backup-retention",
            DB,
            changed(staging_db, backupRetentionPeriod=7),
            stack="staging",
        )
        == []
    )
    [msg] = check(
        "rds-backup-retention", DB, changed(staging_db, backupRetentionPeriod=6), stack="staging"
    )
    assert "is 6 days; at least 7" in msg
    [msg] = check(
        "rds-backup-retention", DB, changed(prod_db, backupRetentionPeriod=29), config=PROD_CONFIG
    )
    assert "is 29 days; at least 30 required on prod" in msg
    [msg] = check("rds-backup-retention", DB, changed(prod_db, backupRetentionPeriod=3))
    assert "is 3 days" in msg
    [msg] = check(
        "rds-backup-retention", DB, changed(staging_db, backupRetentionPeriod=DROP), stack="staging"
    )
    assert "not set (RDS keeps 1 day)" in msg


def test_retention_floor_comes_from_config(staging_db: dict) -> None:
    strict = {"minRetentionDays": 14}
    [msg] = check("rds-backup-retention", DB, staging_db, config=strict, stack="staging")
    assert "at least 14" in msg
    # Numbers arrive from the engine's config as JSON numbers (floats).
    assert (
        check(
            "rds-backup-retention",
            DB,
            staging_db,
            config={"minRetentionDays": 7.0},
            stack="staging",
        )
        == []
    )


def test_prod_rules_follow_config_tag_or_stack_name(staging_db: dict) -> None:
    seven = changed(staging_db, backupRetentionPeriod=7)
    # config says prod
    assert check("rds-backup-retention", DB, seven, config={"environment": "prod"}, stack="staging")
    # the resource's tag says prod although the config file was forgotten
    tagged = changed(seven, tags={**seven["tags"], "prism:environment": "prod"})
    assert check("rds-backup-retention", DB, tagged, stack="staging")
    # the stack is called prod
    assert check("rds-backup-retention", DB, seven, stack="prod")
    # a staging config cannot relax a prod-tagged resource
    assert check("rds-backup-retention", DB, tagged, config={"environment": "staging"}, stack="x")


def test_unknown_values_are_not_judged(prod_db: dict) -> None:
    props = changed(prod_db, backupRetentionPeriod=UNKNOWN_NUMBER_VALUE)
    assert check("rds-backup-retention", DB, props) == []
    props = changed(prod_db, maxAllocatedStorage=UNKNOWN_NUMBER_VALUE)
    assert check("rds-storage-headroom", DB, props) == []


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (DROP, "random 30-minute window"),
        ("3am", "is not hh24:mi-hh24:mi"),
        ("03:00-03:15", "lasts 15 minutes"),
        ("24:00-00:30", "is not hh24:mi-hh24:mi"),
    ],
)
def test_backup_window_fails(prod_db: dict, window: Any, expected: str) -> None:
    [msg] = check("rds-backup-window", DB, changed(prod_db, backupWindow=window))
    assert expected in msg


def test_backup_window_across_midnight_passes(prod_db: dict) -> None:
    assert check("rds-backup-window", DB, changed(prod_db, backupWindow="23:45-00:15")) == []


@pytest.mark.parametrize("value", [False, DROP])
def test_storage_not_encrypted_fails(prod_db: dict, value: Any) -> None:
    [msg] = check("rds-storage-encrypted", DB, changed(prod_db, storageEncrypted=value))
    assert "storageEncrypted is not true" in msg


def test_public_instance_fails(prod_db: dict) -> None:
    [msg] = check("rds-not-public", DB, changed(prod_db, publiclyAccessible=True))
    assert "public address" in msg
    assert check("rds-not-public", DB, changed(prod_db, publiclyAccessible=DROP)) == []


@pytest.mark.parametrize("value", [False, DROP])
def test_tags_not_copied_fails(prod_db: dict, value: Any) -> None:
    [msg] = check("rds-copy-tags-to-snapshot", DB, changed(prod_db, copyTagsToSnapshot=value))
    assert "copyTagsToSnapshot is not true" in msg


def test_storage_headroom(prod_db: dict) -> None:
    fifty = changed(prod_db, allocatedStorage=50)
    assert check("rds-storage-headroom", DB, changed(fifty, maxAllocatedStorage=55)) == []
    [msg] = check("rds-storage-headroom", DB, changed(fifty, maxAllocatedStorage=54))
    assert "54 GiB is below 1.1 x allocatedStorage (50 GiB)" in msg
    [msg] = check("rds-storage-headroom", DB, changed(fifty, maxAllocatedStorage=DROP))
    assert "autoscaling is off" in msg
    [msg] = check(
        "rds-storage-headroom",
        DB,
        changed(fifty, maxAllocatedStorage=60),
        config={"storageHeadroom": 2},
    )
    assert "below 2.0 x" in msg


def test_prod_deletion_protection(prod_db: dict, staging_db: dict) -> None:
    [msg] = check("rds-prod-deletion-protection", DB, changed(prod_db, deletionProtection=False))
    assert "deletionProtection is not true on prod" in msg
    assert check("rds-prod-deletion-protection", DB, changed(prod_db, deletionProtection=DROP))
    assert staging_db["deletionProtection"] is False
    assert check("rds-prod-deletion-protection", DB, staging_db, stack="staging") == []


def test_prod_final_snapshot(prod_db: dict, staging_db: dict) -> None:
    # The declared identifier is computed (a random suffix): unknown in a preview, and fine.
    assert prod_db["finalSnapshotIdentifier"] == UNKNOWN_STRING_VALUE
    [msg] = check("rds-prod-final-snapshot", DB, changed(prod_db, skipFinalSnapshot=True))
    assert "would leave no snapshot" in msg
    [msg] = check("rds-prod-final-snapshot", DB, changed(prod_db, finalSnapshotIdentifier=DROP))
    assert "finalSnapshotIdentifier is not set" in msg
    skipping = changed(staging_db, skipFinalSnapshot=True)
    assert check("rds-prod-final-snapshot", DB, skipping, stack="staging") == []


@pytest.mark.parametrize("value", [True, DROP])
def test_prod_automated_backups_deleted_with_instance_fails(prod_db: dict, value: Any) -> None:
    [msg] = check(
        "rds-prod-keep-automated-backups", DB, changed(prod_db, deleteAutomatedBackups=value)
    )
    assert "would delete its automated backups" in msg


def test_multi_az_is_advisory(prod_db: dict) -> None:
    assert POLICIES["rds-prod-multi-az"].enforcement_level == EnforcementLevel.ADVISORY
    [msg] = check("rds-prod-multi-az", DB, changed(prod_db, multiAz=False))
    assert "failover" in msg
    for name in RESOURCE_POLICIES:
        if name != "rds-prod-multi-az":
            assert POLICIES[name].enforcement_level == EnforcementLevel.MANDATORY, name


# --- replication (a stack policy) ---------------------------------------------------------


@pytest.fixture(scope="module")
def prod_replication(prod_declared: dict) -> dict[str, Any]:
    return prod_declared[(REPLICATION, "database-backup-replication")]


def test_declared_replication_passes_linked_by_dependency(
    prod_db: dict, prod_replication: dict
) -> None:
    # In a preview the source ARN is unknown; the engine's property dependency links them.
    assert prod_replication["sourceDbInstanceArn"] == UNKNOWN_STRING_VALUE
    resources = [
        (DB, "database-instance", prod_db),
        (REPLICATION, "rep", prod_replication, {"sourceDbInstanceArn": ["database-instance"]}),
    ]
    assert check_stack("rds-prod-backup-replication", resources, config=PROD_CONFIG) == []


def test_prod_without_replication_fails(prod_db: dict) -> None:
    [(where, msg)] = check_stack(
        "rds-prod-backup-replication", [(DB, "database-instance", prod_db)]
    )
    assert where is not None and where.endswith("::database-instance")
    assert "region outage" in msg


def test_staging_needs_no_replication(staging_db: dict) -> None:
    resources = [(DB, "database-instance", staging_db)]
    assert check_stack("rds-prod-backup-replication", resources, stack="staging") == []


def test_replication_of_another_instance_does_not_count(
    prod_db: dict, prod_replication: dict
) -> None:
    arn = "arn:aws:rds:us-east-1:123456789012:db:prism-prod"
    other = changed(
        prod_replication, sourceDbInstanceArn="arn:aws:rds:us-east-1:123456789012:db:other"
    )
    resources = [(DB, "database-instance", changed(prod_db, arn=arn)), (REPLICATION, "rep", other)]
    assert len(check_stack("rds-prod-backup-replication", resources)) == 1
    same = changed(prod_replication, sourceDbInstanceArn=arn)
    resources = [(DB, "database-instance", changed(prod_db, arn=arn)), (REPLICATION, "rep", same)]
    assert check_stack("rds-prod-backup-replication", resources) == []


def test_replication_too_short_or_without_key_fails(prod_db: dict, prod_replication: dict) -> None:
    link = {"sourceDbInstanceArn": ["database-instance"]}
    short = changed(prod_replication, retentionPeriod=7)
    [(_, msg)] = check_stack(
        "rds-prod-backup-replication",
        [(DB, "database-instance", prod_db), (REPLICATION, "rep", short, link)],
    )
    assert "kept 7 days; at least 30" in msg
    default = changed(prod_replication, retentionPeriod=DROP)
    [(_, msg)] = check_stack(
        "rds-prod-backup-replication",
        [(DB, "database-instance", prod_db), (REPLICATION, "rep", default, link)],
    )
    assert "kept 7 days" in msg  # the API's default
    keyless = changed(prod_replication, kmsKeyId=DROP)
    [(where, msg)] = check_stack(
        "rds-prod-backup-replication",
        [(DB, "database-instance", prod_db), (REPLICATION, "rep", keyless, link)],
    )
    assert where is not None and where.endswith("::rep") and "kmsKeyId" in msg


# --- each finding in full, each rule's edges ----------------------------------------------


@pytest.mark.parametrize(
    ("policy", "stack", "values", "message"),
    [
        ("rds-backup-retention", "staging", {"backupRetentionPeriod": 6},
         "backupRetentionPeriod is 6 days; at least 7 required"),
        ("rds-backup-retention", "prod", {"backupRetentionPeriod": DROP},
         "backupRetentionPeriod is not set (RDS keeps 1 day); at least 30 days required on prod"),
        ("rds-backup-window", "prod", {"backupWindow": DROP},
         "backupWindow is not set: RDS picks a random 30-minute window each day"),
        ("rds-backup-window", "prod", {"backupWindow": "3am"},
         "backupWindow '3am' is not hh24:mi-hh24:mi in UTC"),
        ("rds-backup-window", "prod", {"backupWindow": "03:00-03:29"},
         "backupWindow 03:00-03:29 lasts 29 minutes; RDS needs at least 30"),
        ("rds-backup-window", "prod", {"backupWindow": "23:50-00:10"},
         "backupWindow 23:50-00:10 lasts 20 minutes; RDS needs at least 30"),
        ("rds-storage-encrypted", "prod", {"storageEncrypted": False},
         "storageEncrypted is not true: the database and its backups are unencrypted"),
        ("rds-not-public", "prod", {"publiclyAccessible": True},
         "publiclyAccessible is true: the instance gets a public address"),
        ("rds-copy-tags-to-snapshot", "prod", {"copyTagsToSnapshot": False},
         "copyTagsToSnapshot is not true: snapshots lose the tags that say whose they are "
         "(prism:stack) and when they may go"),
        ("rds-storage-headroom", "prod", {"maxAllocatedStorage": DROP},
         "maxAllocatedStorage is not set: storage autoscaling is off and a full disk stops the "
         "database"),
        ("rds-storage-headroom", "prod", {"allocatedStorage": 50, "maxAllocatedStorage": 54},
         "maxAllocatedStorage 54 GiB is below 1.1 x allocatedStorage (50 GiB); RDS refuses it "
         "or cannot grow"),
        ("rds-prod-deletion-protection", "prod", {"deletionProtection": False},
         "deletionProtection is not true on prod: one API call could delete the database"),
        ("rds-prod-final-snapshot", "prod", {"skipFinalSnapshot": True},
         "skipFinalSnapshot is true on prod: deleting the instance would leave no snapshot"),
        ("rds-prod-final-snapshot", "prod", {"finalSnapshotIdentifier": DROP},
         "finalSnapshotIdentifier is not set on prod: the provider cannot take the final "
         "snapshot, so the delete fails or leaves none"),
        ("rds-prod-keep-automated-backups", "prod", {"deleteAutomatedBackups": True},
         "deleteAutomatedBackups is not false on prod: deleting the instance would delete its "
         "automated backups and the point-in-time window with it"),
        ("rds-prod-multi-az", "prod", {"multiAz": False},
         "multiAz is not true on prod: an AZ outage means a restore instead of a failover"),
    ],
)
def test_each_finding_names_the_property_the_limit_and_the_risk(
    policy: str, stack: str, values: dict, message: str, prod_db: dict, staging_db: dict
) -> None:
    db = prod_db if stack == "prod" else staging_db
    config = PROD_CONFIG if stack == "prod" else None
    assert check(policy, DB, changed(db, **values), config=config, stack=stack) == [message]


def test_a_backup_window_of_exactly_thirty_minutes_passes(prod_db: dict) -> None:
    for window in ("03:00-03:30", "23:50-00:20"):
        assert check("rds-backup-window", DB, changed(prod_db, backupWindow=window)) == []


@pytest.mark.parametrize(
    ("policy", "values"),
    [
        ("rds-backup-window", {"backupWindow": UNKNOWN_STRING_VALUE}),
        ("rds-storage-encrypted", {"storageEncrypted": UNKNOWN_BOOLEAN_VALUE}),
        ("rds-copy-tags-to-snapshot", {"copyTagsToSnapshot": UNKNOWN_BOOLEAN_VALUE}),
        ("rds-storage-headroom", {"allocatedStorage": UNKNOWN_NUMBER_VALUE,
                                  "maxAllocatedStorage": 10}),
        ("rds-prod-deletion-protection", {"deletionProtection": UNKNOWN_BOOLEAN_VALUE}),
        ("rds-prod-final-snapshot", {"skipFinalSnapshot": UNKNOWN_BOOLEAN_VALUE,
                                     "finalSnapshotIdentifier": DROP}),
        ("rds-prod-keep-automated-backups", {"deleteAutomatedBackups": UNKNOWN_BOOLEAN_VALUE}),
        ("rds-prod-multi-az", {"multiAz": UNKNOWN_BOOLEAN_VALUE}),
    ],
)
def test_a_value_only_the_update_knows_is_not_judged(policy: str, values: dict,
                                                      prod_db: dict) -> None:
    assert check(policy, DB, changed(prod_db, **values), config=PROD_CONFIG) == []


def test_a_read_replica_follows_its_own_backup_rules(staging_db: dict, prod_db: dict) -> None:
    replica = changed(staging_db, replicateSourceDb="prism-staging", backupRetentionPeriod=0,
                      backupWindow=DROP)
    assert check("rds-backup-retention", DB, replica, stack="staging") == []
    assert check("rds-backup-window", DB, replica, stack="staging") == []
    prod_replica = changed(prod_db, replicateSourceDb="prism-prod")
    resources = [(DB, "replica", prod_replica)]
    assert check_stack("rds-prod-backup-replication", resources, config=PROD_CONFIG) == []


def test_a_drill_database_with_a_bad_window_is_not_judged(staging_db: dict) -> None:
    drill = changed(staging_db, tags={**staging_db["tags"], "prism:drill": "true"},
                    backupWindow="3am")
    assert check("rds-backup-window", DB, drill, stack="drill-20261202t010000z") == []


ARN = "arn:aws:rds:us-east-1:123456789012:db:prism-prod"


def test_replication_findings_in_full(prod_db: dict, prod_replication: dict) -> None:
    link = {"sourceDbInstanceArn": ["database-instance"]}
    assert check_stack("rds-prod-backup-replication", [(DB, "database-instance", prod_db)]) == [
        (f"urn:pulumi:prod::prism-infra::{DB}::database-instance",
         "no aws:rds/instanceAutomatedBackupsReplication for this prod instance: a region "
         "outage would take its backups with it")
    ]
    bad = changed(prod_replication, retentionPeriod=29, kmsKeyId=DROP)
    found = check_stack("rds-prod-backup-replication",
                        [(DB, "database-instance", prod_db), (REPLICATION, "rep", bad, link)])
    assert [message for _, message in found] == [
        "the replicated backups are kept 29 days; at least 30 required on prod",
        "kmsKeyId is not set: RDS refuses to replicate an encrypted instance's backups without "
        "a key in the destination region",
    ]
    enough = changed(prod_replication, retentionPeriod=30)
    assert check_stack("rds-prod-backup-replication",
                       [(DB, "database-instance", prod_db),
                        (REPLICATION, "rep", enough, link)]) == []


def test_a_replication_period_only_the_update_knows_is_not_judged(
    prod_db: dict, prod_replication: dict
) -> None:
    unknown = changed(prod_replication, retentionPeriod=UNKNOWN_NUMBER_VALUE)
    resources = [(DB, "database-instance", prod_db),
                 (REPLICATION, "rep", unknown, {"sourceDbInstanceArn": ["database-instance"]})]
    assert check_stack("rds-prod-backup-replication", resources, config=PROD_CONFIG) == []


@pytest.mark.parametrize(
    ("instance_arn", "source"),
    [(UNKNOWN_STRING_VALUE, ARN), (ARN, UNKNOWN_STRING_VALUE)],
    ids=["new-instance", "source-computed"],
)
def test_a_replication_that_cannot_be_told_apart_is_paired(
    prod_db: dict, prod_replication: dict, instance_arn: str, source: str
) -> None:
    # In a preview either side may be unknown, with no dependency recorded: not a mismatch.
    resources = [(DB, "database-instance", changed(prod_db, arn=instance_arn)),
                 (REPLICATION, "rep", changed(prod_replication, sourceDbInstanceArn=source))]
    assert check_stack("rds-prod-backup-replication", resources, config=PROD_CONFIG) == []


def test_each_prod_instance_gets_its_own_linked_replication(
    prod_db: dict, prod_replication: dict
) -> None:
    # a: unencrypted, its replication has no key (fine); b: encrypted, its replication has
    # one. Listed so that pairing by position would give b the keyless one.
    a = changed(prod_db, storageEncrypted=False, arn=UNKNOWN_STRING_VALUE)
    b = changed(prod_db, arn=UNKNOWN_STRING_VALUE)
    rep_a = changed(prod_replication, kmsKeyId=DROP, sourceDbInstanceArn=UNKNOWN_STRING_VALUE)
    rep_b = changed(prod_replication, sourceDbInstanceArn=UNKNOWN_STRING_VALUE)
    linked = [(DB, "b", b), (DB, "a", a),
              (REPLICATION, "rep-a", rep_a, {"sourceDbInstanceArn": ["a"]}),
              (REPLICATION, "rep-b", rep_b, {"sourceDbInstanceArn": ["b"]})]
    assert check_stack("rds-prod-backup-replication", linked, config=PROD_CONFIG) == []
    # Only a is linked; b takes the replication nobody claimed, not a's.
    half = [(DB, "a", a), (DB, "b", b),
            (REPLICATION, "rep-a", rep_a, {"sourceDbInstanceArn": ["a"]}),
            (REPLICATION, "rep-b", rep_b)]
    assert check_stack("rds-prod-backup-replication", half, config=PROD_CONFIG) == []


def test_every_prod_instance_is_reported_not_just_the_first(
    prod_db: dict, prod_replication: dict
) -> None:
    short = changed(prod_replication, retentionPeriod=7)
    resources = [(DB, "a", prod_db), (DB, "b", prod_db),
                 (REPLICATION, "rep-b", short, {"sourceDbInstanceArn": ["b"]})]
    found = check_stack("rds-prod-backup-replication", resources, config=PROD_CONFIG)
    assert [(where.rsplit("::", 1)[-1], message.split(":")[0]) for where, message in found] == [
        ("a", "no aws"), ("rep-b", "the replicated backups are kept 7 days; at least 30 "
                                   "required on prod"),
    ]


def test_headroom_is_compared_before_rounding_to_whole_gib(prod_db: dict) -> None:
    # 1.1 x 44 GiB is 48.4 GiB: a 48 GiB ceiling is short, 49 is enough.
    short = changed(prod_db, allocatedStorage=44, maxAllocatedStorage=48)
    assert check("rds-storage-headroom", DB, short)
    assert check("rds-storage-headroom", DB, changed(short, maxAllocatedStorage=49)) == []
