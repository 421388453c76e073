"""The reaper against moto: expired drill-tagged resources go in dependency order; untagged,
unexpired, expiry-less and skipped ones stay; a crashed drill's stack is found by its name."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from drills.aws import reaper
from infra.errors import BadInput
from recovery.engine import EngineError
from tests.fakes.engine import FakeStackEngine, StackState

REGION = "us-east-1"
REAL_TUNNELS = reaper._tunnels
NOW = datetime.now(UTC)
PAST = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
FUTURE = (NOW + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


def drill_tags(drill: str, expires: str | None) -> list[dict[str, str]]:
    tags = [
        {"Key": "prism:drill", "Value": drill},
        {"Key": "prism:stack", "Value": f"drill-{drill}"},
    ]
    if expires:
        tags.append({"Key": "prism:expires-at", "Value": expires})
    return tags


def make_set(
    drill: str, expires: str | None, *, tagged: bool = True, full: bool = True
) -> dict[str, str]:
    """One drill's leftovers: host + its SG, DB + snapshot, an SSM parameter (without `full`:
    the SG and the parameter only, the cheap kinds)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    rds = boto3.client("rds", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    tags = drill_tags(drill, expires) if tagged else [{"Key": "team", "Value": "prism"}]
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    sg = ec2.create_security_group(
        GroupName=f"sg-{drill}",
        Description="drill host",
        VpcId=vpc,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
    )["GroupId"]
    param = f"/prism/drill-{drill}/api/REDIS_URL"
    ssm.put_parameter(Name=param, Value="x", Type="SecureString", Tags=tags)
    if not full:
        return {"sg": sg, "param": param}
    ami = ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["arm64"]}])["Images"][0][
        "ImageId"
    ]
    instance = ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        InstanceType="t4g.small",
        SecurityGroupIds=[sg],
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"][0]["InstanceId"]
    db = f"prism-prod-drill-{drill}"
    rds.create_db_instance(
        DBInstanceIdentifier=db,
        DBInstanceClass="db.t4g.small",
        Engine="postgres",
        MasterUsername="prism_admin",
        MasterUserPassword="not-a-real-password-1",
        AllocatedStorage=20,
        Tags=tags,
    )
    rds.create_db_snapshot(DBInstanceIdentifier=db, DBSnapshotIdentifier=f"{db}-snap", Tags=tags)
    return {"sg": sg, "instance": instance, "db": db, "snapshot": f"{db}-snap", "param": param}


def exists(ids: dict[str, str]) -> dict[str, bool]:
    ec2 = boto3.client("ec2", region_name=REGION)
    rds = boto3.client("rds", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    sgs = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    params = {p["Name"] for p in ssm.describe_parameters()["Parameters"]}
    if "instance" not in ids:
        return {"sg": ids["sg"] in sgs, "param": ids["param"] in params}
    state = ec2.describe_instances(InstanceIds=[ids["instance"]])["Reservations"][0]["Instances"][0]
    dbs = {d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]}
    snaps = {s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots()["DBSnapshots"]}
    return {
        "instance": state["State"]["Name"] != "terminated",
        "sg": ids["sg"] in sgs,
        "db": ids["db"] in dbs,
        "snapshot": ids["snapshot"] in snaps,
        "param": ids["param"] in params,
    }


ALL = {"instance": True, "sg": True, "db": True, "snapshot": True, "param": True}
NONE = dict.fromkeys(ALL, False)


@pytest.fixture(autouse=True)
def quick_waiters(monkeypatch):
    # moto changes state on the next describe; the waiters need not sleep between polls.
    monkeypatch.setattr(reaper, "INSTANCE_WAIT", {"Delay": 0, "MaxAttempts": 5})
    monkeypatch.setattr(reaper, "DB_WAIT", {"Delay": 0, "MaxAttempts": 5})


@pytest.fixture(autouse=True)
def cloudflare(monkeypatch):
    """An account with no drill tunnels left, in place of Cloudflare's API."""
    from tests.fakes.cloud import FakeCloudflare

    fake = FakeCloudflare()
    monkeypatch.setattr(reaper, "_tunnels", lambda: fake)
    return fake


