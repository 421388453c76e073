"""infra/network.py: the database only ever sits in private subnets; adopting a VPC creates none."""

from __future__ import annotations

from infra.offline import OfflineRun
from tests.infra.conftest import run_stack

SUBNET = "aws:ec2/subnet:Subnet"


def _private(run: OfflineRun):
    return [s for s in run.of_type(SUBNET) if s.name.startswith("network-private-")]


def test_created_vpc_has_private_subnets_in_two_azs(each_stack: OfflineRun) -> None:
    private = _private(each_stack)
    assert len(private) == 2
    assert {s.inputs["availabilityZone"] for s in private} == {"us-east-1a", "us-east-1b"}
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in private)


def test_private_subnets_have_no_route_out(each_stack: OfflineRun) -> None:
    tables = {t.id: t for t in each_stack.of_type("aws:ec2/routeTable:RouteTable")}
    for assoc in each_stack.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation"):
        subnet = next(s for s in each_stack.of_type(SUBNET) if s.id == assoc.inputs["subnetId"])
        routes = tables[assoc.inputs["routeTableId"]].inputs.get("routes", [])
        if subnet in _private(each_stack):
            assert routes == []
        else:  # the host subnet: outbound through the internet gateway
            igw = each_stack.one("aws:ec2/internetGateway:InternetGateway")
            assert routes == [{"cidrBlock": "0.0.0.0/0", "gatewayId": igw.id}]


def test_default_security_group_is_emptied(each_stack: OfflineRun) -> None:
    default = each_stack.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup").inputs
    assert "ingress" not in default and "egress" not in default


def test_host_sits_in_the_egress_subnet_with_a_public_address(each_stack: OfflineRun) -> None:
    instance = each_stack.one("aws:ec2/instance:Instance").inputs
    host_subnet = each_stack.one(SUBNET, "network-host")
    assert instance["subnetId"] == host_subnet.id
    assert instance["associatePublicIpAddress"] is True


def test_adopting_an_existing_vpc() -> None:
    adopt = {
        "mode": "adopt",
        "vpcId": "vpc-0abc1234",
        "privateSubnetIds": ["subnet-0aaa1111", "subnet-0bbb2222"],
        "hostSubnetId": "subnet-0ccc3333",
        "hostPublicIp": False,
    }
    run = run_stack("staging", {"prism-infra:network": adopt})
    assert run.of_type("aws:ec2/vpc:Vpc") == [] and run.of_type(SUBNET) == []
    assert (
        run.one("aws:rds/subnetGroup:SubnetGroup").inputs["subnetIds"] == adopt["privateSubnetIds"]
    )
    instance = run.one("aws:ec2/instance:Instance").inputs
    assert instance["subnetId"] == "subnet-0ccc3333"
    assert instance["associatePublicIpAddress"] is False
    for sg in run.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert sg.inputs["vpcId"] == "vpc-0abc1234"
