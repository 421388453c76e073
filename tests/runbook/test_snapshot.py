"""`prism-dr snapshot create|list|prune` against the moto server (real boto3, real waiters)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from infra.errors import BadInput
from prism_dr import snapshot_cmd
from runbook import snapshot as snap
from tests.runbook.cli import run
from tests.runbook.conftest import make_db

RDS_SNAPSHOT_ID = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
REPO = Path(__file__).resolve().parents[2]


def _manual_snapshots(rds, db="prism-prod"):
    found = rds.describe_db_snapshots(DBInstanceIdentifier=db, SnapshotType="manual")
    return found["DBSnapshots"]


def _tags(rds, arn):
    return {t["Key"]: t["Value"] for t in rds.list_tags_for_resource(ResourceName=arn)["TagList"]}


def test_create_names_tags_waits_and_records(rds, capsys, tmp_path):
    make_db(rds)
    before = datetime.now(UTC).replace(microsecond=0)
    result = run(
        capsys,
        "snapshot",
        "create",
        "--stack",
        "prod",
        "--migration",
        "0042_Add reports!",
        "--created-by",
        "ci-bot",
        "--record-dir",
        str(tmp_path),
        "--poll",
        "0.1",
        "--json",
    )
    assert result.code == 0, result.err
    printed = json.loads(result.out)
    [taken] = _manual_snapshots(rds)
    assert taken["DBSnapshotIdentifier"] == printed["snapshot_id"]
    assert re.fullmatch(r"prism-prod-premig-0042-add-reports-\d{14}", printed["snapshot_id"])
    assert taken["Status"] == "available"
    tags = _tags(rds, taken["DBSnapshotArn"])
    assert tags["prism:purpose"] == "pre-migration"
    assert tags["prism:migration"] == "0042_Add reports_"  # "!" is not allowed in a tag value
    assert tags["prism:created-by"] == "ci-bot"
    assert tags["prism:stack"] == "prod"
    retain = datetime.fromisoformat(tags["prism:retain-until"].replace("Z", "+00:00"))
    assert before + timedelta(days=30) <= retain <= datetime.now(UTC) + timedelta(days=30)
    # The record: JSON (source of truth) and its line in the log.
    record = json.loads(Path(printed["record"]).read_text())
    assert record["snapshot_id"] == taken["DBSnapshotIdentifier"]
    assert record["migration"] == "0042_Add reports!"
    assert record["db_instance"] == "prism-prod" and record["region"] == "us-east-1"
    log = (tmp_path / "README.md").read_text()
    assert f"`{taken['DBSnapshotIdentifier']}`" in log and "0042_Add reports!" in log


def test_retain_days_are_configurable_but_not_below_the_spec(rds, capsys, tmp_path):
    make_db(rds)
    longer = run(
        capsys,
        "snapshot",
        "create",
        "--db-instance",
        "prism-prod",
        "--migration",
        "m1",
        "--retain-days",
        "45",
        "--record-dir",
        str(tmp_path),
        "--poll",
        "0.1",
        "--json",
    )
    assert longer.code == 0, longer.err
    retain = datetime.fromisoformat(json.loads(longer.out)["retain_until"])
    assert timedelta(days=44) < retain - datetime.now(UTC) <= timedelta(days=45)

    short = run(
        capsys,
        "snapshot",
        "create",
        "--db-instance",
        "prism-prod",
        "--migration",
        "m2",
        "--retain-days",
        "7",
        "--record-dir",
        str(tmp_path),
    )
    assert short.code == 2
    assert short.err.count("\n") == 1 and "--retain-days 7" in short.err
    assert len(_manual_snapshots(rds)) == 1  # only the first


def _stuck_client(states: list[str]):
    # Stubber, because moto's snapshots are `available` the moment they exist: it cannot
    # express a snapshot that stays `creating` (or ends `failed`). Responses are shaped as
    # RDS documents them for DescribeDBInstances, CreateDBSnapshot and DescribeDBSnapshots.
    rds = boto3.client("rds", region_name="us-east-1")
    stubber = Stubber(rds)
    stubber.add_response(
        "describe_db_instances",
        {"DBInstances": [{"DBInstanceIdentifier": "prism-prod", "DBInstanceStatus": "available"}]},
        {"DBInstanceIdentifier": "prism-prod"},
    )
    snapshot = {
        "DBSnapshotIdentifier": "x",
        "DBInstanceIdentifier": "prism-prod",
        "SnapshotType": "manual",
        "Status": "creating",
        "PercentProgress": 0,
    }
    stubber.add_response("create_db_snapshot", {"DBSnapshot": snapshot})
    for state in states:
        stubber.add_response(
            "describe_db_snapshots", {"DBSnapshots": [{**snapshot, "Status": state}]}
        )
    stubber.activate()
    return rds, stubber


def test_a_snapshot_stuck_in_creating_fails_naming_its_state(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    rds, stubber = _stuck_client(["creating", "creating", "creating"])
    monkeypatch.setattr("prism_dr.snapshot_cmd.client", lambda service, region: rds)
    result = run(
        capsys,
        "snapshot",
        "create",
        "--db-instance",
        "prism-prod",
        "--migration",
        "0042",
        "--timeout",
        "1",
        "--poll",
        "0.4",
        "--record-dir",
        str(tmp_path / "records"),
    )
    assert result.code == 1
    assert "still 'creating' after 3 checks" in result.err
    assert "do not migrate" in result.err
    stubber.assert_no_pending_responses()  # the waiter polled exactly MaxAttempts times
    assert not (tmp_path / "records").exists()  # nothing recorded as if it were confirmed


def test_a_snapshot_that_fails_stops_the_waiter_at_once(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    rds, stubber = _stuck_client(["creating", "failed"])
    monkeypatch.setattr("prism_dr.snapshot_cmd.client", lambda service, region: rds)
    result = run(
        capsys,
        "snapshot",
        "create",
        "--db-instance",
        "prism-prod",
        "--migration",
        "0042",
        "--timeout",
        "60",
        "--poll",
        "0.1",
        "--record-dir",
        str(tmp_path / "records"),
    )
    assert result.code == 1
    assert "ended 'failed'" in result.err
    stubber.assert_no_pending_responses()


def test_db_not_found_exits_2_and_creates_nothing(moto, rds, tmp_path):
    make_db(rds, "prism-other")
    records = tmp_path / "records"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prism_dr",
            "snapshot",
            "create",
            "--db-instance",
            "prism-gone",
            "--migration",
            "0042",
            "--record-dir",
            str(records),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **moto.env()},
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
    assert "prism-gone does not exist" in done.stderr
    assert rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == []
    assert not records.exists()


def test_a_db_that_is_not_available_is_refused(rds, capsys, tmp_path):
    make_db(rds)
    rds.stop_db_instance(DBInstanceIdentifier="prism-prod")
    result = run(
        capsys,
        "snapshot",
        "create",
        "--stack",
        "prod",
        "--migration",
        "0042",
        "--record-dir",
        str(tmp_path),
    )
    assert result.code == 2
    assert "'stopped', not 'available'" in result.err and result.err.count("\n") == 1
    assert _manual_snapshots(rds) == []


@pytest.mark.parametrize(
    "migration", ["0042_add_reports", "../../etc", "--x--", "Ünïcode 2026", "a" * 256, "_"]
)
def test_the_name_is_a_valid_rds_identifier_whatever_the_migration(migration):
    name = snap.snapshot_identifier("prism-prod", migration, datetime(2026, 12, 1, tzinfo=UTC))
    assert RDS_SNAPSHOT_ID.fullmatch(name) and len(name) <= 255
    assert name.startswith("prism-prod-premig-") and name.endswith("-20261201000000")


def test_a_migration_id_must_be_usable():
    for bad in ("", "   ", "a\nb", "a" * 257):
        with pytest.raises(BadInput):
            snap.check_migration_id(bad)


def _snapshot(rds, name, tags, db="prism-prod"):
    rds.create_db_snapshot(DBSnapshotIdentifier=name, DBInstanceIdentifier=db, Tags=tags)


def _premig(retain_until: str | None, migration="0001"):
    tags = [
        {"Key": "prism:purpose", "Value": "pre-migration"},
        {"Key": "prism:migration", "Value": migration},
    ]
    if retain_until is not None:
        tags.append({"Key": "prism:retain-until", "Value": retain_until})
    return tags


@pytest.fixture
def mixed_snapshots(rds):
    past = snap.utc_stamp(datetime.now(UTC) - timedelta(days=1))
    future = snap.utc_stamp(datetime.now(UTC) + timedelta(days=1))
    # The instance carries expired-looking pre-migration tags and copies tags to snapshots, so
    # its automated `rds:` snapshot carries them too: the worst case for a pruner.
    make_db(rds, Tags=_premig(past))
    make_db(rds, "prism-staging", Tags=[])
    _snapshot(rds, "expired-1", _premig(past, "0001"))
    _snapshot(rds, "expired-2", _premig("2020-01-01T00:00:00Z", "0002"))
    _snapshot(rds, "unexpired", _premig(future, "0003"))
    _snapshot(rds, "no-expiry", _premig(None, "0004"))
    _snapshot(rds, "bad-expiry", _premig("next tuesday", "0005"))
    _snapshot(rds, "by-hand", [{"Key": "owner", "Value": "jane"}])
    _snapshot(rds, "staging-expired", _premig(past), db="prism-staging")
    [automated] = rds.describe_db_snapshots(
        DBInstanceIdentifier="prism-prod", SnapshotType="automated"
    )["DBSnapshots"]
    assert automated["DBSnapshotIdentifier"].startswith("rds:")
    assert _tags(rds, automated["DBSnapshotArn"])["prism:retain-until"] == past
    return automated["DBSnapshotIdentifier"]


def _all_ids(rds):
    return {s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots()["DBSnapshots"]}


def test_prune_is_a_dry_run_without_yes(rds, capsys, mixed_snapshots):
    before = _all_ids(rds)
    result = run(capsys, "snapshot", "prune", "--stack", "prod", "--json")
    assert result.code == 0, result.err
    plan = {s["snapshot"]: s["action"] for s in json.loads(result.out)["snapshots"]}
    assert {k for k, v in plan.items() if v == "would delete"} == {"expired-1", "expired-2"}
    assert plan[mixed_snapshots] == "keep"
    assert _all_ids(rds) == before


def test_prune_deletes_exactly_the_expired_pre_migration_snapshots(rds, capsys, mixed_snapshots):
    before = _all_ids(rds)
    result = run(capsys, "snapshot", "prune", "--stack", "prod", "--yes")
    assert result.code == 0, result.err
    assert _all_ids(rds) == before - {"expired-1", "expired-2"}
    assert mixed_snapshots in _all_ids(rds) and "staging-expired" in _all_ids(rds)
    assert "deleted" in result.out


def test_list_shows_pre_migration_snapshots_with_age_expiry_and_migration(
    rds, capsys, mixed_snapshots, monkeypatch
):
    result = run(capsys, "snapshot", "list", "--db-instance", "prism-prod", "--json")
    assert result.code == 0, result.err
    rows = {r["snapshot"]: r for r in json.loads(result.out)["snapshots"]}
    assert set(rows) == {"expired-1", "expired-2", "unexpired", "no-expiry", "bad-expiry"}
    assert rows["unexpired"]["migration"] == "0003"
    assert 0 < rows["unexpired"]["expires_in_seconds"] <= 86400
    assert rows["expired-2"]["expires_in_seconds"] < 0
    assert rows["no-expiry"]["retain_until"] is None
    assert rows["unexpired"]["age_seconds"] >= 0
    monkeypatch.setattr(snapshot_cmd.out, "width", 200)  # one row per line, as in a wide terminal
    table = run(capsys, "snapshot", "list", "--db-instance", "prism-prod")
    assert table.code == 0 and "unexpired" in table.out and "no expiry tag" in table.out


def test_an_unwritable_record_dir_is_refused_before_the_snapshot(rds, capsys, tmp_path):
    make_db(rds)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run(
        capsys,
        "snapshot",
        "create",
        "--stack",
        "prod",
        "--migration",
        "0042",
        "--record-dir",
        str(blocker / "records"),
    )
    assert result.code == 2 and "cannot be written" in result.err
    assert _manual_snapshots(rds) == []


@pytest.mark.parametrize("width", [40, 80, 120, 250])
def test_list_and_prune_never_cut_an_identifier(rds, capsys, monkeypatch, width):
    make_db(rds)
    ids = [f"prism-prod-premig-0042-add-reports-{n}-20261130120000" for n in range(5)]
    for identifier in ids:
        _snapshot(rds, identifier, _premig("2020-01-01T00:00:00Z", "0042_add_reports"))
    monkeypatch.setattr(snapshot_cmd.out, "width", width)
    for argv in (("list",), ("prune",)):
        result = run(capsys, "snapshot", *argv, "--db-instance", "prism-prod")
        assert result.code == 0, result.err
        assert "…" not in result.out
        for identifier in ids:  # whole, on one line: five rows that no longer look alike
            assert any(identifier in line for line in result.out.splitlines()), result.out
    if width >= 120:
        assert "┃ snapshot" in result.out  # wide enough: still a table
