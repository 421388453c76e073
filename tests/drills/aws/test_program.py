"""The drill program under Pulumi's mocks (infra/offline.py), on plans resolved against moto."""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from drills.aws.plan import SourceNetwork
from drills.aws.program import drill_config, drill_program
from infra.offline import OfflineRun, ResourceRecord, Secret, run_program
from recovery.points import Point, Source
from tests.drills.aws.conftest import DRILL_VALUES, SECRETS, resolved_plan

RDS = "aws:rds/instance:Instance"
EC2 = "aws:ec2/instance:Instance"
NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
REPLICA_ARN = "arn:aws:rds:us-west-2:123456789012:auto-backup:ab-" + "c" * 26


def run(plan) -> OfflineRun:
    return run_program(
        "prod",
        program=drill_program(plan, SECRETS),
        preview=False,
    )


@pytest.fixture(scope="module")
def latest(moto_session, tmp_path_factory):
    plan, _, account = resolved_plan(moto_session, tmp_path_factory, now=NOW)
    return plan, account


@pytest.fixture(scope="module")
def latest_run(latest):
    return run(latest[0])


def _taggable(record: ResourceRecord) -> bool:
    if not record.custom or not record.type.startswith("aws:"):
        return False
    _, module, cls = record.type.split(":")
    klass = getattr(importlib.import_module(f"pulumi_aws.{module.split('/')[0]}"), cls)
    return "tags" in inspect.signature(klass._internal_init).parameters


def _strings(value) -> set[str]:
    if isinstance(value, Secret):
        return _strings(value.value)
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return {value} if isinstance(value, str) else set()


def test_latest_restores_into_the_sources_vpc_with_drill_only_settings(latest_run, latest):
    result, account = latest_run, latest[1]
    [db] = result.of_type(RDS)
    i = db.inputs
    assert i["restoreToPointInTime"] == {
        "sourceDbInstanceIdentifier": "prism-prod",
        "useLatestRestorableTime": True,
    }
    assert "snapshotIdentifier" not in i
    # Explicit groups: the source's subnet group, the drill's own SG and parameter group.
    assert i["dbSubnetGroupName"] == "database-subnets-1a2b3c"
    assert i["vpcSecurityGroupIds"] == [
        result.one("aws:ec2/securityGroup:SecurityGroup", "database-sg").id
    ]
    assert (
        i["parameterGroupName"]
        == result.one("aws:rds/parameterGroup:ParameterGroup").outputs["name"]
    )
    assert i["deletionProtection"] is False
    assert i["skipFinalSnapshot"] is True and "finalSnapshotIdentifier" not in i
    assert i["deleteAutomatedBackups"] is True
    assert i["backupRetentionPeriod"] == 0
    assert i["multiAz"] is False and i["publiclyAccessible"] is False
    assert i["instanceClass"] == "db.t4g.small"
    assert i["manageMasterUserPassword"] is True
    assert i["identifier"] == "prism-prod-drill-20261202-010000"
    assert db.protect is False
    # No new network in the home region: the source's VPC, its host subnet (public route).
    assert not result.of_type("aws:ec2/vpc:Vpc") and not result.of_type(
        "aws:rds/subnetGroup:SubnetGroup"
    )
    for sg in result.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert sg.inputs["vpcId"] == account.vpc_id
    [host] = result.of_type(EC2)
    assert host.inputs["subnetId"] == account.host_subnet
    assert host.inputs["associatePublicIpAddress"] is True
    assert host.inputs["instanceType"] == "t4g.small"
    assert result.outputs["apiHostname"] == "drill-20261202-010000.prismhub.io"
    dns = result.one("cloudflare:index/dnsRecord:DnsRecord")
    assert dns.inputs["name"] == "drill-20261202-010000.prismhub.io"


def test_every_taggable_resource_carries_the_drill_id_and_expiry(latest_run, latest):
    result = latest_run
    taggable = [r for r in result.resources if _taggable(r)]
    assert len(taggable) > 15
    for r in taggable:
        tags = r.inputs.get("tags") or {}
        assert tags.get("prism:drill") == "20261202-010000", r.name
        assert tags.get("prism:expires-at") == "2026-12-02T07:00:00Z", r.name
        assert tags.get("prism:stack") == "drill-20261202-010000", r.name
    assert drill_config(latest[0])["prism-infra:drillExpiresAt"] == "2026-12-02T07:00:00Z"


