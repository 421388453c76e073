"""Drill policies: every taggable drill resource carries prism:drill and prism:expires-at, and
nothing in a drill resists deletion. The resources are the stacks' own, moved to a drill."""

from __future__ import annotations

from typing import Any

import pytest

from tests.policy.conftest import DROP, changed, check

DB = "aws:rds/instance:Instance"
EC2 = "aws:ec2/instance:Instance"
PARAM = "aws:ssm/parameter:Parameter"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
DRILL_STACK = "drill-20261202t010000z"
DRILL_TAGS = {"prism:drill": "true", "prism:expires-at": "2026-12-02T07:00:00Z"}


@pytest.fixture(scope="module")
def db(staging_declared: dict) -> dict[str, Any]:
    return staging_declared[(DB, "database-instance")]


def _tagged(props: dict[str, Any], **extra: str) -> dict[str, Any]:
    return changed(props, tags={**props.get("tags", {}), **DRILL_TAGS, **extra})


def test_tagged_drill_resources_pass(db: dict, staging_declared: dict) -> None:
    assert check("drill-resources-tagged", DB, _tagged(db), stack=DRILL_STACK) == []
    param = staging_declared[(PARAM, "runtime-secrets-db-host")]
    assert check("drill-resources-tagged", PARAM, _tagged(param), stack=DRILL_STACK) == []


def test_untagged_drill_resources_fail(db: dict, staging_declared: dict) -> None:
    [msg] = check("drill-resources-tagged", DB, db, stack=DRILL_STACK)
    assert "without prism:drill and prism:expires-at" in msg
    only_drill = changed(db, tags={**db["tags"], "prism:drill": "true"})
    [msg] = check("drill-resources-tagged", DB, only_drill, stack=DRILL_STACK)
    assert "without prism:expires-at" in msg
    param = staging_declared[(PARAM, "runtime-secrets-db-host")]
    assert check("drill-resources-tagged", PARAM, changed(param, tags={}), stack=DRILL_STACK)


def test_a_taggable_type_without_any_tags_fails(staging_declared: dict) -> None:
    untagged_sg = changed(
        staging_declared[("aws:ec2/securityGroup:SecurityGroup", "api-host-sg")], tags=None
    )
    untagged_sg.pop("tags")
    assert check(
        "drill-resources-tagged",
        "aws:ec2/securityGroup:SecurityGroup",
        untagged_sg,
        stack=DRILL_STACK,
    )


def test_untaggable_resources_are_not_asked_for_tags(staging_declared: dict) -> None:
    policy = staging_declared[(ROLE_POLICY, "api-host-read-parameters")]
    assert "tags" not in policy
    assert check("drill-resources-tagged", ROLE_POLICY, policy, stack=DRILL_STACK) == []


@pytest.mark.parametrize("expires", ["tomorrow", "2026-12-02T07:00:00", "1733100000"])
def test_unreadable_expiry_fails(db: dict, expires: str) -> None:
    [msg] = check(
        "drill-resources-tagged",
        DB,
        _tagged(db, **{"prism:expires-at": expires}),
        stack=DRILL_STACK,
    )
    assert "not an RFC 3339 time with a zone" in msg


def test_expiry_with_offset_passes(db: dict) -> None:
    props = _tagged(db, **{"prism:expires-at": "2026-12-02T08:00:00+01:00"})
    assert check("drill-resources-tagged", DB, props, stack=DRILL_STACK) == []


def test_a_drill_is_recognised_by_tag_or_config(db: dict) -> None:
    # Not a drill stack's name, but tagged as one (or the config says drill): checked.
    partial = changed(db, tags={**db["tags"], "prism:drill": "true"})
    assert check("drill-resources-tagged", DB, partial, stack="recovery-x")
    assert check("drill-resources-tagged", DB, db, stack="x", config={"environment": "drill"})
    # the stacks' own resources are not drill resources
    assert check("drill-resources-tagged", DB, db, stack="staging") == []


def test_drill_database_with_deletion_protection_fails(db: dict) -> None:
    props = _tagged(changed(db, deletionProtection=True))
    [msg] = check("drill-resources-deletable", DB, props, stack=DRILL_STACK)
    assert "teardown cannot delete it" in msg
    assert check("drill-resources-deletable", DB, _tagged(db), stack=DRILL_STACK) == []


