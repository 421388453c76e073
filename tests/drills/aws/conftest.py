"""An AWS account as the prod stack leaves it, on the shared moto server (tests/aws): its
VPC with two private subnets and a public host subnet (tagged as infra/network.py tags them),
the DB subnet group, the prod instance in it, its runtime secrets and the drill's own in SSM.
The stack file is prod's with real-looking account values (the committed one holds examples)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import yaml

from infra.offline import PROJECT_DIR
from tests.aws.conftest import moto, moto_session  # noqa: F401  (fixtures, re-exported)

REGION = "us-east-1"
ACCOUNT = "f037e56e89293a057740de681ac9abbe"
ZONE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
HOST = "api.prismhub.io"
SECRETS = {
    "CLERK_SECRET_KEY": "sk_live_notreal0drill0secret0value",
    "CLERK_PUBLISHABLE_KEY": "pk_live_notreal0drill0publishable",
    "REDIS_URL": "rediss://default:notreal-drill-redis@cache.prismhub.io:6379",
}
# What an admin puts under /prism/drill/ once per account (README "Setting up a new account"):
# a Clerk development instance's keys, no Redis.
DRILL_VALUES = {
    "CLERK_SECRET_KEY": "sk_test_notreal0drill0only0value",
    "CLERK_PUBLISHABLE_KEY": "pk_test_notreal0drill0publishable",
}


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def make_project(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", root)
    doc = yaml.safe_load((PROJECT_DIR / "Pulumi.prod.yaml").read_text())
    cfg = doc["config"]
    cfg["prism-infra:tunnel"] = {"accountId": ACCOUNT, "zoneId": ZONE, "hostname": HOST}
    cfg["prism-infra:alarms"]["email"] = "ops@prismhub.io"
    cfg["prism-infra:apiHost"]["image"] = "ghcr.io/prismhub/prism-api@sha256:" + "5" * 64
    cfg["prism-infra:apiHost"]["extraEgressCidr"] = "10.60.0.0/24"
    cfg["prism-infra:drill"] = {"instanceClass": "db.t4g.small", "hostInstanceType": "t4g.small"}
    (root / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    return root


@dataclass
class Account:
    rds: Any
    ec2: Any
    vpc_id: str
    private_subnets: list[str]
    host_subnet: str
    instance: dict[str, Any]


def make_prod(identifier: str = "prism-prod", stack: str = "prod") -> Account:
    ec2 = boto3.client("ec2", region_name=REGION)
    rds = boto3.client("rds", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    private = [
        ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.50.{i * 16}.0/20", AvailabilityZone=f"{REGION}{z}"
        )["Subnet"]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    host = ec2.create_subnet(VpcId=vpc, CidrBlock="10.50.240.0/20", AvailabilityZone=f"{REGION}a")[
        "Subnet"
    ]["SubnetId"]
    ec2.create_tags(
        Resources=[host],
        Tags=[{"Key": "prism:stack", "Value": stack}, {"Key": "Name", "Value": "host"}],
    )
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=host)
    rds.create_db_subnet_group(
        DBSubnetGroupName="database-subnets-1a2b3c",
        DBSubnetGroupDescription="Private subnets of prism-prod",
        SubnetIds=private,
    )
    instance = rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t4g.medium",
        Engine="postgres",
        EngineVersion="16.4",
        MasterUsername="prism_admin",
        MasterUserPassword="not-a-real-password-1",
        AllocatedStorage=50,
        BackupRetentionPeriod=30,
        DeletionProtection=True,
        StorageEncrypted=True,
        MultiAZ=True,
        DBSubnetGroupName="database-subnets-1a2b3c",
    )["DBInstance"]
    ssm = boto3.client("ssm", region_name=REGION)
    for env, value in SECRETS.items():
        ssm.put_parameter(Name=f"/prism/{stack}/api/{env}", Value=value, Type="SecureString")
    for env, value in DRILL_VALUES.items():
        ssm.put_parameter(
            Name=f"/prism/drill/api/{env}", Value=value, Type="SecureString", Overwrite=True
        )
    return Account(rds, ec2, vpc, private, host, instance)


@pytest.fixture
def account(moto):  # noqa: F811
    return make_prod()


def resolved_plan(server, tmp_path_factory, **kwargs):
    """A prod drill plan resolved against a fresh moto account, for module-scoped fixtures
    (the function-scoped `moto` fixture would reset the account under them)."""
    from drills.aws.plan import plan_aws_drill

    with pytest.MonkeyPatch.context() as patch:
        server.reset()
        for key, value in server.env().items():
            patch.setenv(key, value)
        account = make_prod()
        project = make_project(tmp_path_factory.mktemp("p"))
        return plan_aws_drill(stack="prod", project_dir=project, **kwargs), project, account
