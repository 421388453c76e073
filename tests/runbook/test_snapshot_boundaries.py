"""Prune's decisions at their edges: what it must never delete, and the expiry to the second;
and the delete call's own check, which refuses the same snapshots again.

`prune_decisions` is pure (snapshots in, decisions out), so every guard is tested here on
snapshots built as DescribeDBSnapshots returns them, one property changed from a snapshot
prune would delete. Status values are those the RDS API documents for DBSnapshot.Status
(https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DBSnapshot.html).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from infra.errors import BadInput
from runbook.snapshot import Action, Snapshot, delete_snapshot, prune_decisions

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def snapshot(
    *,
    identifier: str = "prism-prod-premig-0042-20261001120000",
    snapshot_type: str = "manual",
    status: str = "available",
    purpose: str | None = "pre-migration",
    retain_until: str | None = "2026-11-01T12:00:00Z",
) -> Snapshot:
    """By default a snapshot prune deletes: manual, pre-migration, available, expired."""
    found = {"prism:migration": "0042"}
    if purpose is not None:
        found["prism:purpose"] = purpose
    if retain_until is not None:
        found["prism:retain-until"] = retain_until
    return Snapshot.from_aws({
        "DBSnapshotIdentifier": identifier,
        "DBInstanceIdentifier": "prism-prod",
        "SnapshotType": snapshot_type,
        "Status": status,
        "SnapshotCreateTime": NOW - timedelta(days=61),
        "DBSnapshotArn": f"arn:aws:rds:us-east-1:123456789012:snapshot:{identifier}",
        "TagList": [{"Key": k, "Value": v} for k, v in found.items()],
    })


def decide(snap: Snapshot, now: datetime = NOW):
    [decision] = prune_decisions([snap], now)
    assert decision.snapshot is snap
    return decision


def test_an_expired_available_pre_migration_snapshot_is_deleted():
    decision = decide(snapshot())
    assert decision.action is Action.DELETE
    assert decision.reason == "expired 2026-11-01T12:00:00Z"


@pytest.mark.parametrize("snapshot_type", ["automated", "awsbackup", "shared", "public"])
def test_a_snapshot_prune_did_not_take_is_never_deleted_whatever_its_tags(snapshot_type):
    # An automated snapshot copies the instance's tags (CopyTagsToSnapshot), so it can carry
    # prism:purpose=pre-migration and an expired retain-until: the type alone must save it.
    decision = decide(snapshot(snapshot_type=snapshot_type))
    assert decision.action is Action.KEEP
    assert decision.reason == f"{snapshot_type}: never pruned"


def test_an_rds_prefixed_snapshot_is_kept_even_when_listed_as_manual():
    decision = decide(snapshot(identifier="rds:prism-prod-2026-10-01-03-00"))
    assert decision.action is Action.KEEP
    assert decision.reason == "manual: never pruned"


def test_a_snapshot_without_a_type_is_kept_as_automated():
    decision = decide(snapshot(snapshot_type=""))
    assert (decision.action, decision.reason) == (Action.KEEP, "automated: never pruned")


@pytest.mark.parametrize("purpose", [None, "backup", "Pre-Migration", "pre-migration "])
def test_a_manual_snapshot_not_tagged_pre_migration_is_kept(purpose):
    # Someone's own manual snapshot, expired tag or not, is theirs to delete.
    decision = decide(snapshot(purpose=purpose))
    assert decision.action is Action.KEEP
    assert decision.reason == "not tagged prism:purpose=pre-migration"


def test_a_pre_migration_snapshot_without_an_expiry_is_kept():
    decision = decide(snapshot(retain_until=None))
    assert (decision.action, decision.reason) == (Action.KEEP, "no prism:retain-until tag")


@pytest.mark.parametrize("text", ["", "soon", "2026-11-01", "2026-11-01T12:00:00"])
def test_an_unreadable_or_zoneless_expiry_is_kept_and_shown(text):
    # A time without a zone could be any of 27 hours: no guess deletes a snapshot.
    decision = decide(snapshot(retain_until=text))
    assert decision.action is Action.KEEP
    assert decision.reason == f"unreadable prism:retain-until: {text!r}"


@pytest.mark.parametrize(
    ("offset", "action"),
    [
        (timedelta(seconds=1), Action.KEEP),  # just inside the retention
        (timedelta(0), Action.DELETE),  # the retention has run out
        (-timedelta(seconds=1), Action.DELETE),
    ],
)
def test_the_expiry_is_honoured_to_the_second(offset, action):
    until = NOW + offset
    decision = decide(snapshot(retain_until=until.strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert decision.action is action
    if action is Action.KEEP:
        assert decision.reason == "retained until 2026-12-01T12:00:01Z"


def test_an_expiry_in_another_zone_is_compared_as_the_same_instant():
    # 13:00+01:00 is 12:00 UTC: expired at NOW, one second later it would still be retained.
    assert decide(snapshot(retain_until="2026-12-01T13:00:00+01:00")).action is Action.DELETE
    kept = decide(snapshot(retain_until="2026-12-01T13:00:01+01:00"))
    assert (kept.action, kept.reason) == (Action.KEEP, "retained until 2026-12-01T12:00:01Z")


@pytest.mark.parametrize(
    "status", ["creating", "copying", "deleting", "failed", "pending", "upgrading"]
)
def test_an_expired_snapshot_that_is_not_available_is_kept_for_a_later_run(status):
    decision = decide(snapshot(status=status))
    assert decision.action is Action.KEEP
    assert decision.reason == f"expired but {status!r}; retry later"


def test_every_snapshot_gets_one_decision_in_the_order_given():
    mixed = [
        snapshot(identifier="a-expired"),
        snapshot(identifier="rds:b", snapshot_type="automated"),
        snapshot(identifier="c-retained", retain_until="2027-01-01T00:00:00Z"),
        snapshot(identifier="d-expired"),
    ]
    decisions = prune_decisions(mixed, NOW)
    assert [(d.snapshot.identifier, d.action) for d in decisions] == [
        ("a-expired", Action.DELETE),
        ("rds:b", Action.KEEP),
        ("c-retained", Action.KEEP),
        ("d-expired", Action.DELETE),
    ]
    assert prune_decisions([], NOW) == []


# -- the delete call checks again --------------------------------------------------------------


def rds_client() -> tuple[object, Stubber]:
    # A Stubber with nothing queued fails any call: "AWS was asked" is itself a failure here.
    client = boto3.client("rds", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


@pytest.mark.parametrize(
    "snap",
    [
        snapshot(snapshot_type="automated"),
        snapshot(identifier="rds:prism-prod-2026-10-01-03-00"),
        snapshot(purpose=None),
    ],
    ids=["automated", "rds-prefixed", "not-pre-migration"],
)
def test_the_delete_call_refuses_what_prune_must_never_delete(snap):
    client, stubber = rds_client()
    with pytest.raises(AssertionError, match=f"refusing to delete {snap.identifier}"):
        delete_snapshot(client, snap)
    stubber.assert_no_pending_responses()


def test_a_snapshot_already_gone_counts_as_deleted_and_other_refusals_do_not():
    # Error codes as DeleteDBSnapshot documents them (API_DeleteDBSnapshot.html, "Errors").
    client, stubber = rds_client()
    expected = {"DBSnapshotIdentifier": snapshot().identifier}
    stubber.add_client_error("delete_db_snapshot", "DBSnapshotNotFound", http_status_code=404,
                             expected_params=expected)
    stubber.add_client_error("delete_db_snapshot", "InvalidDBSnapshotState",
                             "snapshot is being copied", http_status_code=400,
                             expected_params=expected)
    delete_snapshot(client, snapshot())
    with pytest.raises(BadInput) as refused:
        delete_snapshot(client, snapshot())
    assert str(refused.value) == (
        f"deleting snapshot {snapshot().identifier}: AWS refused (InvalidDBSnapshotState): "
        "snapshot is being copied")
    stubber.assert_no_pending_responses()
