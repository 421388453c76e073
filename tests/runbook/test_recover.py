"""`prism-dr recover` through a fake StackEngine and a fake Cloudflare, with boto3 on the moto
server: the point is checked before anything is created, the recovery stack is prod's own
program with a restore block, /ready is awaited, and the cutover moves and moves back."""

from __future__ import annotations

import io
import json
import shutil
import sys
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from infra.errors import OutsideWindow
from infra.offline import PROJECT_DIR, Secret
from prism_dr import recover_cmd
from recovery import aws as runbook_aws
from recovery.cloudflare import tunnel_target
from recovery.points import Point, Source, check_point
from tests.runbook.cli import run
from tests.runbook.conftest import make_db
from tests.runbook.fakes import APP_SECRET_ARN, FakeCloudflare, FakeEngine

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_aws.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_cloudflare.*"),
]

REAL_MAKE_ACCESS = recover_cmd.make_access
ACCOUNT = "3f1e9a0c2b7d4e5f8a9b0c1d2e3f4a5b"
ZONE = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
HOST = "api.prismhub.io"
PROD_TUNNEL = "6ff42ae2-765d-4adf-8112-31c55c1551ef"
SECRETS = {
    "CLERK_SECRET_KEY": "sk_live_notreal_0123456789abcdef",
    "CLERK_PUBLISHABLE_KEY": "pk_live_notreal_0123456789",
    "REDIS_URL": "rediss://default:notreal-redis-pass@cache.prismhub.io:6379",
}