@pytest.fixture
def engine(monkeypatch):
    fake = FakeStackEngine(offline=False)
    monkeypatch.setattr(reaper, "make_engine", lambda: fake)
    return fake


def reap(capsys, *, yes, skip=(), older_than=timedelta(hours=6)):
    code = reaper.run(
        older_than=older_than, yes=yes, regions=[REGION], skip_stacks=list(skip), as_json=True
    )
    return code, json.loads(capsys.readouterr().out)


def test_only_expired_drill_resources_are_deleted_and_only_with_yes(moto, engine, capsys):
    expired = make_set("20261101-000000", PAST)
    fresh = make_set("20261202-000000", FUTURE)
    no_expiry = make_set("20261103-000000", None, full=False)
    untagged = make_set("untagged", None, tagged=False, full=False)

    code, dry = reap(capsys, yes=False)
    assert code == 0 and dry["dry_run"] is True
    assert {f["action"] for f in dry["findings"] if f["drill"] == "20261101-000000"} == {
        "would delete"
    }
    assert exists(expired) == ALL  # a dry run deletes nothing

    code, done = reap(capsys, yes=True)
    assert code == 0, done
    assert exists(expired) == NONE
    assert exists(fresh) == ALL
    assert exists(no_expiry) == exists(untagged) == {"sg": True, "param": True}
    mine = [f for f in done["findings"] if f["drill"] == "20261101-000000"]
    # Dependency order: the host before the DB, instances before the security group.
    assert [f["kind"] for f in mine] == [
        "ec2:instance",
        "rds:db",
        "rds:snapshot",
        "ec2:security-group",
        "ssm:parameter",
    ]
    assert {f["action"] for f in mine} == {"deleted"}
    left = {f["drill"]: f["action"] for f in done["findings"] if f["action"].startswith("left")}
    assert left["20261202-000000"] == "left: not expired"
    assert left["20261103-000000"] == "left: no readable prism:expires-at tag"
    assert "untagged" not in left  # never even listed


def test_a_resource_whose_drill_tag_is_gone_by_delete_time_is_refused(moto):
    ids = make_set("20261101-000000", PAST)
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.delete_tags(Resources=[ids["sg"]], Tags=[{"Key": "prism:drill"}])
    arn = f"arn:aws:ec2:{REGION}:123456789012:security-group/{ids['sg']}"
    clients = lambda service, region: boto3.client(service, region_name=region)  # noqa: E731
    action = reaper._delete(clients, REGION, "ec2:security-group", ids["sg"], arn, set(), NOW)
    assert action.startswith("left: no prism:drill tag")
    assert exists(ids)["sg"] is True


def test_skipped_drills_are_left(moto, engine, capsys):
    ids = make_set("20261101-000000", PAST)
    code, done = reap(capsys, yes=True, skip=["drill-20261101-000000"])
    assert code == 0
    assert exists(ids) == ALL
    assert all(
        f["action"] == "left: its drill is skipped"
        for f in done["findings"]
        if f["kind"] != "stack"
    )


def test_stacks_past_their_ttl_or_crashed_untagged_are_destroyed(moto, engine, capsys):
    old = (NOW - timedelta(days=2)).strftime("%Y%m%d-%H%M%S")
    recent = (NOW - timedelta(minutes=30)).strftime("%Y%m%d-%H%M%S")
    engine.stacks[f"drill-{old}"] = StackState(pending=["urn:db"])  # crashed before tagging
    engine.stacks[f"drill-{recent}"] = StackState(resources=["urn:db"])  # running now
    engine.stacks["drill-tagged"] = StackState(resources=["urn:x"], tags={"prism:expires-at": PAST})
    engine.stacks["prod"] = StackState(resources=["urn:prod"])  # never a drill's
    code, dry = reap(capsys, yes=False)
    assert code == 0 and len(engine.stacks) == 4
    assert {f["name"]: f["action"] for f in dry["findings"]} == {
        f"drill-{old}": "would destroy",
        f"drill-{recent}": "left: not expired",
        "drill-tagged": "would destroy",
    }
    code, _ = reap(capsys, yes=True)
    assert code == 0
    assert set(engine.stacks) == {f"drill-{recent}", "prod"}
    assert ("refresh", f"drill-{old}") in engine.calls  # its pending creates read back first


