"""Which automated backups a recovery reads: matched to the instance by DbiResourceId.

The instance comes from the moto server; the automated backups from a Stubber, because moto
shows no RestoreWindow, DbiResourceId or retained/replicated backups for them. The answers
have the shape of DescribeDBInstanceAutomatedBackups (RDS API reference,
DBInstanceAutomatedBackup): listed by DBInstanceIdentifier, it includes the retained backups
of a deleted instance that had the same name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from infra.errors import BadInput, NotFound, OutsideWindow, WrongState
from recovery.points import Point, Source, check_point, find_source
from tests.aws.conftest import moto, moto_session  # noqa: F401  (fixtures)
from tests.runbook.conftest import make_db

NOW = datetime.now(UTC)
OLD_ID = "db-OLDINSTANCEOFTHESAMENAME0"


def _backup(resource_id: str, *, earliest: timedelta, latest: timedelta, status: str, region: str):
    return {
        "DBInstanceIdentifier": "prism-prod",
        "DbiResourceId": resource_id,
        "Region": region,
        "Status": status,
        "RestoreWindow": {"EarliestTime": NOW - earliest, "LatestTime": NOW - latest},
        "DBInstanceAutomatedBackupsArn": f"arn:aws:rds:{region}:123456789012:auto-backup:"
        f"ab-{resource_id.lower()[3:]}",
    }


def _stubbed(region: str, backups: list[dict], described: dict | None = None):
    rds = boto3.client("rds", region_name=region)
    stubber = Stubber(rds)
    if described is not None:  # moto's own answer, replayed ahead of the backups
        described = {k: v for k, v in described.items() if k != "ResponseMetadata"}
        stubber.add_response("describe_db_instances", described)
    stubber.add_response(
        "describe_db_instance_automated_backups",
        {"DBInstanceAutomatedBackups": backups},
        {"DBInstanceIdentifier": "prism-prod"},
    )
    stubber.activate()
    return rds


def test_the_home_window_is_the_current_instances_not_an_earlier_namesakes(moto):  # noqa: F811
    home = boto3.client("rds", region_name="us-east-1")
    instance = make_db(home)
    current = instance["DbiResourceId"]
    backups = [
        # Listed first: the retained backups of a deleted instance called prism-prod.
        _backup(
            OLD_ID,
            earliest=timedelta(days=30),
            latest=timedelta(days=20),
            status="retained",
            region="us-east-1",
        ),
        _backup(
            current,
            earliest=timedelta(days=2),
            latest=timedelta(minutes=5),
            status="active",
            region="us-east-1",
        ),
    ]
    stubbed = _stubbed(
        "us-east-1", backups, home.describe_db_instances(DBInstanceIdentifier="prism-prod")
    )
    source = find_source(
        stubbed,
        db_instance="prism-prod",
        home_region="us-east-1",
        region="us-east-1",
        point=Point.parse("latest"),
        now=NOW,
    )
    assert source.earliest == NOW - timedelta(days=2)


def test_the_replicated_backups_are_the_current_instances(moto):  # noqa: F811
    home = boto3.client("rds", region_name="us-east-1")
    current = make_db(home)["DbiResourceId"]
    copies = [
        _backup(
            OLD_ID,
            earliest=timedelta(days=40),
            latest=timedelta(days=10),
            status="retained",
            region="us-east-1",
        ),
        _backup(
            current,
            earliest=timedelta(days=30),
            latest=timedelta(minutes=8),
            status="replicating",
            region="us-east-1",
        ),
    ]
    source = find_source(
        _stubbed("us-west-2", copies),
        db_instance="prism-prod",
        home_region="us-east-1",
        region="us-west-2",
        point=Point.parse("latest"),
        now=NOW,
        home_rds=home,
    )
    assert source.automated_backups_arn == copies[1]["DBInstanceAutomatedBackupsArn"]
    assert source.earliest == NOW - timedelta(days=30)


def test_with_the_home_region_silent_the_replicating_copy_wins(moto):  # noqa: F811
    copies = [
        _backup(
            OLD_ID,
            earliest=timedelta(days=40),
            latest=timedelta(days=10),
            status="retained",
            region="us-east-1",
        ),
        _backup(
            "db-CURRENTINSTANCE0000000000",
            earliest=timedelta(days=30),
            latest=timedelta(minutes=8),
            status="replicating",
            region="us-east-1",
        ),
    ]
    source = find_source(
        _stubbed("us-west-2", copies),
        db_instance="prism-prod",
        home_region="us-east-1",
        region="us-west-2",
        point=Point.parse("latest"),
        now=NOW,
        home_rds=None,
    )
    assert source.automated_backups_arn == copies[1]["DBInstanceAutomatedBackupsArn"]


# -- without moto: each source's decisions, from AWS's answers ------------------------------

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOME, OTHER = "us-east-1", "us-west-2"
CURRENT_ID = "db-CURRENTINSTANCE0000000000"


def _answers(region: str, *answers: tuple[str, dict | str]):
    """An RDS client that gives these answers in order: a response, or an error code."""
    rds = boto3.client("rds", region_name=region)
    stubber = Stubber(rds)
    for operation, answer in answers:
        if isinstance(answer, str):
            stubber.add_client_error(operation, answer, f"{answer} (stubbed)", 404)
        else:
            stubber.add_response(operation, answer)
    stubber.activate()
    return rds


def _instance(**fields) -> dict:
    described = {"DBInstanceIdentifier": "prism-prod", "DbiResourceId": CURRENT_ID,
                 "BackupRetentionPeriod": 7, "LatestRestorableTime": T0 - timedelta(minutes=5),
                 "InstanceCreateTime": T0 - timedelta(days=100)}
    merged = {**described, **fields}
    return {"DBInstances": [{k: v for k, v in merged.items() if v is not None}]}


def _window(earliest: timedelta | None, latest: timedelta | None) -> dict:
    window = {}
    if earliest is not None:
        window["EarliestTime"] = T0 - earliest
    if latest is not None:
        window["LatestTime"] = T0 - latest
    return window


def _copy(name: str, *, status: str, region: str | None = HOME, resource_id: str = CURRENT_ID,
          window: dict | None = None, arn: bool = True) -> dict:
    backup = {"DBInstanceIdentifier": "prism-prod", "DbiResourceId": resource_id,
              "Status": status}
    if region is not None:
        backup["Region"] = region
    if window is not None:
        backup["RestoreWindow"] = window
    if arn:
        backup["DBInstanceAutomatedBackupsArn"] = f"arn:aws:rds:{region}:1:auto-backup:ab-{name}"
    return backup


def _backups(*backups: dict) -> tuple[str, dict]:
    return ("describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": list(backups)})


def _find(rds, point: str = "latest", *, region: str = HOME, home_rds=None) -> Source:
    return find_source(rds, db_instance="prism-prod", home_region=HOME, region=region,
                       point=Point.parse(point), now=T0, home_rds=home_rds)


# Point.parse


def test_a_point_is_latest_a_snapshot_or_a_time_with_a_zone() -> None:
    assert Point.parse(" latest ") == Point("latest", "latest")
    assert Point.parse("snapshot:prism-prod-premig-1") == Point(
        "snapshot:prism-prod-premig-1", "snapshot", snapshot_id="prism-prod-premig-1")
    at = Point.parse("2026-12-01T04:00:00+01:00")
    assert (at.text, at.kind, at.time) == ("2026-12-01T03:00:00Z", "time",
                                           datetime(2026, 12, 1, 3, tzinfo=UTC))


@pytest.mark.parametrize(("text", "says"), [
    ("snapshot:", "--point snapshot: needs an id, e.g. snapshot:prism-prod-premig-…"),
    ("2026-12-01T03:00:00", "--point '2026-12-01T03:00:00' is not latest, snapshot:ID or an "
                            "ISO time with a zone (e.g. 2026-12-01T03:00:00Z)"),
    ("yesterday", "--point 'yesterday' is not latest, snapshot:ID or an ISO time with a zone "
                  "(e.g. 2026-12-01T03:00:00Z)"),
])
def test_a_point_that_is_none_of_those_is_refused_saying_what_is_expected(text, says) -> None:
    with pytest.raises(BadInput) as refused:
        Point.parse(text)
    assert str(refused.value) == says


# snapshot:ID


def test_a_snapshot_point_needs_an_available_snapshot() -> None:
    created = T0 - timedelta(hours=3)
    found = {"DBSnapshots": [{"DBSnapshotIdentifier": "s1", "Status": "available",
                              "SnapshotCreateTime": created}]}
    source = _find(_answers(HOME, ("describe_db_snapshots", found)), "snapshot:s1")
    assert source == Source(region=HOME, snapshot_id="s1", latest=created,
                            description="snapshot s1")
    creating = {"DBSnapshots": [{"DBSnapshotIdentifier": "s1", "Status": "creating"}]}
    with pytest.raises(WrongState, match="snapshot s1 is 'creating', not 'available'"):
        _find(_answers(HOME, ("describe_db_snapshots", creating)), "snapshot:s1")


@pytest.mark.parametrize("answer", ["DBSnapshotNotFound", {"DBSnapshots": []}])
def test_a_missing_snapshot_is_named_with_its_region(answer) -> None:
    rds = _answers(OTHER, ("describe_db_snapshots", answer))
    with pytest.raises(NotFound, match=f"snapshot s1 does not exist in {OTHER}; see"):
        _find(rds, "snapshot:s1", region=OTHER)


def test_a_refusal_to_describe_the_snapshot_is_not_taken_for_its_absence() -> None:
    rds = _answers(HOME, ("describe_db_snapshots", "AccessDenied"))
    with pytest.raises(BadInput, match=r"describing snapshot s1: AWS refused \(AccessDenied\)"):
        _find(rds, "snapshot:s1")


# The home region: the instance's point-in-time window


@pytest.mark.parametrize("instance", [_instance(BackupRetentionPeriod=0),
                                      _instance(LatestRestorableTime=None)])
def test_an_instance_without_point_in_time_recovery_is_refused(instance) -> None:
    with pytest.raises(WrongState) as refused:
        _find(_answers(HOME, ("describe_db_instances", instance)))
    retention = instance["DBInstances"][0]["BackupRetentionPeriod"]
    assert str(refused.value) == (
        f"prism-prod has no point-in-time recovery (retention {retention}); recover from a "
        "snapshot with --point snapshot:ID")


LATEST = T0 - timedelta(minutes=5)
BY_RETENTION = LATEST - timedelta(days=7)


@pytest.mark.parametrize(("created", "earliest"), [
    (BY_RETENTION - timedelta(days=90), BY_RETENTION),  # older than its retention
    (BY_RETENTION + timedelta(seconds=1), BY_RETENTION + timedelta(seconds=1)),
    (T0 - timedelta(days=3), T0 - timedelta(days=3)),  # created three days ago
])
def test_without_its_own_restore_window_the_retention_or_the_creation_bounds_it(
    created, earliest
) -> None:
    other_instance = _copy("old", status="retained", resource_id=OLD_ID,
                           window=_window(timedelta(days=30), timedelta(days=20)))
    source = _find(_answers(HOME, ("describe_db_instances", _instance(InstanceCreateTime=created)),
                            _backups(other_instance, _copy("now", status="active"))))
    assert source == Source(region=HOME, source_identifier="prism-prod", earliest=earliest,
                            latest=LATEST,
                            description=f"prism-prod point-in-time backups in {HOME}")


def test_without_a_restore_window_or_creation_time_the_retention_bounds_it() -> None:
    instance = _instance(InstanceCreateTime=None)
    source = _find(_answers(HOME, ("describe_db_instances", instance), _backups()))
    assert source.earliest == BY_RETENTION


# The home region: a deleted instance's retained backups


def test_a_deleted_instance_is_read_from_its_newest_retained_backups_here() -> None:
    elsewhere = _copy("elsewhere", status="retained", region=OTHER,
                      window=_window(timedelta(days=5), timedelta(hours=1)))
    older = _copy("older", status="retained", window=_window(timedelta(days=60),
                                                               timedelta(days=40)))
    newest = _copy("newest", status="retained", region=None,  # no Region: this one
                   window=_window(timedelta(days=30), timedelta(hours=2)))
    windowless = _copy("windowless", status="retained")
    unarned = _copy("unarned", status="retained", arn=False,
                    window=_window(timedelta(days=3), timedelta(minutes=1)))
    active = _copy("active", status="active", window=_window(timedelta(days=2),
                                                               timedelta(minutes=1)))
    rds = _answers(HOME, ("describe_db_instances", "DBInstanceNotFound"),
                   _backups(elsewhere, older, windowless, newest, unarned, active))
    source = _find(rds, "2026-11-30T09:00:00Z")
    assert source == Source(
        region=HOME, automated_backups_arn=newest["DBInstanceAutomatedBackupsArn"],
        earliest=T0 - timedelta(days=30), latest=T0 - timedelta(hours=2),
        description=f"retained automated backups of the deleted prism-prod in {HOME}")


def test_a_deleted_instance_without_retained_backups_here_says_where_else_to_look() -> None:
    elsewhere = _copy("elsewhere", status="retained", region=OTHER,
                      window=_window(timedelta(days=5), timedelta(hours=1)))
    rds = _answers(HOME, ("describe_db_instances", "DBInstanceNotFound"), _backups(elsewhere))
    with pytest.raises(NotFound) as refused:
        _find(rds)
    assert str(refused.value) == (
        f"DB instance prism-prod does not exist in {HOME} and left no retained automated "
        "backups; recover from a snapshot (--point snapshot:ID) or from the replicated "
        "backups (--region)")


# Another region: the backups replicated there


def test_the_replicated_copy_named_by_the_home_region_is_read_whatever_its_status() -> None:
    home = _answers(HOME, ("describe_db_instances", _instance()))
    mine = _copy("mine", status="retained", window=_window(timedelta(days=30), timedelta(hours=3)))
    other = _copy("other", status="replicating", resource_id=OLD_ID,
                  window=_window(timedelta(days=9), timedelta(minutes=1)))
    local = _copy("local", status="replicating", region=OTHER,
                  window=_window(timedelta(days=9), timedelta(minutes=1)))
    source = _find(_answers(OTHER, _backups(other, local, mine)), region=OTHER, home_rds=home)
    assert source == Source(
        region=OTHER, automated_backups_arn=mine["DBInstanceAutomatedBackupsArn"],
        earliest=T0 - timedelta(days=30), latest=T0 - timedelta(hours=3),
        description=f"prism-prod backups replicated to {OTHER} ({CURRENT_ID})")


@pytest.mark.parametrize("home_answer", ["DBInstanceNotFound", "AccessDenied"])
def test_with_the_home_region_unable_to_say_the_newest_copy_is_read(home_answer) -> None:
    home = _answers(HOME, ("describe_db_instances", home_answer))
    older = _copy("older", status="retained", resource_id=OLD_ID,
                  window=_window(timedelta(days=40), timedelta(days=10)))
    newer = _copy("newer", status="retained", window=_window(timedelta(days=30),
                                                              timedelta(hours=1)))
    windowless = _copy("windowless", status="retained")
    source = _find(_answers(OTHER, _backups(older, windowless, newer)), region=OTHER,
                   home_rds=home)
    assert source.automated_backups_arn == newer["DBInstanceAutomatedBackupsArn"]


def test_no_copy_of_the_current_instance_is_named_with_its_id() -> None:
    home = _answers(HOME, ("describe_db_instances", _instance()))
    theirs = _copy("theirs", status="replicating", resource_id=OLD_ID,
                   window=_window(timedelta(days=9), timedelta(minutes=1)))
    unarned = _copy("unarned", status="replicating", arn=False,
                    window=_window(timedelta(days=9), timedelta(minutes=1)))
    with pytest.raises(NotFound) as refused:
        _find(_answers(OTHER, _backups(theirs, unarned)), region=OTHER, home_rds=home)
    assert str(refused.value) == (
        f"no backups of prism-prod (DbiResourceId {CURRENT_ID}) replicated from {HOME} to "
        f"{OTHER}; pick the stack's backupReplication region, or recover in the home region")
    with pytest.raises(NotFound, match=f"no backups of prism-prod replicated from {HOME}"):
        _find(_answers(OTHER, _backups()), region=OTHER)


def test_a_copy_without_a_resource_id_is_described_without_one() -> None:
    copy = _copy("copy", status="replicating", window=_window(timedelta(days=9),
                                                               timedelta(minutes=1)))
    del copy["DbiResourceId"]
    source = _find(_answers(OTHER, _backups(copy)), region=OTHER)
    assert source.description == f"prism-prod backups replicated to {OTHER}"


# The point against the window, to the second


WINDOW = Source(region=HOME, earliest=T0 - timedelta(days=7), latest=T0 - timedelta(minutes=5),
                description="prism-prod point-in-time backups in us-east-1")


@pytest.mark.parametrize(("when", "inside"), [
    (WINDOW.earliest - timedelta(seconds=1), False),
    (WINDOW.earliest, True),
    (WINDOW.latest, True),
    (WINDOW.latest + timedelta(seconds=1), False),
])
def test_a_time_must_lie_inside_the_window_ends_included(when, inside) -> None:
    point = Point.parse(when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if inside:
        check_point(point, WINDOW, T0)
        return
    with pytest.raises(OutsideWindow) as refused:
        check_point(point, WINDOW, T0)
    assert str(refused.value) == (
        f"--point {point.text} is outside the restorable window of {WINDOW.description} "
        "(2026-11-24T09:00:00Z to 2026-12-01T08:55:00Z); pick a time inside it or `latest`")


def test_a_window_without_a_start_bounds_only_the_end() -> None:
    open_start = Source(region=HOME, latest=WINDOW.latest, description="copies")
    check_point(Point.parse("2000-01-01T00:00:00Z"), open_start, T0)
    with pytest.raises(OutsideWindow, match=r"\(\? to 2026-12-01T08:55:00Z\)"):
        check_point(Point.parse("2026-12-01T09:00:00Z"), open_start, T0)


def test_nothing_is_restorable_before_the_first_backup_whatever_the_point() -> None:
    empty = Source(region=HOME, earliest=T0, description="the new copies")
    for point in ("latest", "snapshot:s1", "2026-12-01T09:00:00Z"):
        with pytest.raises(OutsideWindow) as refused:
            check_point(Point.parse(point), empty, T0)
        assert str(refused.value) == (
            "the new copies have no restorable time yet; nothing to restore")


def test_a_deleted_instance_whose_backups_cannot_be_listed_says_what_was_refused() -> None:
    rds = _answers(HOME, ("describe_db_instances", "DBInstanceNotFound"),
                   ("describe_db_instance_automated_backups", "AccessDenied"))
    with pytest.raises(BadInput, match=r"^listing retained backups of prism-prod: AWS refused "
                                       r"\(AccessDenied\)"):
        _find(rds)


def test_an_answer_without_a_backup_list_counts_as_no_backups() -> None:
    rds = _answers(HOME, ("describe_db_instances", "DBInstanceNotFound"),
                   ("describe_db_instance_automated_backups", {}))
    with pytest.raises(NotFound, match="left no retained automated backups"):
        _find(rds)


def test_a_refusal_to_list_backups_says_what_was_being_listed() -> None:
    home = _answers(HOME, ("describe_db_instances", _instance()),
                    ("describe_db_instance_automated_backups", "AccessDenied"))
    with pytest.raises(BadInput, match=r"^describing automated backups: AWS refused"):
        _find(home)
    there = _answers(OTHER, ("describe_db_instance_automated_backups", "AccessDenied"))
    with pytest.raises(BadInput, match=rf"^listing replicated backups in {OTHER}: AWS refused"):
        _find(there, region=OTHER)


def test_answers_without_a_backup_list_count_as_no_backups() -> None:
    home = _answers(HOME, ("describe_db_instances", _instance()),
                    ("describe_db_instance_automated_backups", {}))
    assert _find(home).earliest == BY_RETENTION
    there = _answers(OTHER, ("describe_db_instance_automated_backups", {}))
    with pytest.raises(NotFound, match="no backups of prism-prod replicated"):
        _find(there, region=OTHER)


def test_with_the_home_region_silent_the_replicating_copy_wins_over_a_newer_retained_one() -> None:
    # An instance deleted an hour ago, and the current one whose replication lags behind.
    deleted = _copy("deleted", status="retained", resource_id=OLD_ID,
                    window=_window(timedelta(days=30), timedelta(hours=1)))
    current = _copy("current", status="replicating",
                    window=_window(timedelta(days=2), timedelta(hours=3)))
    source = _find(_answers(OTHER, _backups(deleted, current)), region=OTHER)
    assert source.automated_backups_arn == current["DBInstanceAutomatedBackupsArn"]