@pytest.fixture
def project(tmp_path):
    """The project with Pulumi.prod.yaml as a real deployment has it: no example values."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", root)
    doc = yaml.safe_load((PROJECT_DIR / "Pulumi.prod.yaml").read_text())
    cfg = doc["config"]
    cfg["prism-infra:tunnel"] = {"accountId": ACCOUNT, "zoneId": ZONE, "hostname": HOST}
    cfg["prism-infra:alarms"]["email"] = "ops@prismhub.io"
    cfg["prism-infra:apiHost"]["image"] = "ghcr.io/prismhub/prism-api@sha256:" + "5" * 64
    cfg["prism-infra:apiHost"]["extraEgressCidr"] = "10.60.0.0/24"
    (root / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    return root


@pytest.fixture
def prod(rds):
    make_db(rds)
    ssm = boto3.client("ssm", region_name="us-east-1")
    for env, value in SECRETS.items():
        ssm.put_parameter(Name=f"/prism/prod/api/{env}", Value=value, Type="SecureString")
    return rds


@pytest.fixture
def engine(project, fresh_db, monkeypatch):
    fake = FakeEngine(project, fresh_db, prod_outputs={"tunnelId": PROD_TUNNEL})
    # A durable backend, as `recover` requires (the fake engine never reaches it).
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://prism-pulumi-state-123456789012")
    monkeypatch.setattr(recover_cmd, "make_engine", lambda: fake)
    monkeypatch.setattr(recover_cmd, "base_url", lambda hostname: fake.api_url)
    monkeypatch.setattr(recover_cmd, "make_access", lambda region, direct: fake.access())
    yield fake
    fake.close()


@pytest.fixture
def cloudflare(monkeypatch):
    fake = FakeCloudflare(
        records={HOST: tunnel_target(PROD_TUNNEL)},
        ingress={
            PROD_TUNNEL: [
                {"hostname": HOST, "service": "http://localhost:8080"},
                {"service": "http_status:404"},
            ]
        },
    )
    monkeypatch.setattr(recover_cmd, "make_cutover", lambda: fake)
    return fake


def _recover(capsys, project, *extra, yes=True):
    return run(
        capsys,
        "recover",
        "--stack",
        "prod",
        "--project-dir",
        str(project),
        "--name",
        "recovery-t1",
        "--json",
        *(("--yes",) if yes else ()),
        *extra,
    )


def test_recover_latest_stands_up_prods_program_with_a_restore_and_waits_for_ready(
    prod, engine, project, capsys
):
    result = _recover(capsys, project)
    assert result.code == 0, result.err
    assert "Recovery plan" in result.err and "prism-prod-rec-t1" in result.err  # plan first
    assert engine.calls == [("up", "recovery-t1")]
    run_ = engine.runs["recovery-t1"]
    [db] = run_.of_type("aws:rds/instance:Instance")
    inputs = db.inputs
    # A new instance restored from prod's latest restorable time; prod itself untouched.
    assert inputs["identifier"] == "prism-prod-rec-t1"
    assert inputs["restoreToPointInTime"]["sourceDbInstanceIdentifier"] == "prism-prod"
    assert inputs["restoreToPointInTime"]["useLatestRestorableTime"] is True
    assert inputs["tags"]["prism:restored-from"] == "prism-prod@latest"
    # Prod's safety settings: it may become production.
    assert inputs["deletionProtection"] is True and db.protect is True
    assert inputs["skipFinalSnapshot"] is False
    assert inputs["backupRetentionPeriod"] == 30 and inputs["multiAz"] is True
    assert run_.of_type(
        "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
    )
    # Its own hostname and tunnel; the recovery stack's secrets hold the runtime secrets.
    [dns] = run_.of_type("cloudflare:index/dnsRecord:DnsRecord")
    assert dns.inputs["name"] == "api-recovery-t1.prismhub.io"
    params = {
        p.inputs["name"]: p.inputs.get("value") for p in run_.of_type("aws:ssm/parameter:Parameter")
    }
    assert isinstance(params["/prism/recovery-t1/api/CLERK_SECRET_KEY"], Secret)
    assert params["/prism/recovery-t1/api/CLERK_SECRET_KEY"].value == SECRETS["CLERK_SECRET_KEY"]
    assert "/prism/recovery-t1/database/host" in params  # DATABASE_URL is built from these
    # No secret value in the engine's plain config, the outputs or anything printed.
    shown = result.out + result.err + json.dumps(engine.config) + json.dumps(engine.tags)
    for value in SECRETS.values():
        assert value not in shown
    report = json.loads(result.out)
    assert [s["name"] for s in report["steps"]] == [
        "recovery stack up",
        "application role",
        "/ready 200 through the recovery hostname",
    ]
    # The API's role took the recovery stack's own password, set as the master user.
    assert report["steps"][1]["detail"] in (
        "prism_api: password set",
        "prism_api: created, with its grants",
    )
    assert engine.app_password not in shown
    assert report["rto_met"] is True and report["rto_seconds"] == 4 * 3600
    assert report["kept_instance"] == "prism-prod"
    assert any("secrets-management" in step for step in report["manual_steps"])
    assert report["cutover_from"] is None and report["reconcile"] == []
    assert [i["DBInstanceIdentifier"] for i in prod.describe_db_instances()["DBInstances"]] == [
        "prism-prod"
    ]


# Offsets, not times: parameters must be the same in every pytest-xdist worker's collection.
@pytest.mark.parametrize(
    "offset", [timedelta(days=-2), timedelta(hours=1)], ids=["two-days-ago", "in-an-hour"]
)
def test_a_point_outside_the_window_exits_2_and_creates_nothing(
    prod, engine, project, capsys, offset
):
    point = (datetime.now(UTC) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = _recover(capsys, project, "--point", point)
    assert result.code == 2
    assert "outside the restorable window" in result.err
    assert result.err.count("\n") == 1
    assert engine.calls == []
    assert len(prod.describe_db_instances()["DBInstances"]) == 1


def test_a_missing_snapshot_exits_2_and_a_present_one_is_restored(prod, engine, project, capsys):
    missing = _recover(capsys, project, "--point", "snapshot:nope")
    assert missing.code == 2 and "snapshot nope does not exist" in missing.err
    assert engine.calls == []
    prod.create_db_snapshot(
        DBSnapshotIdentifier="prism-prod-premig-0042-20261201000000",
        DBInstanceIdentifier="prism-prod",
    )
    result = _recover(capsys, project, "--point", "snapshot:prism-prod-premig-0042-20261201000000")
    assert result.code == 0, result.err
    [db] = engine.runs["recovery-t1"].of_type("aws:rds/instance:Instance")
    assert db.inputs["snapshotIdentifier"] == "prism-prod-premig-0042-20261201000000"


def test_check_point_accepts_a_time_inside_the_window():
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    source = Source(
        region="us-east-1",
        earliest=now - timedelta(days=30),
        latest=now - timedelta(minutes=5),
        description="prism-prod backups",
    )
    check_point(Point.parse("2026-11-30T03:00:00Z"), source, now)
    with pytest.raises(OutsideWindow):
        check_point(Point.parse("2026-12-01T08:58:00Z"), source, now)  # after latest
    with pytest.raises(OutsideWindow):
        check_point(Point.parse("2026-10-01T00:00:00Z"), source, now)  # before earliest


def test_missing_secrets_exit_2_before_anything_is_created(rds, engine, project, capsys):
    make_db(rds)  # no SSM parameters for prod
    result = _recover(capsys, project)
    assert result.code == 2
    assert "PRISM_RECOVERY_CLERK_SECRET_KEY" in result.err
    assert engine.calls == []


def test_a_recovery_that_never_gets_ready_fails_and_stays_for_inspection(
    prod, engine, project, capsys, monkeypatch
):
    """The role is set from a secret other than the stack's (prod's, say): it logs in, but
    the API, which reads the stack's own, never does."""
    wrong = engine.access()
    right = wrong.credentials
    wrong.credentials = lambda arn: (
        ("prism_api", "not-the-stacks-password") if arn == APP_SECRET_ARN else right(arn)
    )
    monkeypatch.setattr(recover_cmd, "make_access", lambda region, direct: wrong)
    # --local-state: the state backend is the default directory, accepted when asked.
    result = _recover(
        capsys, project, "--local-state", "--ready-timeout", "0.02", "--ready-interval", "0.2"
    )
    assert result.code == 1
    assert "answered 503" in result.err and "recovery-t1 stays up" in result.err
    assert ("destroy", "recovery-t1") not in engine.calls


