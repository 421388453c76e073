"""Taking the pre-migration snapshot, at its edges: the retention the spec requires (§5: at
least 30 days) to the day and the second, the name RDS accepts, the tags prune later trusts,
and how long the wait lasts. The create runs against the moto server; the rest is pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from infra.errors import BadInput
from runbook import snapshot as snap
from tests.runbook.conftest import make_db

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def _tags(rds, identifier: str) -> dict[str, str]:
    [found] = rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"]
    listed = rds.list_tags_for_resource(ResourceName=found["DBSnapshotArn"])["TagList"]
    return {t["Key"]: t["Value"] for t in listed}


def _create(rds, **overrides):
    settings = dict(
        db_instance="prism-prod", migration="0042_add_reports", created_by="ci-bot",
        stack="prod", now=NOW,
    )
    return snap.create_pre_migration_snapshot(rds, **{**settings, **overrides})


def test_the_spec_minimum_is_accepted_and_kept_to_the_second(rds):
    make_db(rds)
    identifier = _create(rds, retain_days=30)
    assert identifier == "prism-prod-premig-0042-add-reports-20261201120000"
    assert _tags(rds, identifier) == {
        "prism:purpose": "pre-migration",
        "prism:migration": "0042_add_reports",
        "prism:retain-until": "2026-12-31T12:00:00Z",
        "prism:created-by": "ci-bot",
        "prism:stack": "prod",
    }


def test_a_day_less_than_the_spec_is_refused_and_nothing_is_taken(rds):
    make_db(rds)
    with pytest.raises(BadInput, match=r"--retain-days 29 is below the spec's 30 days"):
        _create(rds, retain_days=29)
    assert rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == []


def test_a_longer_retention_moves_the_expiry_by_as_many_days(rds):
    make_db(rds)
    identifier = _create(rds, retain_days=31)
    assert _tags(rds, identifier)["prism:retain-until"] == "2027-01-01T12:00:00Z"


def test_without_a_stack_or_an_author_the_tags_say_so(rds):
    make_db(rds)
    identifier = _create(rds, stack=None, created_by="")
    tags = _tags(rds, identifier)
    assert "prism:stack" not in tags and tags["prism:created-by"] == "unknown"


def test_a_bad_migration_id_is_refused_before_the_instance_is_asked(rds):
    # No instance exists: a refusal that came from RDS would say "not found" instead.
    with pytest.raises(BadInput, match="--migration is empty"):
        _create(rds, migration="   ")


@pytest.mark.parametrize(
    ("given", "kept"),
    [("  0042  ", "0042"), ("x" * 256, "x" * 256)],
    ids=["trimmed", "at-the-limit"],
)
def test_a_usable_migration_id_is_kept_trimmed(given, kept):
    assert snap.check_migration_id(given) == kept


@pytest.mark.parametrize("bad", ["x" * 257, "a\tb", "a\x7fb"], ids=["too-long", "tab", "del"])
def test_an_unusable_migration_id_is_refused(bad):
    with pytest.raises(BadInput):
        snap.check_migration_id(bad)


def test_the_name_carries_the_utc_time_whatever_the_zone_given():
    east = datetime(2026, 12, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert snap.snapshot_identifier("prism-prod", "m", east) == "prism-prod-premig-m-20261201120000"


@pytest.mark.parametrize(
    ("migration", "slug"),
    [
        ("0042_Add reports!", "0042-add-reports"),
        ("__x__y__", "x-y"),
        ("_", "unnamed"),
        ("a" * 79 + "-b", "a" * 79),  # cut at 80 characters, never ending in a hyphen
        ("b" * 81, "b" * 80),
    ],
)
def test_the_migration_part_of_the_name(migration, slug):
    name = snap.snapshot_identifier("prism-prod", migration, NOW)
    assert name == f"prism-prod-premig-{slug}-20261201120000"


def test_a_tag_value_keeps_what_rds_accepts_and_replaces_the_rest():
    assert snap.tag_value("a_b.c:d/e=f+g-h@i j") == "a_b.c:d/e=f+g-h@i j"
    assert snap.tag_value("a!b#c$d") == "a_b_c_d"
    assert snap.tag_value("Ünï 2") == "Ünï 2"  # Unicode letters are allowed
    assert snap.tag_value("y" * 300) == "y" * 256


@pytest.mark.parametrize(
    ("timeout", "poll", "attempts"),
    [(3600, 30, 120), (3601, 30, 121), (29, 30, 1), (0, 30, 1), (1, 0.5, 2)],
)
def test_the_wait_checks_as_often_as_the_timeout_allows(timeout, poll, attempts):
    assert snap.waiter_attempts(timeout, poll) == attempts


@pytest.mark.parametrize("poll", [0, -1])
def test_a_poll_interval_of_zero_or_less_is_refused(poll):
    with pytest.raises(BadInput, match="--poll must be more than 0 seconds"):
        snap.waiter_attempts(60, poll)


@pytest.mark.parametrize(
    ("response", "state"),
    [
        (None, "unknown"),
        ({"DBSnapshots": []}, "missing"),
        ({"DBSnapshots": [{"Status": "failed"}, {"Status": "available"}]}, "failed"),
    ],
)
def test_the_state_a_failed_wait_names(response, state):
    assert snap._last_state(response) == state


def test_snapshots_are_listed_oldest_first(rds):
    make_db(rds)
    for name in ("b-second", "a-first"):
        rds.create_db_snapshot(DBSnapshotIdentifier=name, DBInstanceIdentifier="prism-prod")
    found = [s.identifier for s in snap.snapshots_of(rds, "prism-prod")]
    manual = [name for name in found if not name.startswith("rds:")]
    assert manual == ["b-second", "a-first"]  # creation order, not the names'
    times = [s.created_at for s in snap.snapshots_of(rds, "prism-prod")]
    assert times == sorted(times)


# --- what each refusal says ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("  ", "--migration is empty; pass the migration's id, e.g. 0042_add_reports"),
        ("a\nb", "--migration contains control characters; pass the migration's id"),
        ("x" * 257, "--migration is 257 characters; at most 256"),
    ],
    ids=["empty", "control", "too-long"],
)
def test_a_refused_migration_id_is_one_line_naming_the_fix(given, said):
    with pytest.raises(BadInput) as refused:
        snap.check_migration_id(given)
    assert str(refused.value) == said


def test_a_stopped_instance_is_refused_saying_what_and_when_to_retry(rds):
    from infra.errors import WrongState

    make_db(rds)
    rds.stop_db_instance(DBInstanceIdentifier="prism-prod")
    with pytest.raises(WrongState) as refused:
        _create(rds)
    assert str(refused.value) == (
        "DB instance prism-prod is 'stopped', not 'available': refusing to take a snapshot; "
        "retry once it is available"
    )


def _refusing(operation: str, code: str = "AccessDenied"):
    """An RDS client on which `operation` is refused (and the instance is available)."""
    import boto3
    from botocore.stub import Stubber

    rds = boto3.client("rds", region_name="us-east-1")
    stubber = Stubber(rds)
    if operation == "create_db_snapshot":
        stubber.add_response(
            "describe_db_instances",
            {"DBInstances": [{"DBInstanceIdentifier": "prism-prod",
                              "DBInstanceStatus": "available"}]},
        )
    stubber.add_client_error(operation, code, f"not allowed to call {operation}")
    stubber.activate()
    return rds


@pytest.mark.parametrize(
    ("call", "operation", "doing"),
    [
        (lambda rds: _create(rds), "create_db_snapshot",
         "creating snapshot prism-prod-premig-0042-add-reports-20261201120000"),
        (lambda rds: snap.describe_snapshot(rds, "s-1"), "describe_db_snapshots",
         "describing snapshot s-1"),
        (lambda rds: snap.snapshots_of(rds, "prism-prod"), "describe_db_snapshots",
         "listing snapshots of prism-prod"),
        # The waiter wraps the refusal in a WaiterError; it is still AWS's refusal, not a
        # snapshot that failed.
        (lambda rds: snap.wait_available(rds, "s-1", poll_seconds=0.01, timeout_seconds=1),
         "describe_db_snapshots", "waiting for snapshot s-1"),
    ],
    ids=["create", "describe", "list", "wait"],
)
def test_an_aws_refusal_names_what_was_being_done(call, operation, doing):
    with pytest.raises(BadInput) as refused:
        call(_refusing(operation))
    assert str(refused.value) == (
        f"{doing}: AWS refused (AccessDenied): not allowed to call {operation}"
    )


# --- the wait ------------------------------------------------------------------------------------


def _stubbed_states(states: list[str]):
    import boto3
    from botocore.stub import Stubber

    rds = boto3.client("rds", region_name="us-east-1")
    stubber = Stubber(rds)
    for state in states:
        stubber.add_response(
            "describe_db_snapshots",
            {"DBSnapshots": [{"DBSnapshotIdentifier": "s-1", "Status": state,
                              "SnapshotType": "manual"}]},
            {"DBSnapshotIdentifier": "s-1"},  # this snapshot, not any of the instance's
        )
    stubber.activate()
    return rds, stubber


def test_the_wait_asks_for_this_snapshot_every_poll_interval(monkeypatch):
    import botocore.waiter

    slept: list[float] = []
    monkeypatch.setattr(botocore.waiter.time, "sleep", slept.append)
    rds, stubber = _stubbed_states(["creating", "creating", "available", "available"])
    found = snap.wait_available(rds, "s-1", poll_seconds=7, timeout_seconds=60)
    assert found.identifier == "s-1" and found.status == "available"
    assert slept == [7, 7]  # between the three checks, none after the last
    stubber.assert_no_pending_responses()


def test_a_wait_that_runs_out_says_how_to_go_on(monkeypatch):
    import botocore.waiter

    from infra.errors import OperationFailed

    monkeypatch.setattr(botocore.waiter.time, "sleep", lambda seconds: None)
    rds, _ = _stubbed_states(["creating"] * 3)
    with pytest.raises(OperationFailed) as stopped:
        snap.wait_available(rds, "s-1", poll_seconds=20, timeout_seconds=60)
    assert str(stopped.value) == (
        "snapshot s-1 is still 'creating' after 3 checks 20 s apart; do not migrate yet. See "
        "it with `prism-dr snapshot list`, then re-run with a longer --timeout"
    )


def test_a_snapshot_that_fails_says_to_take_a_new_one(monkeypatch):
    import botocore.waiter

    from infra.errors import OperationFailed

    monkeypatch.setattr(botocore.waiter.time, "sleep", lambda seconds: None)
    rds, _ = _stubbed_states(["creating", "failed"])
    with pytest.raises(OperationFailed) as stopped:
        snap.wait_available(rds, "s-1", poll_seconds=1, timeout_seconds=60)
    assert str(stopped.value) == (
        "snapshot s-1 ended 'failed' instead of 'available'; do not migrate: take a new snapshot"
    )


# --- the name and the listing, at their edges ---------------------------------------------------


def test_a_long_migration_with_leading_punctuation_keeps_80_characters():
    name = snap.snapshot_identifier("prism-prod", "_" + "b" * 81, NOW)
    assert name == f"prism-prod-premig-{'b' * 80}-20261201120000"


def test_the_name_is_utc_whatever_the_machines_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        name = snap.snapshot_identifier("prism-prod", "m", NOW)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert name == "prism-prod-premig-m-20261201120000"


def test_a_snapshot_without_a_creation_time_yet_is_listed_first():
    import boto3
    from botocore.stub import Stubber

    rds = boto3.client("rds", region_name="us-east-1")
    stubber = Stubber(rds)
    base = {"DBInstanceIdentifier": "prism-prod", "SnapshotType": "manual"}
    stubber.add_response(
        "describe_db_snapshots",
        {"DBSnapshots": [
            {**base, "DBSnapshotIdentifier": "b-old", "Status": "available",
             "SnapshotCreateTime": NOW - timedelta(days=2)},
            {**base, "DBSnapshotIdentifier": "c-new", "Status": "creating"},
            {**base, "DBSnapshotIdentifier": "a-older", "Status": "available",
             "SnapshotCreateTime": NOW - timedelta(days=3)},
        ]},
        {"DBInstanceIdentifier": "prism-prod"},
    )
    stubber.activate()
    assert [s.identifier for s in snap.snapshots_of(rds, "prism-prod")] == [
        "c-new", "a-older", "b-old"
    ]


@pytest.mark.parametrize(
    ("response", "said"),
    [
        (None, None),
        ({"DBSnapshots": [{"Status": "failed"}]}, None),  # a state, not a refusal
        ({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}},
         "AWS refused (Throttling): Rate exceeded"),
        ({"Error": {}}, "AWS refused (error): "),
    ],
)
def test_an_error_answer_during_the_wait_is_told_from_a_state(response, said):
    assert snap._refusal(response) == said