def test_database_and_host_do_not_depend_on_each_other(latest_run, latest):
    result = latest_run
    [db] = result.of_type(RDS)
    [host] = result.of_type(EC2)
    host_side = _identities(result, "api-host")
    db_side = _identities(result, "database")
    assert host_side and db_side
    assert not _strings(db.inputs) & host_side
    assert not _strings(host.inputs) & db_side
    assert not any(value in host.inputs["userData"] for value in db_side)
    # The host finds its database through the drill stack's own parameters, at boot.
    assert "/prism/drill-20261202-010000/database/host" in host.inputs["userData"]


def _identities(result: OfflineRun, prefix: str) -> set[str]:
    """What another resource would have to take to depend on these: their ids, and the
    outputs the mocks derive from their names (ARNs, names, endpoints)."""
    found: set[str] = set()
    for r in result.resources:
        if r.custom and r.name.startswith(prefix):
            found.add(r.id)
            found |= {v for v in _strings(r.outputs) if r.name in v}
    return found


def test_time_point_restores_to_that_time(latest):
    latest = latest[0]
    point = Point.parse("2026-12-01T04:05:06Z")
    plan = replace(latest, point=point)
    [db] = run(plan).of_type(RDS)
    assert db.inputs["restoreToPointInTime"] == {
        "sourceDbInstanceIdentifier": "prism-prod",
        "restoreTime": "2026-12-01T04:05:06Z",
    }


def test_snapshot_point_restores_the_snapshot(latest):
    latest = latest[0]
    plan = replace(
        latest,
        point=Point.parse("snapshot:prism-prod-premig-42"),
        source=Source(region="us-east-1", snapshot_id="prism-prod-premig-42", latest=NOW),
    )
    [db] = run(plan).of_type(RDS)
    assert db.inputs["snapshotIdentifier"] == "prism-prod-premig-42"
    assert "restoreToPointInTime" not in db.inputs
    assert set(db.ignore_changes) == {"restoreToPointInTime", "snapshotIdentifier"}


@pytest.fixture(scope="module")
def region_run(latest):
    plan = replace(
        latest[0],
        region="us-west-2",
        network=None,
        source=Source(region="us-west-2", automated_backups_arn=REPLICA_ARN, latest=NOW),
    )
    return plan, run(plan)


def test_region_builds_its_own_network_and_restores_the_replica(region_run):
    plan, result = region_run
    [db] = result.of_type(RDS)
    assert db.inputs["restoreToPointInTime"] == {
        "sourceDbInstanceAutomatedBackupsArn": REPLICA_ARN,
        "useLatestRestorableTime": True,
    }
    [vpc] = result.of_type("aws:ec2/vpc:Vpc")
    [group] = result.of_type("aws:rds/subnetGroup:SubnetGroup")
    assert db.inputs["dbSubnetGroupName"] == group.outputs["name"]
    assert len(group.inputs["subnetIds"]) == 2
    for sg in result.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert sg.inputs["vpcId"] == vpc.id
    assert drill_config(plan)["aws:region"] == "us-west-2"
    assert plan.environment == "aws-prod-us-west-2"
    # No replication of a drill's backups: it has none.
    assert not result.of_type(
        "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
    )


def test_tunnel_off_declares_no_cloudflare_resources(latest):
    latest = latest[0]
    result = run(replace(latest, hostname=None))
    assert not [r for r in result.resources if r.type.startswith("cloudflare:")]
    assert "apiHostname" not in result.outputs


def test_adopted_private_subnet_without_internet_route_gets_no_public_address(latest):
    latest = latest[0]
    net = latest.network
    assert isinstance(net, SourceNetwork)
    plan = replace(latest, network=replace(net, host_public_ip=False))
    [host] = run(plan).of_type(EC2)
    assert host.inputs["associatePublicIpAddress"] is False


def test_secrets_reach_the_drill_stack_as_secrets_only(latest_run, latest):
    result = latest_run
    for r in result.resources:
        for value in SECRETS.values():
            assert value not in _clear(r.inputs), r.name
    params = {r.inputs["name"]: r for r in result.of_type("aws:ssm/parameter:Parameter")}
    clerk = params["/prism/drill-20261202-010000/api/CLERK_SECRET_KEY"]
    assert isinstance(clerk.inputs["value"], Secret)
    assert clerk.inputs["value"].value == SECRETS["CLERK_SECRET_KEY"]


