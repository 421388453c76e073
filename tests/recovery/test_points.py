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
from botocore.stub import Stubber

from recovery.points import Point, find_source
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