def test_a_role_that_cannot_be_set_fails_before_the_wait_and_says_how_to_continue(
    prod, project, capsys, monkeypatch
):
    broken = FakeEngine(project, "postgresql://nobody@127.0.0.1:1/none", {"tunnelId": PROD_TUNNEL})
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://prism-pulumi-state-123456789012")
    monkeypatch.setattr(recover_cmd, "make_engine", lambda: broken)
    monkeypatch.setattr(recover_cmd, "base_url", lambda hostname: broken.api_url)
    monkeypatch.setattr(recover_cmd, "make_access", lambda region, direct: broken.access())
    try:
        result = _recover(capsys, project, "--ready-timeout", "5")
    finally:
        broken.close()
    assert result.code == 1
    assert "recovery-t1 is up, but its API's role could not be set" in result.err
    assert "prism-dr recover --stack prod --name recovery-t1" in result.err
    assert "answered" not in result.err  # /ready was not waited for
    assert ("destroy", "recovery-t1") not in broken.calls


def test_without_the_port_forward_tools_nothing_is_created_and_it_is_exit_2(
    prod, engine, project, capsys, monkeypatch
):
    monkeypatch.setattr(recover_cmd, "make_access", REAL_MAKE_ACCESS)
    monkeypatch.setenv("PATH", "/nonexistent")
    result = _recover(capsys, project)
    assert result.code == 2
    assert "session-manager-plugin not found on PATH" in result.err and "--direct" in result.err
    assert engine.calls == []


def _ingress(run_) -> list[dict]:
    [config] = run_.of_type(
        "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
    )
    return [
        {k: v for k, v in rule.items() if k in ("hostname", "service")}
        for rule in config.inputs["config"]["ingresses"]
    ]


def test_cutover_declares_the_hostname_moves_it_probes_it_and_undo_uses_the_record(
    prod, engine, project, cloudflare, capsys, monkeypatch
):
    # Where the hostname pointed before is not prod's tunnel (a load balancer, say): the undo
    # must put back what was there, not what prod's outputs suggest.
    cloudflare.records[HOST] = "prism-edge.prismhub.net"
    probed: list[str] = []

    def base_url(hostname):
        probed.append(hostname)
        return engine.api_url

    monkeypatch.setattr(recover_cmd, "base_url", base_url)
    result = _recover(capsys, project, "--cutover")
    assert result.code == 0, result.err
    recovery_tunnel = engine.outputs("recovery-t1")["tunnelId"]
    # The recovery stack itself declares the production hostname, ahead of the catch-all, so
    # a later `up` of it keeps the rule instead of dropping it.
    rules = _ingress(engine.runs["recovery-t1"])
    assert rules[0]["hostname"] == "api-recovery-t1.prismhub.io"
    assert rules[1] == {"hostname": HOST, "service": "http://localhost:8080"}
    assert "hostname" not in rules[-1]
    assert engine.outputs("recovery-t1")["cutoverFrom"] == "prism-edge.prismhub.net"
    # Only the record moves through the API; the rule existed before it did.
    assert cloudflare.calls == [f"point {HOST} {tunnel_target(recovery_tunnel)}"]
    assert cloudflare.records[HOST] == tunnel_target(recovery_tunnel)
    assert probed[-1] == HOST  # /ready probed on the production hostname after the move
    report = json.loads(result.out)
    assert report["cutover_from"] == "prism-edge.prismhub.net"
    assert [s["name"] for s in report["steps"]][-2:] == [
        "cutover",
        "/ready 200 on the production hostname",
    ]
    assert any("pulumi up -s prod" in line for line in report["reconcile"])

    back = run(
        capsys,
        "recover",
        "--stack",
        "prod",
        "--project-dir",
        str(project),
        "--name",
        "recovery-t1",
        "--undo-cutover",
        "--yes",
    )
    assert back.code == 0, back.err
    assert cloudflare.records[HOST] == "prism-edge.prismhub.net"


