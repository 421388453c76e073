"""`prism-dr audit` against the moto server: a healthy prod instance passes, and each bad
property alone fails exactly its own check (exit 1)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
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
        self.tagging_refused = False
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
        if service == "resourcegroupstaggingapi" and self.tagging_refused:
            # Stubber: moto answers every GetResources; a role without tag:GetResources gets
            # this refusal (Resource Groups Tagging API reference, GetResources, Errors).
            tagging = boto3.client(service, region_name=region)
            stubber = Stubber(tagging)
            stubber.add_client_error(
                "get_resources", "AccessDeniedException", "not authorized: tag:GetResources", 400
            )
            stubber.activate()
            return tagging
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
    assert missing.code == 1 and "prism-nope does not exist" in missing.out
    both = run(capsys, "audit", "--stack", "prod", "--db-instance", "x")
    assert both.code == 2 and "exactly one" in both.err


# ---------------------------------------------------------------------------------------------
# Issue 18: each check on its own, the right drills, the project's records.


def test_a_failing_tagging_api_fails_only_its_check(world, capsys):
    world.tagging_refused = True
    result, report = world.audit(capsys, "--last-migration", "0042")
    assert result.code == 1, result.err
    assert _failed(report) == {"expired_drill_resources"}
    [check] = [c for c in report["checks"] if c["name"] == "expired_drill_resources"]
    assert "AccessDeniedException" in check["detail"]
    assert len(report["checks"]) == 9  # every other check still judged and reported


def test_a_missing_database_is_a_failed_check_not_bad_input(world, capsys, tmp_path):
    result = run(
        capsys,
        "audit",
        "--db-instance",
        "prism-nope",
        "--record-dir",
        str(world.records),
        "--json",
    )
    assert result.code == 1, result.err
    report = json.loads(result.out)
    failed = _failed(report)
    assert {"automated_backups", "pitr", "deletion_protection", "encryption"} <= failed
    details = {c["name"]: c["detail"] for c in report["checks"]}
    assert "prism-nope does not exist" in details["pitr"]


def test_only_drills_of_the_audited_database_count(world, capsys):
    for path in world.records.glob("*"):
        path.unlink()
    write_record(
        DrillRecord(
            started_at=datetime.now(UTC) - timedelta(days=3),
            environment="prod",
            backup_source="other-app-2026-11-30.dump (custom)",
            result=Result.PASSED,
            completed_by="ops",
            tier=Tier.STANDARD,
        ),
        world.records,
    )
    write_record(
        DrillRecord(
            started_at=datetime.now(UTC) - timedelta(days=2),
            environment="prod",
            backup_source="prism-production point-in-time backups in us-east-1 (latest)",
            result=Result.PASSED,
            completed_by="ops",
            tier=Tier.STANDARD,
        ),
        world.records,
    )
    result, report = world.audit(capsys)
    assert result.code == 1 and _failed(report) == {"restore_drill"}
    assert "2 record(s) of other backups" in json.dumps(report)
    write_record(
        DrillRecord(
            started_at=datetime.now(UTC) - timedelta(days=1),
            environment="prod",
            backup_source="snapshot rds:prism-prod-2026-11-30-03-00 (snapshot:rds:prism-prod)",
            result=Result.PASSED,
            completed_by="ops",
            tier=Tier.STANDARD,
        ),
        world.records,
    )
    result, report = world.audit(capsys)
    assert result.code == 0, report


@pytest.fixture
def checkout(tmp_path):
    """A prism-infra project directory as CI checks it out: stack files, records, git."""
    from infra.offline import PROJECT_DIR

    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.prod.yaml"):
        shutil.copy(PROJECT_DIR / name, root)
    return root


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
        check=True,
        capture_output=True,
    )


def test_the_record_dir_is_the_projects_wherever_audit_runs(
    world, capsys, checkout, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # not the checkout: a relative default would find nothing
    argv = ("audit", "--stack", "prod", "--project-dir", str(checkout), "--json")
    result = run(capsys, *argv)
    assert result.code == 1
    report = json.loads(result.out)
    assert _failed(report) == {"restore_drill"}
    [check] = [c for c in report["checks"] if c["name"] == "restore_drill"]
    assert str(checkout / "docs/audit/restore-drills") in check["detail"]
    assert "does not exist" in check["detail"]
    shutil.copytree(world.records, checkout / "docs/audit/restore-drills")
    result = run(capsys, *argv)
    assert result.code == 0, result.out


def test_a_corrupt_drill_record_fails_the_drill_check_and_the_rest_is_reported(world, capsys):
    (world.records / "2026-11-01-prod.json").write_text("{not json")
    result, report = world.audit(capsys)
    assert result.code == 1
    assert _failed(report) == {"restore_drill"}
    assert "2026-11-01-prod.json" in json.dumps(report)


def test_the_scheduled_audit_finds_the_last_migration_in_the_trailers(
    world, capsys, checkout, monkeypatch
):
    shutil.copytree(world.records, checkout / "docs/audit/restore-drills")
    _git(checkout, "init", "-q")
    _git(checkout, "add", ".")
    _git(checkout, "commit", "-q", "-m", "add reports\n\nPrism-Migration: 0042")
    argv = ("audit", "--stack", "prod", "--project-dir", str(checkout), "--json")
    result = run(capsys, *argv)
    assert result.code == 0, result.out
    checks = {c["name"]: c for c in json.loads(result.out)["checks"]}
    assert checks["pre_migration_snapshot"]["status"] == "pass"
    assert "Prism-Migration trailer" in checks["pre_migration_snapshot"]["detail"]
    (checkout / "x").write_text("x")
    _git(checkout, "add", "x")
    _git(checkout, "commit", "-q", "-m", "drop a column\n\nPrism-Migration: 0043")
    result = run(capsys, *argv)
    assert result.code == 1
    assert _failed(json.loads(result.out)) == {"pre_migration_snapshot"}
    assert "prism:migration=0043" in result.out


def test_the_last_migration_comes_from_a_snapshot_record_without_git(world, capsys, checkout):
    from runbook.snapshot_record import SnapshotRecord
    from runbook.snapshot_record import write_record as write_snapshot_record

    shutil.copytree(world.records, checkout / "docs/audit/restore-drills")
    now = datetime.now(UTC)
    write_snapshot_record(
        SnapshotRecord(
            snapshot_id="prism-prod-premig-0044-20261201000000",
            db_instance="prism-prod",
            region="us-east-1",
            migration="0044",
            created_at=now,
            confirmed_at=now,
            created_by="ci",
        ),
        checkout / "docs/audit/snapshots",
    )
    result = run(capsys, "audit", "--stack", "prod", "--project-dir", str(checkout), "--json")
    assert result.code == 1  # the snapshot of 0044 is gone from the account
    assert _failed(json.loads(result.out)) == {"pre_migration_snapshot"}
    assert "prism:migration=0044" in result.out and "snapshot record" in result.out


def test_a_malformed_retain_until_is_flagged(world, capsys):
    world.rds.create_db_snapshot(
        DBSnapshotIdentifier="prism-prod-premig-0041-20261101000000",
        DBInstanceIdentifier="prism-prod",
        Tags=[
            {"Key": "prism:purpose", "Value": "pre-migration"},
            {"Key": "prism:retain-until", "Value": "next month"},
        ],
    )
    result, report = world.audit(capsys)
    assert result.code == 0  # a warning: the backups are fine, the cost is not bounded
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["untagged_snapshots"]["status"] == "warn"
    assert checks["untagged_snapshots"]["items"] == [
        "prism-prod-premig-0041-20261101000000 (unreadable prism:retain-until: 'next month')"
    ]