def test_a_stack_that_cannot_be_destroyed_is_exit_1(moto, engine, capsys, monkeypatch):
    monkeypatch.setattr(reaper, "DESTROY_BACKOFF", 0)
    engine.stacks["drill-20200101-000000"] = StackState(resources=["urn:db"])
    engine.destroy_errors = [EngineError("pulumi failed: AccessDenied")] * 3
    code, done = reap(capsys, yes=True)
    assert code == 1
    [finding] = done["findings"]
    # Refreshed first (a crashed drill may have left pending creates), then every attempt's
    # note in order, and the way out.
    assert finding["action"] == "failed: " + "; ".join(
        ["refreshed after the interrupted up"]
        + [f"destroy {n} failed: pulumi failed: AccessDenied" for n in (1, 2, 3)]
        + [
            "stack drill-20200101-000000 NOT destroyed: run `prism-dr drill reap --run "
            "20200101-000000 --yes` or `pulumi destroy -s drill-20200101-000000`"
        ]
    )
    assert "drill-20200101-000000" in engine.stacks


def test_no_backend_still_reaps_tagged_resources_and_says_so(moto, capsys, monkeypatch):
    def broken():
        raise EngineError("the Pulumi CLI is not installed")

    monkeypatch.setattr(reaper, "make_engine", broken)
    ids = make_set("20261101-000000", PAST)
    code, done = reap(capsys, yes=True)
    assert code == 1  # the stacks could not be checked: not a clean reap
    assert exists(ids) == NONE
    assert "stacks not checked" in done["findings"][0]["action"]


def test_default_regions_are_the_stacks_and_their_dr_region():
    assert reaper._default_regions() == ["us-east-1", "us-west-2"]


# -- a whole run's kinds, and the types the program declares -------------------------------


POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "*"}],
    }
)
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def make_secret(
    drill: str, expires: str | None, *, key: str | None = None, owner: str | None = None
) -> str:
    """The drill stack's application-role secret, as RuntimeSecrets makes it (`owner`: a
    secret another service manages, as RDS does its master secrets)."""
    tags = drill_tags(drill, expires)
    if owner:  # how moto models Secrets Manager's OwningService
        tags.append({"Key": "aws:secretsmanager:owningService", "Value": owner})
    extra = {"KmsKeyId": key} if key else {}
    return boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"prism/drill-{drill}/database/app-{owner or 'x'}",
        SecretString=json.dumps({"username": "prism_api", "password": "not-a-real-one"}),
        Tags=tags,
        **extra,
    )["ARN"]


def secret_exists(arn: str) -> bool:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    try:
        found = secrets.describe_secret(SecretId=arn)
    except secrets.exceptions.ResourceNotFoundException:
        return False
    return "DeletedDate" not in found


def test_only_expired_drill_secrets_are_deleted_and_at_once(moto, engine, capsys):
    expired = make_secret("20261101-000000", PAST)
    fresh = make_secret("20261202-000000", FUTURE)
    no_expiry = make_secret("20261103-000000", None)
    code, done = reap(capsys, yes=True)
    assert code == 0, done
    actions = {f["name"]: f["action"] for f in done["findings"]}
    assert actions["prism/drill-20261101-000000/database/app-x"] == "deleted"
    assert actions["prism/drill-20261202-000000/database/app-x"] == "left: not expired"
    assert not secret_exists(expired)
    # Without a recovery window: the name is free again and nothing lingers.
    secrets = boto3.client("secretsmanager", region_name=REGION)
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.describe_secret(SecretId=expired)
    assert secret_exists(fresh) and secret_exists(no_expiry)