def test_a_cutover_whose_ready_fails_on_the_hostname_is_exit_1_with_the_undo(
    prod, engine, project, cloudflare, capsys, monkeypatch
):
    monkeypatch.setattr(
        recover_cmd,
        "base_url",
        lambda hostname: "http://127.0.0.1:9" if hostname == HOST else engine.api_url,
    )
    result = _recover(capsys, project, "--cutover", "--ready-timeout", "0")
    assert result.code == 1
    assert f"{HOST} now points at recovery-t1" in result.err
    assert "prism-dr recover --stack prod --name recovery-t1 --undo-cutover" in result.err


def test_undo_without_a_recorded_cutover_changes_nothing(prod, engine, project, cloudflare, capsys):
    assert _recover(capsys, project).code == 0  # up, never cut over
    back = run(
        capsys,
        "recover",
        "--stack",
        "prod",
        "--project-dir",
        str(project),
        "--name",
        "recovery-t1",
        "--undo-cutover",
        "--yes",
    )
    assert back.code == 2 and "records no cutoverFrom" in back.err
    assert cloudflare.calls == []


def test_cutover_asks_first_and_no_leaves_the_hostname(
    prod, engine, project, cloudflare, capsys, monkeypatch
):
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\nn\n"))  # create: yes; move: no
    result = _recover(capsys, project, "--cutover", yes=False)
    assert result.code == 130 and "aborted" in result.err
    assert engine.calls == [("up", "recovery-t1")]
    assert cloudflare.records[HOST] == tunnel_target(PROD_TUNNEL)
    assert cloudflare.calls == []


def test_the_plan_is_confirmed_before_anything_is_created(
    prod, engine, project, capsys, monkeypatch
):
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    result = _recover(capsys, project, yes=False)
    assert result.code == 130
    assert "Recovery plan" in result.err and "Create the recovery stack recovery-t1" in result.err
    assert engine.calls == []


def test_dry_run_prints_plan_resources_and_cost_and_creates_nothing(
    prod, project, capsys, monkeypatch
):
    def no_engine():
        raise AssertionError("a dry run needs no engine")

    monkeypatch.setattr(recover_cmd, "make_engine", no_engine)
    monkeypatch.setattr(recover_cmd.out, "width", 200)
    argv = ("recover", "--stack", "prod", "--project-dir", str(project), "--name", "recovery-d1")
    result = run(capsys, *argv, "--dry-run")
    assert result.code == 0, result.err
    assert "dry run: nothing is created" in result.out
    assert "aws:rds/instance:Instance" in result.out and "database-instance" in result.out
    assert "db.t4g.medium $0.065/h x 2 (Multi-AZ)" in result.out
    assert "prism-dr recover --stack prod --name recovery-d1 --point latest" in result.out
    report = json.loads(run(capsys, *argv, "--dry-run", "--json", "--cutover").out)
    assert report["dry_run"] is True
    types = {r["type"] for r in report["resources"]}
    assert "aws:rds/instance:Instance" in types
    assert report["cost"].startswith("$")
    assert len(prod.describe_db_instances()["DBInstances"]) == 1


