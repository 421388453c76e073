"""`prism-dr audit` against the moto server: a healthy prod instance passes, and each bad
property alone fails exactly its own check (exit 1)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from drills.record import DrillRecord, Result, write_record
from drills.verify.model import Tier
from recovery import aws as runbook_aws
from tests.runbook.cli import run
from tests.runbook.conftest import make_db

DR_REGION = "us-west-2"  # Pulumi.prod.yaml: backupReplication.region


def _drill(record_dir: Path, days_ago: float, result: Result = Result.PASSED) -> None:
    write_record(
        DrillRecord(
            started_at=datetime.now(UTC) - timedelta(days=days_ago),
            environment="staging",
            backup_source="prism-prod@latest",
            result=result,
            completed_by="ops",
            tier=Tier.STANDARD,
        ),
        record_dir,
    )


def _replicated(instance: dict, lag: timedelta) -> dict:
    # The shape DescribeDBInstanceAutomatedBackups returns in the destination region for a
    # replicated backup (RDS API reference: DBInstanceAutomatedBackup).
    now = datetime.now(UTC)
    return {
        "DBInstanceArn": instance["DBInstanceArn"],
        "DbiResourceId": instance["DbiResourceId"],
        "Region": "us-east-1",
        "DBInstanceIdentifier": instance["DBInstanceIdentifier"],
        "RestoreWindow": {"EarliestTime": now - timedelta(days=30), "LatestTime": now - lag},
        "AllocatedStorage": 50,
        "Status": "replicating",
        "Engine": "postgres",
        "EngineVersion": "16.4",
        "Encrypted": True,
        "BackupRetentionPeriod": 30,
        "DBInstanceAutomatedBackupsArn": (
            "arn:aws:rds:us-west-2:123456789012:auto-backup:ab-" + "a" * 26
        ),
    }


class World:
    """A healthy prod: the instance, its replicated backups, a pre-migration snapshot, a drill."""

    def __init__(self, rds, tmp_path: Path, monkeypatch, **db_overrides):
        self.rds = rds
        self.records = tmp_path / "drills"
        self.instance = make_db(rds, **db_overrides)
        rds.create_db_snapshot(
            DBSnapshotIdentifier="prism-prod-premig-0042-20261130120000",
            DBInstanceIdentifier="prism-prod",
            Tags=[
                {"Key": "prism:purpose", "Value": "pre-migration"},
                {"Key": "prism:migration", "Value": "0042"},
                {"Key": "prism:retain-until", "Value": "2099-01-01T00:00:00Z"},
            ],
        )
        _drill(self.records, days_ago=20)
        self.replicated = [_replicated(self.instance, timedelta(minutes=10))]
        self.primary_stub: dict | None = None
        self.stubbers: list[Stubber] = []
        monkeypatch.setattr("prism_dr.audit_cmd.client", self.client)

    def client(self, service: str, region: str):
        if service == "rds" and region == DR_REGION and self.replicated is not None:
            # Stubber, because moto does not implement cross-region backup replication: its
            # DR region holds no replicated automated backups to describe.
            dr = boto3.client("rds", region_name=region)
            stubber = Stubber(dr)
            stubber.add_response(
                "describe_db_instance_automated_backups",
                {"DBInstanceAutomatedBackups": self.replicated},
                {"DbiResourceId": self.instance["DbiResourceId"]},
            )
            stubber.activate()
            self.stubbers.append(stubber)
            return dr
        if service == "rds" and region == "us-east-1" and self.primary_stub is not None:
            return self._stubbed_primary()
        return runbook_aws.client(service, region)

    def _stubbed_primary(self):
        # Stubber, because moto reports LatestRestorableTime as "now" on every call: it cannot
        # express a PITR that lags. The responses are moto's own answers with only that
        # field changed.
        described = self.rds.describe_db_instances(DBInstanceIdentifier="prism-prod")
        snapshots = self.rds.describe_db_snapshots(DBInstanceIdentifier="prism-prod")
        described = copy.deepcopy(described)
        described["DBInstances"][0].update(self.primary_stub)
        for answer in (described, snapshots):
            answer.pop("ResponseMetadata", None)
        primary = boto3.client("rds", region_name="us-east-1")
        stubber = Stubber(primary)
        stubber.add_response("describe_db_instances", described)
        stubber.add_response("describe_db_snapshots", snapshots)
        stubber.activate()
        self.stubbers.append(stubber)
        return primary

    def audit(self, capsys, *extra: str):
        result = run(
            capsys, "audit", "--stack", "prod", "--record-dir", str(self.records), "--json", *extra
        )
        for stubber in self.stubbers:
            stubber.assert_no_pending_responses()
        report = json.loads(result.out) if result.out else None
        return result, report


def _failed(report: dict) -> set[str]:
    return {c["name"] for c in report["checks"] if c["status"] == "fail"}


@pytest.fixture
def world(rds, tmp_path, monkeypatch):
    return World(rds, tmp_path, monkeypatch)


def test_a_healthy_instance_passes(world, capsys):
    result, report = world.audit(capsys, "--last-migration", "0042")
    assert result.code == 0, result.out + result.err
    assert report["passed"] is True
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses == {
        "automated_backups": "pass",
        "pitr": "pass",
        "deletion_protection": "pass",
        "encryption": "pass",
        "backup_replication": "pass",
        "pre_migration_snapshot": "pass",
        "restore_drill": "pass",
        "untagged_snapshots": "pass",
        "expired_drill_resources": "pass",
    }


@pytest.mark.parametrize(
    ("overrides", "failing"),
    [
        ({"BackupRetentionPeriod": 1}, "automated_backups"),
        ({"DeletionProtection": False}, "deletion_protection"),
        ({"StorageEncrypted": False}, "encryption"),
    ],
)
def test_each_bad_instance_property_alone_fails(
    rds, tmp_path, monkeypatch, capsys, overrides, failing
):
    world = World(rds, tmp_path, monkeypatch, **overrides)
    result, report = world.audit(capsys, "--last-migration", "0042")
    assert result.code == 1
    assert _failed(report) == {failing}


def test_no_replication_fails(world, capsys):
    world.replicated = None  # the real moto DR region: nothing replicated there
    result, report = world.audit(capsys)
    assert result.code == 1
    assert _failed(report) == {"backup_replication"}
    assert "no replicated automated backups in us-west-2" in json.dumps(report)


def test_replication_that_stopped_fails(world, capsys):
    world.replicated = [_replicated(world.instance, timedelta(hours=30))]
    result, report = world.audit(capsys)
    assert result.code == 1 and _failed(report) == {"backup_replication"}


def test_a_lagging_pitr_fails(world, capsys):
    world.primary_stub = {"LatestRestorableTime": datetime.now(UTC) - timedelta(minutes=40)}
    result, report = world.audit(capsys)
    assert result.code == 1
    assert _failed(report) == {"pitr"}
    assert "min behind" in json.dumps(report)


def test_a_stale_drill_record_fails(rds, tmp_path, monkeypatch, capsys):
    world = World(rds, tmp_path, monkeypatch)
    for path in world.records.glob("*"):
        path.unlink()
    _drill(world.records, days_ago=93)
    _drill(world.records, days_ago=10, result=Result.FAILED)  # a failed drill does not count
    result, report = world.audit(capsys)
    assert result.code == 1
    assert _failed(report) == {"restore_drill"}
    assert "overdue" in json.dumps(report)


def test_no_drill_record_at_all_fails(world, capsys, tmp_path):
    result = run(
        capsys, "audit", "--stack", "prod", "--record-dir", str(tmp_path / "none"), "--json"
    )
    assert result.code == 1 and _failed(json.loads(result.out)) == {"restore_drill"}


def test_a_time_without_a_zone_is_bad_input(world, capsys):
    result = run(capsys, "audit", "--stack", "prod", "--last-migration", "2026-11-30T12:00:00")
    assert result.code == 2 and "with a zone" in result.err


def test_a_missing_pre_migration_snapshot_fails(world, capsys):
    result, report = world.audit(capsys, "--last-migration", "0043")
    assert result.code == 1 and _failed(report) == {"pre_migration_snapshot"}
    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result, report = world.audit(capsys, "--last-migration", later)
    assert result.code == 1 and _failed(report) == {"pre_migration_snapshot"}
    earlier = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result, report = world.audit(capsys, "--last-migration", earlier)
    assert result.code == 0, report


def test_untagged_snapshots_and_expired_drill_resources_are_listed(world, capsys):
    world.rds.create_db_snapshot(
        DBSnapshotIdentifier="by-hand",
        DBInstanceIdentifier="prism-prod",
        Tags=[{"Key": "owner", "Value": "jane"}],
    )
    make_db(
        world.rds,
        "drill-20261101-db",
        DeletionProtection=False,
        Tags=[
            {"Key": "prism:drill", "Value": "drill-20261101"},
            {"Key": "prism:expires-at", "Value": "2026-11-01T06:00:00Z"},
        ],
    )
    dr = boto3.client("rds", region_name=DR_REGION)  # a drill with --region restores there
    make_db(
        dr,
        "drill-20261102-db",
        DeletionProtection=False,
        CopyTagsToSnapshot=False,
        Tags=[
            {"Key": "prism:drill", "Value": "drill-20261102"},
            {"Key": "prism:expires-at", "Value": "2026-11-02T06:00:00Z"},
        ],
    )
    make_db(
        world.rds,
        "drill-live-db",
        DeletionProtection=False,
        Tags=[
            {"Key": "prism:drill", "Value": "drill-live"},
            {"Key": "prism:expires-at", "Value": "2099-01-01T00:00:00Z"},
        ],
    )
    result, report = world.audit(capsys)
    assert result.code == 0  # listed as warnings: nothing is wrong with the backups
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["untagged_snapshots"]["status"] == "warn"
    assert checks["untagged_snapshots"]["items"] == ["by-hand"]
    assert checks["expired_drill_resources"]["status"] == "warn"
    expired = checks["expired_drill_resources"]["items"]
    # The instance, and its automated snapshot, which copied the instance's tags.
    assert any(":db:drill-20261101-db " in item for item in expired)
    assert any(":snapshot:rds:drill-20261101-db-" in item for item in expired)
    assert any(":us-west-2:" in item and ":db:drill-20261102-db " in item for item in expired)
    assert not any("drill-live-db" in item for item in expired), expired


def test_the_table_output_and_bad_input(world, capsys, monkeypatch):
    from prism_dr import audit_cmd

    monkeypatch.setattr(audit_cmd.out, "width", 200)
    result = run(capsys, "audit", "--stack", "prod", "--record-dir", str(world.records))
    assert result.code == 0 and "audit passed" in result.out and "backup_replication" in result.out
    missing = run(
        capsys, "audit", "--db-instance", "prism-nope", "--record-dir", str(world.records)
    )
    assert missing.code == 2 and "prism-nope does not exist" in missing.err
    both = run(capsys, "audit", "--stack", "prod", "--db-instance", "x")
    assert both.code == 2 and "exactly one" in both.err