def _clear(value) -> str:
    if isinstance(value, Secret):
        return ""
    if isinstance(value, dict):
        return " ".join(_clear(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(_clear(v) for v in value)
    return str(value)


def test_the_source_stacks_program_keeps_its_own_settings():
    """The drill-only flag changes nothing for a stack that does not set it."""
    prod = run_program("prod", preview=False)
    [db] = prod.of_type(RDS)
    assert db.inputs["deletionProtection"] is True
    assert db.inputs["backupRetentionPeriod"] == 30
    assert db.inputs["deleteAutomatedBackups"] is False
    assert db.inputs["skipFinalSnapshot"] is False
    assert db.inputs["multiAz"] is True


def test_a_private_images_registry_password_reaches_the_drill_stack_as_a_secret(latest):
    plan = latest[0]
    result = run_program(
        "prod", program=drill_program(plan, SECRETS, "ghp_notreal0registry0token"), preview=False
    )
    params = {r.inputs["name"]: r for r in result.of_type("aws:ssm/parameter:Parameter")}
    stored = params[f"/prism/{plan.stack_name}/registry/password"].inputs["value"]
    assert isinstance(stored, Secret) and stored.value == "ghp_notreal0registry0token"


def test_the_policy_pack_passes_the_drill_stack(latest_run, latest):
    """The DR pack (policy/) on the drill program, as `pulumi up --policy-pack` would run it on
    the stack `drill-<id>`: drill tags on every taggable resource, nothing that resists
    deletion, the host reading only its own stack's parameters. (Offline, the program runs
    under the source stack's name; the URNs are put back to the drill stack's.)"""
    from infra.policy_check import evaluate, to_resource
    from policy.config import PackConfig

    stack = latest[0].stack_name
    resources = [
        replace(to_resource(r), urn=r.urn.replace("urn:pulumi:prod::", f"urn:pulumi:{stack}::"))
        for r in latest_run.resources
        if r.custom
    ]
    violations = evaluate(resources, PackConfig())
    assert [v.as_dict() for v in violations if v.enforcement == "mandatory"] == []
    # And the pack does see drill resources: one without its expiry is refused.
    db = next(r for r in resources if r.type == RDS)
    untagged = replace(db, props={**db.props, "tags": {"prism:stack": stack}})
    assert any(v.policy.startswith("drill") for v in evaluate([untagged], PackConfig()))


ANY = "0.0.0.0/0"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def _host_egress(result: OfflineRun) -> dict[tuple[str, int], str]:
    host_sg = result.one("aws:ec2/securityGroup:SecurityGroup", "api-host-sg").id
    return {
        (r.inputs["ipProtocol"], r.inputs["fromPort"]): r.inputs["cidrIpv4"]
        for r in result.of_type(EGRESS)
        if r.inputs["securityGroupId"] == host_sg
    }


def test_the_drill_host_gets_the_drills_values_and_no_way_to_prods_redis(latest):
    plan = latest[0]
    result = run_program("prod", program=drill_program(plan, DRILL_VALUES), preview=False)
    # Egress only where the drill needs it: HTTPS, the tunnel's edge, the restored database.
    egress = _host_egress(result)
    vpc_cidr = egress.pop(("tcp", 5432))
    assert vpc_cidr != "0.0.0.0/0"
    assert egress == {("tcp", 443): ANY, ("tcp", 7844): ANY, ("udp", 7844): ANY}
    names = {r.inputs["name"] for r in result.of_type("aws:ssm/parameter:Parameter")}
    api = {n.rsplit("/", 1)[1] for n in names if f"/prism/{plan.stack_name}/api/" in n}
    assert api == {"CLERK_SECRET_KEY", "CLERK_PUBLISHABLE_KEY"}  # no REDIS_URL
    [host] = result.of_type(EC2)
    assert "REDIS_URL" not in host.inputs["userData"]
    for r in result.resources:
        for value in SECRETS.values():  # nothing of prod's runtime values
            assert value not in str(r.inputs), r.name


def test_a_drill_redis_is_reached_only_on_its_own_network(latest):
    plan = latest[0]
    settings = plan.settings.model_copy(update={"redis_egress_cidr": "10.77.0.0/24"})
    values = {**DRILL_VALUES, "REDIS_URL": "redis://drill-cache.internal:6379"}
    result = run_program(
        "prod", program=drill_program(replace(plan, settings=settings), values), preview=False
    )
    assert _host_egress(result)[("tcp", 6379)] == "10.77.0.0/24"


def test_the_drill_stacks_key_is_the_drill_roles_not_the_callers(latest_run):
    import json

    key = latest_run.one("aws:kms/key:Key", "runtime-secrets-key")
    statements = {st["Sid"]: st for st in json.loads(key.inputs["policy"])["Statement"]}
    drill_role = "arn:aws:iam::123456789012:role/prism-ci/prism-drill"
    assert statements["DeployRoleUsesKey"]["Principal"] == {"AWS": drill_role}
    assert "user/offline" not in key.inputs["policy"]  # the offline caller is not named


def test_the_drills_log_groups_carry_its_tags_and_a_short_retention(latest_run, latest):
    plan = latest[0]
    groups = latest_run.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert {g.inputs["name"] for g in groups} == {
        f"/aws/rds/instance/{plan.db_identifier}/{log}" for log in ("postgresql", "upgrade")
    }
    for group in groups:
        assert group.inputs["tags"]["prism:drill"] == plan.run_id
        assert group.inputs["retentionInDays"] == 7


def test_the_restored_instance_has_at_least_the_sources_storage(latest_run, latest):
    plan, account = latest
    # DescribeDBInstances of the source (moto's prod instance: 50 GB) during the plan.
    assert plan.source_storage_gb == account.instance["AllocatedStorage"] == 50
    [db] = latest_run.of_type(RDS)
    assert db.inputs["allocatedStorage"] == max(50, plan.cfg.database.allocated_storage_gb)
    # A source grown past the stack file's figure: the restore gets the source's size, and
    # an autoscaling ceiling RDS accepts (at least 10 % above it).
    grown = run(replace(plan, source_storage_gb=500))
    [db] = grown.of_type(RDS)
    assert db.inputs["allocatedStorage"] == 500
    assert plan.cfg.database.max_allocated_storage_gb == 500  # the stack file's ceiling
    assert db.inputs["maxAllocatedStorage"] == 550


def unreaped(types: set[str]) -> set[str]:
    """Types the reaper has no way to remove: not mapped, or mapped to a kind it lacks."""
    from drills.aws import reaper

    missing = set()
    for type_ in types:
        kind = reaper.PULUMI_TYPES.get(type_)
        if kind is None or (
            ":" in kind
            and not kind.startswith(("with ", "cloudflare"))
            and kind not in reaper.KINDS
        ):
            missing.add(type_)
    return missing


def test_the_reaper_covers_every_type_the_program_declares(latest_run, region_run):
    types = {r.type for r in (*latest_run.resources, *region_run[1].resources) if r.custom}
    assert "aws:ec2/vpc:Vpc" in types and "aws:kms/key:Key" in types  # both programs ran
    assert "aws:cloudwatch/logGroup:LogGroup" in types
    assert unreaped(types) == set()
    # ... and the check bites: a type the program might add one day is caught.
    assert unreaped(types | {"aws:sqs/queue:Queue"}) == {"aws:sqs/queue:Queue"}


def test_the_drill_roles_table_covers_every_type_the_program_declares(latest_run, region_run):
    """The drill role deploys this program: infra/ci_roles.py must grant each type's calls."""
    from infra.ci_roles import unlisted

    types = {r.type for r in (*latest_run.resources, *region_run[1].resources) if r.custom}
    assert unlisted(types) == set()


def test_the_drill_api_logs_in_as_its_own_role_never_as_the_master(latest_run):
    result = latest_run
    stack = "drill-20261202-010000"
    key = result.one("aws:kms/key:Key", "runtime-secrets-key")
    secret = result.one("aws:secretsmanager/secret:Secret", "runtime-secrets-app-secret")
    db = result.one(RDS)
    # The drill's own secret, on the drill's own key, named under the drill stack.
    assert secret.inputs["namePrefix"] == f"prism/{stack}/database/app-"
    assert secret.inputs["kmsKeyId"] == key.outputs["arn"]
    assert db.inputs["masterUserSecretKmsKeyId"] == key.outputs["arn"]
    assert result.outputs["dbAppSecretArn"] == secret.outputs["arn"]
    assert result.outputs["dbAppRole"] == "prism_api"
    params = {
        p.inputs["name"]: p.inputs for p in result.of_type("aws:ssm/parameter:Parameter")
    }
    assert params[f"/prism/{stack}/database/secret-arn"]["insecureValue"] == secret.outputs["arn"]
    # The host may read that secret and no other: not the restored instance's master secret.
    readable = {
        arn
        for policy in result.of_type("aws:iam/rolePolicy:RolePolicy")
        for st in json.loads(policy.inputs["policy"])["Statement"]
        if "secretsmanager:GetSecretValue" in st["Action"]
        for arn in ([st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"])
    }
    assert readable == {secret.outputs["arn"]}
    assert db.outputs["masterUserSecrets"][0]["secretArn"] not in str(
        [p.inputs for p in result.of_type("aws:iam/rolePolicy:RolePolicy")]
    )