def test_without_the_pulumi_cli_nothing_is_created_and_it_is_exit_2(
    prod, project, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `pulumi` on it
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://prism-pulumi-state-123456789012")
    result = _recover(capsys, project)
    assert result.code == 2 and "Pulumi CLI is not on PATH" in result.err
    assert "--dry-run" in result.err


def test_a_rerun_with_the_same_name_continues_that_recovery(prod, engine, project, capsys):
    from recovery.engine import EngineError

    engine.fail, engine.left_behind = EngineError("InsufficientDBInstanceCapacity"), 4
    first = run(capsys, "recover", "--stack", "prod", "--project-dir", str(project), "--yes")
    assert first.code == 1
    [name] = [stack for verb, stack in engine.calls if verb == "up"]
    # The hint is the exact command, with the default name spelled out.
    assert (
        f"`prism-dr recover --stack prod --name {name} --point latest --project-dir {project}`"
        in first.err
    )
    engine.fail = None
    again = run(
        capsys,
        "recover",
        "--stack",
        "prod",
        "--name",
        name,
        "--point",
        "latest",
        "--project-dir",
        str(project),
        "--yes",
    )
    assert again.code == 0, again.err
    assert f"continuing the recovery stack {name}" in again.out
    assert [c for c in engine.calls if c[0] == "up"] == [("up", name), ("up", name)]


def test_a_rerun_after_the_cutover_keeps_serving_the_hostname(
    prod, engine, project, cloudflare, capsys
):
    assert _recover(capsys, project, "--cutover").code == 0
    again = _recover(capsys, project)  # e.g. after fixing something, without --cutover
    assert again.code == 0, again.err
    assert {"hostname": HOST, "service": "http://localhost:8080"} in _ingress(
        engine.runs["recovery-t1"]
    )
    assert engine.outputs("recovery-t1")["cutoverFrom"] == tunnel_target(PROD_TUNNEL)


def test_region_recovers_from_the_replicated_backups(prod, engine, project, capsys, monkeypatch):
    instance = prod.describe_db_instances()["DBInstances"][0]
    arn = "arn:aws:rds:us-west-2:123456789012:auto-backup:ab-" + "b" * 26
    now = datetime.now(UTC)

    def client(service, region):
        if service == "rds" and region == "us-west-2":
            # Stubber, because moto does not implement cross-region backup replication. The
            # answer has the shape of DescribeDBInstanceAutomatedBackups in the DR region.
            dr = boto3.client("rds", region_name=region)
            stub = Stubber(dr)
            stub.add_response(
                "describe_db_instance_automated_backups",
                {
                    "DBInstanceAutomatedBackups": [
                        {
                            "DBInstanceArn": instance["DBInstanceArn"],
                            "DbiResourceId": instance["DbiResourceId"],
                            "Region": "us-east-1",
                            "DBInstanceIdentifier": "prism-prod",
                            "RestoreWindow": {
                                "EarliestTime": now - timedelta(days=30),
                                "LatestTime": now - timedelta(minutes=8),
                            },
                            "Status": "replicating",
                            "DBInstanceAutomatedBackupsArn": arn,
                        }
                    ]
                },
                {"DBInstanceIdentifier": "prism-prod"},
            )
            stub.activate()
            return dr
        return runbook_aws.client(service, region)

    monkeypatch.setattr(recover_cmd, "client", client)
    refused = _recover(capsys, project, "--region", "us-west-2")
    # Prod requires replicated backups, and the only replica region is this one.
    assert refused.code == 2 and "--replicate-to REGION" in refused.err
    assert engine.calls == []
    result = _recover(capsys, project, "--region", "us-west-2", "--replicate-to", "us-east-2")
    assert result.code == 0, result.err
    run_ = engine.runs["recovery-t1"]
    [db] = run_.of_type("aws:rds/instance:Instance")
    assert db.inputs["restoreToPointInTime"]["sourceDbInstanceAutomatedBackupsArn"] == arn
    assert "sourceDbInstanceIdentifier" not in db.inputs["restoreToPointInTime"]
    assert engine.config["recovery-t1"]["aws:region"] == "us-west-2"
    # Nothing is created in the lost home region: no provider points there, the copies of
    # the recovered instance's backups go to the third region.
    providers = {p.inputs.get("region") for p in run_.of_type("pulumi:providers:aws")}
    assert "us-east-1" not in providers and "us-east-2" in providers
    database = json.loads(engine.config["recovery-t1"]["prism-infra:database"])
    assert database["backupReplication"]["region"] == "us-east-2"
    assert json.loads(result.out)["region"] == "us-west-2"


def test_a_deleted_instance_is_recovered_from_its_retained_backups(
    rds, engine, project, capsys, monkeypatch
):
    ssm = boto3.client("ssm", region_name="us-east-1")
    for env, value in SECRETS.items():
        ssm.put_parameter(Name=f"/prism/prod/api/{env}", Value=value, Type="SecureString")
    arn = "arn:aws:rds:us-east-1:123456789012:auto-backup:ab-" + "c" * 26
    now = datetime.now(UTC)

    def client(service, region):
        if service == "rds":
            # Stubber, because moto drops an instance's automated backups with it and shows no
            # RestoreWindow or ARN for them: it cannot express backups retained after a loss.
            home = boto3.client("rds", region_name=region)
            stub = Stubber(home)
            stub.add_client_error(
                "describe_db_instances",
                "DBInstanceNotFound",
                "DBInstance prism-prod not found.",
                404,
                expected_params={"DBInstanceIdentifier": "prism-prod"},
            )
            stub.add_response(
                "describe_db_instance_automated_backups",
                {
                    "DBInstanceAutomatedBackups": [
                        {
                            "DBInstanceIdentifier": "prism-prod",
                            "Region": "us-east-1",
                            "Status": "retained",
                            "RestoreWindow": {
                                "EarliestTime": now - timedelta(days=30),
                                "LatestTime": now - timedelta(hours=2),
                            },
                            "DBInstanceAutomatedBackupsArn": arn,
                        }
                    ]
                },
                {"DBInstanceIdentifier": "prism-prod"},
            )
            stub.activate()
            return home
        return runbook_aws.client(service, region)

    monkeypatch.setattr(recover_cmd, "client", client)
    inside = (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = _recover(capsys, project, "--point", inside)
    assert result.code == 0, result.err
    [db] = engine.runs["recovery-t1"].of_type("aws:rds/instance:Instance")
    restore = db.inputs["restoreToPointInTime"]
    assert restore["sourceDbInstanceAutomatedBackupsArn"] == arn
    assert restore["restoreTime"] == inside


def test_the_table_output_ends_with_rto_and_manual_steps(
    prod, engine, project, capsys, monkeypatch
):
    monkeypatch.setattr(recover_cmd.out, "width", 200)
    result = run(
        capsys,
        "recover",
        "--stack",
        "prod",
        "--project-dir",
        str(project),
        "--name",
        "recovery-t2",
        "--yes",
    )
    assert result.code == 0, result.err
    text = result.out
    assert text.index("Recovery plan") < text.index("steps done")  # the plan comes first
    assert "within the 4 h RTO" in text
    assert "Manual steps left" in text and "secrets-management.md" in text
    assert "pulumi config set --secret prism-infra:clerkSecretKey" in text


def test_a_failed_up_is_exit_1_naming_the_stack(prod, engine, project, capsys):
    from recovery.engine import EngineError

    engine.fail = EngineError(
        "aws:rds/instance:Instance database-instance: InsufficientDBInstanceCapacity"
    )
    engine.left_behind = 12  # the network and the host came up before the DB failed
    result = _recover(capsys, project)
    assert result.code == 1
    assert (
        "recovery-t1 did not come up" in result.err
        and "InsufficientDBInstanceCapacity" in result.err
    )
    # With --json the plan goes to stderr; then one error line, no traceback.
    assert result.err.splitlines()[-1].startswith("prism-dr: error: the recovery stack")
    assert result.err.count("prism-dr: error:") == 1 and "Traceback" not in result.err
    assert "to continue it, run `prism-dr recover --stack prod --name recovery-t1" in result.err


def test_a_failed_up_that_created_nothing_is_exit_2(prod, engine, project, capsys):
    from recovery.engine import EngineError

    engine.fail = EngineError("pulumi failed on stack recovery-t1: error: no credentials")
    result = _recover(capsys, project)
    assert result.code == 2
    assert "holds nothing" in result.err
    assert "run `prism-dr recover --stack prod --name recovery-t1 --point latest" in result.err


def test_cutover_without_a_token_stops_before_anything_is_created(
    prod, engine, project, capsys, monkeypatch
):
    monkeypatch.setattr(recover_cmd, "make_cutover", recover_cmd.CloudflareApi)  # the real one
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    result = _recover(capsys, project, "--cutover", "--yes")
    assert result.code == 2 and "CLOUDFLARE_API_TOKEN" in result.err
    assert engine.calls == []
