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
        ({"Error": {"Code": "DBSnapshotNotFound"}}, "DBSnapshotNotFound"),
        ({"Error": {}}, "error"),
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
