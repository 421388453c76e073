"""The AWS drill's plan against moto: the point, the network and the region are checked
before anything is created; moto lacks backup replication, so the DR region's answer comes
from botocore's Stubber in the shape AWS documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from drills.aws.plan import cost_estimate, parse_ttl, plan_aws_drill
from infra.errors import BadInput, NotFound, OutsideWindow
from recovery import aws as runbook_aws
from tests.drills.aws.conftest import REGION, ZONE

REPLICA_ARN = "arn:aws:rds:us-west-2:123456789012:auto-backup:ab-" + "d" * 26


def test_latest_takes_the_latest_restorable_time_and_the_sources_network(
    account, project, monkeypatch
):
    monkeypatch.setenv("GITHUB_ACTOR", "octo-ops")
    plan = plan_aws_drill(stack="prod", project_dir=project)
    described = account.rds.describe_db_instances(DBInstanceIdentifier="prism-prod")["DBInstances"][
        0
    ]
    assert plan.source.source_identifier == "prism-prod"
    assert plan.restore_point is not None
    assert abs(plan.restore_point - described["LatestRestorableTime"]) < timedelta(minutes=1)
    assert plan.network is not None
    assert plan.network.vpc_id == account.vpc_id
    assert plan.network.subnet_group_name == "database-subnets-1a2b3c"
    assert sorted(plan.network.private_subnet_ids) == sorted(account.private_subnets)
    assert plan.network.host_subnet_id == account.host_subnet
    assert plan.network.host_public_ip is True
    assert plan.network.vpc_cidr == "10.50.0.0/16"
    assert plan.actor == "octo-ops (GitHub Actions)"
    assert plan.expires_at - plan.started_at == timedelta(hours=6)
    assert plan.stack_name == f"drill-{plan.run_id}"
    assert plan.hostname == f"drill-{plan.run_id}.prismhub.io"
    assert plan.environment == "aws-prod"


def test_a_time_before_the_window_is_refused(account, project):
    with pytest.raises(OutsideWindow, match="outside the restorable window"):
        plan_aws_drill(stack="prod", point_text="2020-01-01T00:00:00Z", project_dir=project)


def test_a_time_after_the_latest_restorable_time_is_refused(account, project):
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(OutsideWindow):
        plan_aws_drill(stack="prod", point_text=future, project_dir=project)


def test_an_unknown_db_instance_is_refused(account, project):
    with pytest.raises(NotFound, match="prism-nope"):
        plan_aws_drill(stack="prod", db_instance="prism-nope", project_dir=project)


def test_a_malformed_point_is_refused(account, project):
    with pytest.raises(BadInput, match="--point"):
        plan_aws_drill(stack="prod", point_text="yesterday", project_dir=project)


def test_snapshot_points(account, project):
    with pytest.raises(NotFound, match="snapshot prism-prod-x does not exist"):
        plan_aws_drill(stack="prod", point_text="snapshot:prism-prod-x", project_dir=project)
    # moto, like RDS, takes an automated snapshot when the instance is created.
    first = plan_aws_drill(stack="prod", point_text="snapshot:latest", project_dir=project)
    assert first.point.snapshot_id.startswith("rds:prism-prod-")
    account.rds.create_db_snapshot(
        DBInstanceIdentifier="prism-prod", DBSnapshotIdentifier="premig-1"
    )
    account.rds.create_db_snapshot(
        DBInstanceIdentifier="prism-prod", DBSnapshotIdentifier="premig-2"
    )
    plan = plan_aws_drill(stack="prod", point_text="snapshot:premig-1", project_dir=project)
    assert plan.source.snapshot_id == "premig-1" and plan.point.kind == "snapshot"
    assert plan.network is not None  # the source still exists: its VPC
    newest = plan_aws_drill(stack="prod", point_text="snapshot:latest", project_dir=project)
    assert newest.point.snapshot_id == "premig-2"
    assert newest.restore_point == newest.source.latest


def _dr_client(backups):
    def clients(service, region):
        if service == "rds" and region == "us-west-2":
            # Stubber: moto does not implement cross-region backup replication. The answer has
            # the shape of DescribeDBInstanceAutomatedBackups in the destination region.
            dr = boto3.client("rds", region_name=region)
            stub = Stubber(dr)
            stub.add_response(
                "describe_db_instance_automated_backups",
                {"DBInstanceAutomatedBackups": backups},
                {"DBInstanceIdentifier": "prism-prod"},
            )
            stub.activate()
            return dr
        return runbook_aws.client(service, region)

    return clients


def test_region_restores_the_replicated_backups_into_a_network_of_its_own(account, project):
    now = datetime.now(UTC)
    replica = {
        "DBInstanceArn": account.instance["DBInstanceArn"],
        "Region": REGION,
        "DBInstanceIdentifier": "prism-prod",
        "RestoreWindow": {
            "EarliestTime": now - timedelta(days=30),
            "LatestTime": now - timedelta(minutes=7),
        },
        "Status": "replicating",
        "DBInstanceAutomatedBackupsArn": REPLICA_ARN,
    }
    plan = plan_aws_drill(
        stack="prod", region="us-west-2", project_dir=project, clients=_dr_client([replica])
    )
    assert plan.source.automated_backups_arn == REPLICA_ARN
    assert plan.network is None
    assert plan.region == "us-west-2" and plan.home_region == REGION
    assert plan.restore_point == replica["RestoreWindow"]["LatestTime"]


def test_region_without_a_replica_is_refused(account, project):
    with pytest.raises(NotFound, match="no backups of prism-prod replicated"):
        plan_aws_drill(
            stack="prod", region="us-west-2", project_dir=project, clients=_dr_client([])
        )


def test_no_subnet_for_the_host_is_refused(moto, project):
    from tests.drills.aws.conftest import make_prod

    account = make_prod()
    account.ec2.delete_tags(Resources=[account.host_subnet], Tags=[{"Key": "Name"}])
    with pytest.raises(NotFound, match="no subnet for the drill's API host"):
        plan_aws_drill(stack="prod", project_dir=project)


def test_a_host_subnet_without_an_internet_route_gets_no_public_address(account, project):
    table = account.ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [account.host_subnet]}]
    )["RouteTables"][0]
    account.ec2.delete_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock="0.0.0.0/0")
    plan = plan_aws_drill(stack="prod", project_dir=project)
    assert plan.network is not None and plan.network.host_public_ip is False


def test_drill_settings_are_validated_with_the_key_named(account, project):
    path = project / "Pulumi.prod.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["prism-infra:drill"] = {"instanceClass": "huge"}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(BadInput, match=r"prism-infra:drill\.instanceClass"):
        plan_aws_drill(stack="prod", project_dir=project)
    doc["config"]["prism-infra:drill"] = {"ttlHour": 3}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(BadInput, match="ttlHour"):
        plan_aws_drill(stack="prod", project_dir=project)


def test_ttl_and_cost(account, project):
    assert parse_ttl("90m", timedelta(hours=6)) == timedelta(minutes=90)
    assert parse_ttl(None, timedelta(hours=6)) == timedelta(hours=6)
    for bad in ("6", "1w", "10m", "3d"):
        with pytest.raises(BadInput, match="--ttl"):
            parse_ttl(bad, timedelta(hours=6))
    plan = plan_aws_drill(stack="prod", project_dir=project, ttl=timedelta(hours=2))
    assert plan.expires_at - plan.started_at == timedelta(hours=2)
    # db.t4g.small 2 h at $0.032 + t4g.small billed the 10-minute minimum at $0.0168.
    text = cost_estimate(plan, db_seconds=7200, host_seconds=60)
    assert text.startswith("$0.07 ")
    assert "db.t4g.small 2.00 h" in text and "t4g.small 0.17 h" in text


def _with_hostname(project, hostname):
    path = project / "Pulumi.prod.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["prism-infra:tunnel"]["hostname"] = hostname
    path.write_text(yaml.safe_dump(doc))


def test_the_drill_hostname_goes_directly_under_the_zone_cloudflare_names(account, project):
    from tests.fakes.cloud import FakeCloudflare

    cloudflare = FakeCloudflare(zones={ZONE: "prismhub.io"})
    # An apex hostname: the drill's name is under the zone, never `drill-<id>.io`.
    _with_hostname(project, "prismhub.io")
    plan = plan_aws_drill(stack="prod", project_dir=project, zone_name=cloudflare.zone_name)
    assert plan.hostname == f"drill-{plan.run_id}.prismhub.io"
    # A deeper name: still directly under the zone, not under the name's parent.
    _with_hostname(project, "api.eu.prismhub.io")
    plan = plan_aws_drill(stack="prod", project_dir=project, zone_name=cloudflare.zone_name)
    assert plan.hostname == f"drill-{plan.run_id}.prismhub.io"
    assert ("zone_name", ZONE) in cloudflare.calls


def test_a_hostname_outside_its_zone_is_refused(account, project):
    from tests.fakes.cloud import FakeCloudflare

    cloudflare = FakeCloudflare(zones={ZONE: "other.example"})
    with pytest.raises(
        BadInput, match=r"api\.prismhub\.io is not in the zone .* \(other\.example\)"
    ):
        plan_aws_drill(stack="prod", project_dir=project, zone_name=cloudflare.zone_name)


@pytest.mark.parametrize(
    ("hostname", "zone"),
    [("api.prismhub.io", "prismhub.io"), ("prismhub.io", "prismhub.io"), ("a.b.c.io", "b.c.io")],
)
def test_without_cloudflare_the_zone_is_guessed_from_the_name(hostname, zone):
    from drills.aws.plan import guess_zone

    assert guess_zone(hostname) == zone