def test_protected_or_termination_protected_drill_resources_fail(
    db: dict, staging_declared: dict
) -> None:
    [msg] = check("drill-resources-deletable", DB, _tagged(db), stack=DRILL_STACK, protect=True)
    assert "Pulumi protect" in msg
    host = _tagged(
        changed(staging_declared[(EC2, "api-host-instance")], disableApiTermination=True)
    )
    [msg] = check("drill-resources-deletable", EC2, host, stack=DRILL_STACK)
    assert "cannot terminate it" in msg


def test_prod_protection_is_not_a_drill_matter(prod_declared: dict) -> None:
    prod_db = prod_declared[(DB, "database-instance")]
    assert prod_db["deletionProtection"] is True
    assert check("drill-resources-deletable", DB, prod_db, stack="prod", protect=True) == []


def test_a_drill_database_may_run_without_backups(db: dict) -> None:
    # The drill's restored instance is torn down within hours (drills/aws/program.py: ephemeral).
    ephemeral = _tagged(changed(db, backupRetentionPeriod=0, backupWindow=DROP))
    assert check("rds-backup-retention", DB, ephemeral, stack=DRILL_STACK) == []
    assert check("rds-backup-window", DB, ephemeral, stack=DRILL_STACK) == []
    assert check("rds-backup-retention", DB, changed(db, backupRetentionPeriod=0), stack="staging")


# -- each finding says what is wrong and why it matters; the edges of each rule -------------


def test_each_finding_names_the_property_and_what_it_breaks(db: dict, staging_declared: dict):
    assert check("drill-resources-tagged", DB, db, stack=DRILL_STACK) == [
        "drill resource without prism:drill and prism:expires-at: the reaper and the audit "
        "cannot find it once the drill is gone"
    ]
    assert check("drill-resources-tagged", DB, _tagged(db, **{"prism:expires-at": "soon"}),
                 stack=DRILL_STACK) == [
        "prism:expires-at is 'soon', not an RFC 3339 time with a zone "
        "(e.g. 2026-12-02T06:00:00Z): the reaper cannot tell when it expires"
    ]
    protected = _tagged(changed(db, deletionProtection=True))
    assert check("drill-resources-deletable", DB, protected, stack=DRILL_STACK,
                 protect=True) == [
        "Pulumi protect is set on a drill resource: the drill's destroy would fail",
        "deletionProtection is true on a drill database: teardown cannot delete it",
    ]
    host = _tagged(changed(staging_declared[(EC2, "api-host-instance")],
                           disableApiTermination=True))
    assert check("drill-resources-deletable", EC2, host, stack=DRILL_STACK) == [
        "disableApiTermination is true on a drill host: teardown cannot terminate it"
    ]


def test_a_drill_host_that_may_be_terminated_passes(staging_declared: dict) -> None:
    host = staging_declared[(EC2, "api-host-instance")]
    for value in (False, DROP):
        props = _tagged(changed(host, disableApiTermination=value))
        assert check("drill-resources-deletable", EC2, props, stack=DRILL_STACK) == []


def test_an_expiry_that_is_not_text_fails(db: dict) -> None:
    # A number in a YAML tag map stays a number; the reaper reads the tag as text.
    [msg] = check("drill-resources-tagged", DB, _tagged(db, **{"prism:expires-at": 1733100000}),
                  stack=DRILL_STACK)
    assert msg.startswith("prism:expires-at is 1733100000, not an RFC 3339 time")


def test_any_other_tagged_resource_of_a_drill_is_checked_too() -> None:
    # Not in the list of types the drill stacks create, but it carries tags: a drill must be
    # able to find it as well.
    bucket = "aws:s3/bucketV2:BucketV2"
    assert check("drill-resources-tagged", bucket, {"tags": {"Name": "x"}}, stack=DRILL_STACK)
    assert check("drill-resources-tagged", bucket, {"tags": DRILL_TAGS}, stack=DRILL_STACK) == []
    assert check("drill-resources-tagged", bucket, {}, stack=DRILL_STACK) == []


def test_tags_or_an_expiry_only_the_update_knows_are_not_judged(db: dict) -> None:
    from pulumi_policy.proxy import UNKNOWN_OBJECT_VALUE, UNKNOWN_STRING_VALUE

    unknown_tags = changed(db, tags=UNKNOWN_OBJECT_VALUE)
    assert check("drill-resources-tagged", DB, unknown_tags, stack=DRILL_STACK) == []
    unknown_expiry = _tagged(db, **{"prism:expires-at": UNKNOWN_STRING_VALUE})
    assert check("drill-resources-tagged", DB, unknown_expiry, stack=DRILL_STACK) == []