def test_a_secret_another_service_manages_is_never_deleted(moto, engine, capsys):
    """RDS's master secret carries the instance's tags, prism:drill included: it goes with
    the instance, never through the reaper, even when its tags say it is due."""
    owned = make_secret("20261101-000000", PAST, owner="rds")
    code, done = reap(capsys, yes=True)
    assert code == 0 and not [f for f in done["findings"] if f["kind"] == "secretsmanager:secret"]
    assert secret_exists(owned)
    clients = lambda service, region: boto3.client(service, region_name=region)  # noqa: E731
    name = "prism/drill-20261101-000000/database/app-rds"
    action = reaper._delete(clients, REGION, "secretsmanager:secret", name, owned, set(), NOW)
    assert action == "left: managed by rds (deleted with what owns it)"
    assert secret_exists(owned)


def make_run(drill: str, expires: str | None = PAST) -> dict[str, str]:
    """Every kind the drill program creates (the DR network included), tagged as its
    components tag them, with the links that make the order matter: the host in its SG with
    the role's profile, the DB behind an SG that admits the host's SG, a key with an alias."""
    ec2 = boto3.client("ec2", region_name=REGION)
    rds = boto3.client("rds", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    tags = drill_tags(drill, expires)
    spec = lambda kind: [{"ResourceType": kind, "Tags": tags}]  # noqa: E731
    ids = make_set(drill, expires)  # host + its SG, DB + snapshot, a parameter
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16", TagSpecifications=spec("vpc"))["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=f"10.77.{i}.0/24",
            AvailabilityZone=f"{REGION}{z}",
            TagSpecifications=spec("subnet"),
        )["Subnet"]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    igw = ec2.create_internet_gateway(TagSpecifications=spec("internet-gateway"))[
        "InternetGateway"
    ]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc, TagSpecifications=spec("route-table"))["RouteTable"][
        "RouteTableId"
    ]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnets[0])
    db_sg = ec2.create_security_group(
        GroupName=f"db-{drill}",
        Description="db",
        VpcId=vpc,
        TagSpecifications=spec("security-group"),
    )["GroupId"]
    host_sg = ec2.create_security_group(
        GroupName=f"host-{drill}",
        Description="host",
        VpcId=vpc,
        TagSpecifications=spec("security-group"),
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=db_sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 5432,
                "ToPort": 5432,
                "UserIdGroupPairs": [{"GroupId": host_sg}],
            }
        ],
    )
    rds.create_db_parameter_group(
        DBParameterGroupName=f"params-{drill}",
        DBParameterGroupFamily="postgres16",
        Description="drill",
        Tags=tags,
    )
    rds.create_db_subnet_group(
        DBSubnetGroupName=f"subnets-{drill}",
        DBSubnetGroupDescription="drill",
        SubnetIds=subnets,
        Tags=tags,
    )
    logs = boto3.client("logs", region_name=REGION)
    log_group = f"/aws/rds/instance/prism-prod-drill-{drill}/postgresql"
    logs.create_log_group(logGroupName=log_group, tags={t["Key"]: t["Value"] for t in tags})
    kms = boto3.client("kms", region_name=REGION)
    key = kms.create_key(
        Description="drill secrets",
        Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tags],
    )["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=f"alias/prism-drill-{drill}", TargetKeyId=key)
    secret = make_secret(drill, expires, key=key)
    role = iam.create_role(
        RoleName=f"api-host-role-{drill}",
        AssumeRolePolicyDocument=TRUST,
        Description=f"Prism API host of drill-{drill}",
        Tags=tags,
    )["Role"]["RoleName"]
    iam.put_role_policy(RoleName=role, PolicyName="read-parameters", PolicyDocument=POLICY)
    # moto has no AWS managed policies loaded: a customer one stands in for SSM core.
    managed = iam.create_policy(PolicyName=f"ssm-core-{drill}", PolicyDocument=POLICY)
    iam.attach_role_policy(RoleName=role, PolicyArn=managed["Policy"]["Arn"])
    profile = iam.create_instance_profile(
        InstanceProfileName=f"api-host-profile-{drill}", Tags=tags
    )
    iam.add_role_to_instance_profile(
        InstanceProfileName=profile["InstanceProfile"]["InstanceProfileName"], RoleName=role
    )
    return {
        **ids,
        "vpc": vpc,
        "subnets": subnets,
        "igw": igw,
        "table": table,
        "db_sg": db_sg,
        "host_sg": host_sg,
        "log_group": log_group,
        "key": key,
        "role": role,
        "secret": secret,
    }


def test_reap_run_removes_every_kind_of_one_run_in_dependency_order(moto, capsys):
    mine = make_run("20261202-010000", expires=FUTURE)  # not expired: --run ignores expiry
    other = make_set("20261202-020000", PAST, full=False)  # another drill's: left alone
    clients = lambda service, region: boto3.client(service, region_name=region)  # noqa: E731
    dry = reaper.sweep_run(
        "20261202-010000", regions=[REGION], clients=clients, tunnels=None, scopes=[], yes=False
    )
    assert {f.action for f in dry} == {"would delete"}
    found = reaper.sweep_run(
        "20261202-010000", regions=[REGION], clients=clients, tunnels=None, scopes=[]
    )
    assert all(not f.failed for f in found), [f for f in found if f.failed]
    kinds = [f.kind for f in found]
    assert kinds == sorted(kinds, key=reaper.KINDS.index)  # the dependency order
    assert set(kinds) == set(reaper.KINDS)  # every kind the program can create
    ec2 = boto3.client("ec2", region_name=REGION)
    assert not ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [mine["vpc"]]}])["Vpcs"]
    groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert not {mine["db_sg"], mine["host_sg"], mine["sg"]} & groups
    assert other["sg"] in groups
    kms = boto3.client("kms", region_name=REGION)
    assert kms.describe_key(KeyId=mine["key"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert not kms.list_aliases(KeyId=mine["key"])["Aliases"]
    assert not secret_exists(mine["secret"])
    iam = boto3.client("iam", region_name=REGION)
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"] == mine["role"]]
    assert not boto3.client("logs", region_name=REGION).describe_log_groups(
        logGroupNamePrefix=mine["log_group"]
    )["logGroups"]
    rds = boto3.client("rds", region_name=REGION)
    assert not [
        g
        for g in rds.describe_db_parameter_groups()["DBParameterGroups"]
        if g["DBParameterGroupName"] == "params-20261202-010000"
    ]


def test_reap_run_on_the_command_line(moto, capsys, monkeypatch):
    make_set("20261202-010000", FUTURE, full=False)
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    monkeypatch.setattr(reaper, "_tunnels", REAL_TUNNELS)  # the real client, refused
    code = reaper.run_sweep(run_id="20261202-010000", yes=True, regions=[REGION], as_json=True)
    done = json.loads(capsys.readouterr().out)
    assert {
        f["kind"]: f["action"] for f in done["findings"] if f["kind"] != "cloudflare:tunnel"
    } == {
        "ec2:security-group": "deleted",
        "ssm:parameter": "deleted",
    }
    # Without the token the run's tunnel could not be looked at: said, and not a clean reap.
    tunnels = [f for f in done["findings"] if f["kind"] == "cloudflare:tunnel"]
    assert tunnels and all("CLOUDFLARE_API_TOKEN" in f["action"] for f in tunnels)
    assert code == 1


def test_a_bad_run_id_is_refused():
    with pytest.raises(BadInput, match="not a drill run id"):
        reaper.sweep_run("drill-1; rm", regions=[REGION], clients=None, tunnels=None, scopes=[])


def test_the_tunnels_of_the_runs_found_due_go_too():
    from tests.fakes.cloud import FakeCloudflare

    cloudflare = FakeCloudflare()
    # The repository's own stack files name the Cloudflare account and zone.
    scopes = reaper._cloudflare_scopes("20261101-000000")
    scope = scopes[0]
    tunnel = cloudflare.add_tunnel(scope.account_id, "prism-drill-20261101-000000-api")
    cloudflare.add_tunnel(scope.account_id, "prism-drill-20261202-000000-api")  # not due
    cloudflare.add_record(scope.zone_id, scope.hostname)
    findings = [
        reaper.Finding("rds:db", "x", REGION, "20261101-000000", PAST, "deleted"),
        reaper.Finding("rds:db", "y", REGION, "20261202-000000", FUTURE, "left: not expired"),
    ]
    found = reaper.reap_tunnels(findings, True, cloudflare)
    assert {(f.kind, f.action) for f in found} == {
        ("cloudflare:tunnel", "deleted"),
        ("cloudflare:dns", "deleted"),
    }
    assert cloudflare.live()["tunnels"] == ["prism-drill-20261202-000000-api"]
    assert ("delete_tunnel", tunnel) in cloudflare.calls
    # Without a token: said, not failed (the drill's own sweep has looked already).
    [unchecked] = reaper.reap_tunnels(findings, True, None)
    assert unchecked.action.startswith("left: not checked") and not unchecked.failed


def test_reap_run_with_its_tunnel_cleaned_is_a_clean_reap_and_a_dry_run_touches_nothing(
    moto, capsys, monkeypatch, cloudflare
):
    run_id = "20261202-010000"
    ids = make_set(run_id, FUTURE, full=False)
    [scope, *_] = reaper._cloudflare_scopes(run_id)  # the repository's stack files
    tunnel = cloudflare.add_tunnel(scope.account_id, f"prism-drill-{run_id}-api")
    cloudflare.add_record(scope.zone_id, scope.hostname)

    code = reaper.run_sweep(run_id=run_id, yes=False, regions=[REGION], as_json=True)
    dry = json.loads(capsys.readouterr().out)
    assert code == 0 and dry["dry_run"] is True
    assert {f["action"] for f in dry["findings"]} == {"would delete"}
    assert exists(ids) == {"sg": True, "param": True}
    assert cloudflare.live()["tunnels"] == [f"prism-drill-{run_id}-api"]

    code = reaper.run_sweep(run_id=run_id, yes=True, regions=[REGION], as_json=True)
    done = json.loads(capsys.readouterr().out)
    assert code == 0 and done["dry_run"] is False, done
    assert exists(ids) == {"sg": False, "param": False}
    assert cloudflare.live() == {"tunnels": [], "records": []}
    assert ("delete_tunnel", tunnel) in cloudflare.calls


def test_the_reaper_looks_only_in_the_regions_it_is_given(moto, engine, capsys):
    ids = make_set("20261101-000000", PAST, full=False)  # in us-east-1
    code = reaper.run(
        older_than=timedelta(hours=6), yes=True, regions=["us-west-2"], skip_stacks=[],
        as_json=True,
    )
    done = json.loads(capsys.readouterr().out)
    assert code == 0 and done["dry_run"] is False
    assert [f for f in done["findings"] if f["kind"] != "stack"] == []
    assert exists(ids) == {"sg": True, "param": True}


def test_reap_yes_deletes_the_tunnel_of_a_run_found_due(moto, engine, capsys, cloudflare):
    make_set("20261101-000000", PAST, full=False)
    [scope, *_] = reaper._cloudflare_scopes("20261101-000000")
    cloudflare.add_tunnel(scope.account_id, "prism-drill-20261101-000000-api")
    code, done = reap(capsys, yes=True)
    assert code == 0 and done["dry_run"] is False
    tunnels = [f for f in done["findings"] if f["kind"] == "cloudflare:tunnel"]
    assert [f["action"] for f in tunnels] == ["deleted"]
    assert cloudflare.live()["tunnels"] == []


def test_a_sweep_covers_every_region_given_and_reports_one_it_cannot_read(moto, capsys):
    run_id = "20261202-010000"
    here = make_set(run_id, FUTURE, full=False)  # us-east-1
    west = boto3.client("ssm", region_name="us-west-2")
    west.put_parameter(
        Name=f"/prism/drill-{run_id}/api/X", Value="x", Type="SecureString",
        Tags=drill_tags(run_id, FUTURE),
    )

    def clients(service, region):
        if region == "eu-north-1":
            raise BadInput("AccessDenied on tag:GetResources in eu-north-1" + " (…)" * 100)
        return boto3.client(service, region_name=region)

    found = reaper.sweep_run(
        run_id, regions=[REGION, "eu-north-1", "us-west-2"], clients=clients, tunnels=None,
        scopes=[],
    )
    by_region = {(f.region, f.kind, f.action) for f in found}
    assert (REGION, "ssm:parameter", "deleted") in by_region
    assert ("us-west-2", "ssm:parameter", "deleted") in by_region
    [failed] = [f for f in found if f.failed]
    assert (failed.kind, failed.name, failed.region, failed.drill, failed.expires_at) == (
        "aws", "*", "eu-north-1", run_id, "-"
    )
    # Cut to fit a table cell and a record: the first 300 characters.
    said = "failed: AccessDenied on tag:GetResources in eu-north-1" + " (…)" * 100
    assert failed.action == said[:300]
    assert exists(here) == {"sg": False, "param": False}
    assert west.describe_parameters()["Parameters"] == []


def test_an_expiry_is_shown_in_utc_whatever_the_machines_zone(engine, capsys, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        engine.stacks["drill-20261101-000000"] = StackState(
            tags={"prism:expires-at": "2026-11-01T14:00:00+02:00"}
        )
        findings = reaper.reap(
            older_than=timedelta(hours=6), yes=False, regions=[], skip_stacks=[],
            engine_factory=lambda: engine, clients=None, now=NOW,
        )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert [(f.name, f.expires_at) for f in findings] == [
        ("drill-20261101-000000", "2026-11-01T12:00:00Z")
    ]


def test_reap_run_looks_only_in_the_regions_it_is_given(moto, capsys, cloudflare):
    ids = make_set("20261202-010000", FUTURE, full=False)  # in us-east-1
    code = reaper.run_sweep(run_id="20261202-010000", yes=True, regions=["us-west-2"],
                            as_json=True)
    done = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [f for f in done["findings"] if not f["kind"].startswith("cloudflare")] == []
    assert exists(ids) == {"sg": True, "param": True}


def test_reap_removes_an_expired_drills_role_and_profile_looking_in_iam_once(moto, engine, capsys):
    ids = make_run("20261101-000000", expires=PAST)
    code = reaper.run(
        older_than=timedelta(hours=6), yes=True, regions=[REGION, "us-west-2"], skip_stacks=[],
        as_json=True,
    )
    done = json.loads(capsys.readouterr().out)
    assert code == 0, [f for f in done["findings"] if f["action"].startswith("failed")]
    iam_found = [(f["kind"], f["region"]) for f in done["findings"] if f["kind"].startswith("iam:")]
    # IAM is global: listed with the first region only, each role and profile once.
    assert iam_found == [("iam:instance-profile", REGION), ("iam:role", REGION)]
    iam = boto3.client("iam", region_name=REGION)
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"] == ids["role"]]


def test_an_owned_secret_listed_first_does_not_hide_the_runs_own(moto, capsys):
    run_id = "20261202-010000"
    owned = make_secret(run_id, FUTURE, owner="rds")  # RDS's master secret, created first
    own = make_secret(run_id, FUTURE)
    other = make_secret("20261202-020000", FUTURE)  # another drill's: not even listed
    clients = lambda service, region: boto3.client(service, region_name=region)  # noqa: E731
    found = reaper.sweep_run(run_id, regions=[REGION], clients=clients, tunnels=None, scopes=[])
    secrets = [(f.name, f.action) for f in found if f.kind == "secretsmanager:secret"]
    assert secrets == [(f"prism/drill-{run_id}/database/app-x", "deleted")]
    assert secret_exists(owned) and not secret_exists(own) and secret_exists(other)


def test_an_instance_already_terminated_is_not_listed_again(moto, engine, capsys):
    ids = make_set("20261101-000000", PAST)
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.terminate_instances(InstanceIds=[ids["instance"]])
    # AWS's tagging API lists a terminated instance for up to an hour more; moto too.
    code, done = reap(capsys, yes=True)
    assert code == 0
    assert [f for f in done["findings"] if f["kind"] == "ec2:instance"] == []


def test_each_resources_finding_names_its_kind_region_drill_and_expiry(moto, engine, capsys):
    due = make_set("20261101-000000", PAST, full=False)
    kept = make_set("20261103-000000", None, full=False)
    code, dry = reap(capsys, yes=False)
    assert code == 0
    found = {f["name"]: f for f in dry["findings"] if f["kind"] != "stack"}
    assert found[due["param"]] == {
        "kind": "ssm:parameter", "name": due["param"], "region": REGION,
        "drill": "20261101-000000", "expires_at": PAST, "action": "would delete",
    }
    assert found[kept["sg"]] == {
        "kind": "ec2:security-group", "name": kept["sg"], "region": REGION,
        "drill": "20261103-000000", "expires_at": "none",
        "action": "left: no readable prism:expires-at tag",
    }


@pytest.mark.parametrize(
    ("service", "operation", "code"),
    [
        ("ec2", "delete_security_group", "DependencyViolation"),
        ("rds", "delete_db_parameter_group", "InvalidDBParameterGroupState"),
    ],
)
def test_a_deletion_refused_while_something_still_uses_it_is_tried_again_after_the_rest(
    moto, capsys, service, operation, code
):
    """AWS refuses to delete a security group an ENI still uses, or a parameter group an
    instance still being deleted uses; once the rest is gone the retry goes through."""
    from botocore.exceptions import ClientError

    run_id = "20261202-010000"
    ids = make_run(run_id, expires=FUTURE)
    refused: list[str] = []

    def clients(name, region):
        client = boto3.client(name, region_name=region)
        if name != service:
            return client
        real = getattr(client, operation)

        def first_refused(**kwargs):
            if not refused:
                refused.append(str(kwargs))
                raise ClientError({"Error": {"Code": code, "Message": "in use"}}, operation)
            return real(**kwargs)

        setattr(client, operation, first_refused)
        return client

    found = reaper.sweep_run(run_id, regions=[REGION], clients=clients, tunnels=None, scopes=[])
    assert refused, "the refusal never happened"
    kind = "ec2:security-group" if service == "ec2" else "rds:pg"
    retried = [f for f in found if f.kind == kind and refused[0].find(f.name) >= 0]
    assert [(f.drill, f.expires_at, f.action) for f in retried] == [(run_id, FUTURE, "deleted")]
    assert not [f for f in found if f.failed]
    assert exists(ids)["sg"] is False


def test_a_scheduled_reap_tries_a_refused_deletion_again_by_the_same_rules_in_its_region(moto):
    """The scheduled reap's retry (not a run's sweep) reads the group again in the region it
    reaps, with the same skip list and clock, and deletes it once nothing uses it."""
    from botocore.exceptions import ClientError

    region, drill = "us-west-2", "20261101-000000"
    clock = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    expired = "2026-11-02T00:00:00Z"  # expired by the clock the reap is given
    group = boto3.client("ec2", region_name=region).create_security_group(
        GroupName=f"db-{drill}",
        Description="db",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": drill_tags(drill, expired)}],
    )["GroupId"]
    refused: list[str] = []

    def clients(name, where):
        client = boto3.client(name, region_name=where)
        if name == "ec2":
            real = client.delete_security_group

            def first_refused(**kwargs):
                if not refused:
                    refused.append(kwargs["GroupId"])
                    raise ClientError(
                        {"Error": {"Code": "DependencyViolation", "Message": "in use"}},
                        "DeleteSecurityGroup",
                    )
                return real(**kwargs)

            client.delete_security_group = first_refused
        return client

    found = reaper.reap(
        older_than=timedelta(hours=6),
        yes=True,
        regions=[region],
        skip_stacks=["drill-20261102-000000"],
        engine_factory=lambda: FakeStackEngine(offline=False),
        clients=clients,
        now=clock,
    )
    assert refused == [group]
    mine = [f for f in found if f.name == group]
    assert [(f.region, f.drill, f.expires_at, f.action) for f in mine] == [
        (region, drill, expired, "deleted")
    ]
    groups = boto3.client("ec2", region_name=region).describe_security_groups(
        Filters=[{"Name": "group-id", "Values": [group]}]
    )["SecurityGroups"]
    assert groups == []
