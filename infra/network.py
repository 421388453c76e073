"""Where things run: private subnets for the database, one egress-capable subnet for the host.

`create` builds a small VPC: one private subnet per AZ (no route out at all; RDS needs none)
and one public subnet for the API host. The host gets a public IPv4 address only for
*outbound* traffic (Cloudflare tunnel, SSM, image pulls); its security group has no inbound
rule, so nothing can connect to it. That costs a public IPv4 address instead of a NAT gateway.
`adopt` takes an existing VPC, its private subnets and a host subnet that already has egress.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.config import NetworkConfig, resource_tags
from infra.options import child_options


@dataclass(frozen=True)
class NetworkArgs:
    settings: NetworkConfig
    stack: str
    extra_tags: Mapping[str, str] = field(default_factory=dict)


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    host_subnet_id: pulumi.Output[str]
    host_public_ip: bool

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("prism:infra:Network", name, None, opts)
        s = args.settings
        tags = resource_tags(args.stack, "network", args.extra_tags)
        child = child_options(self, opts)

        if s.mode == "adopt":
            assert s.vpc_id and s.private_subnet_ids and s.host_subnet_id  # checked by config
            vpc = aws.ec2.get_vpc_output(id=s.vpc_id, opts=pulumi.InvokeOutputOptions(parent=self))
            self.vpc_id = pulumi.Output.from_input(s.vpc_id)
            self.vpc_cidr = vpc.cidr_block
            self.private_subnet_ids = [pulumi.Output.from_input(i) for i in s.private_subnet_ids]
            self.host_subnet_id = pulumi.Output.from_input(s.host_subnet_id)
            self.host_public_ip = s.host_public_ip
        else:
            self._create(name, s, tags, child)

        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "vpc_cidr": self.vpc_cidr,
                "private_subnet_ids": self.private_subnet_ids,
                "host_subnet_id": self.host_subnet_id,
            }
        )

    def _create(
        self, name: str, s: NetworkConfig, tags: dict[str, str], child: pulumi.ResourceOptions
    ) -> None:
        net = ipaddress.ip_network(s.cidr_block)
        # Sixteen equal blocks: the first ones private (one per AZ), the last one public.
        blocks = [str(b) for b in net.subnets(prefixlen_diff=4)]
        azs = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOutputOptions(parent=self)
        )

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=s.cidr_block,
            enable_dns_support=True,
            enable_dns_hostnames=True,  # RDS endpoints resolve through the VPC resolver
            tags={**tags, "Name": f"prism-{tags['prism:stack']}"},
            opts=child,
        )
        # The default group allows all traffic between its members; leave it with no rules.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, tags=tags, opts=child)

        private_rt = aws.ec2.RouteTable(
            f"{name}-private-rt",
            vpc_id=vpc.id,
            tags={**tags, "Name": "private (no egress)"},
            opts=child,
        )
        private_ids = []
        for i in range(s.az_count):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=blocks[i],
                availability_zone=azs.names[i],
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"private-{i}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}-rt",
                subnet_id=subnet.id,
                route_table_id=private_rt.id,
                opts=child,
            )
            private_ids.append(subnet.id)

        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": "public (egress for the API host)"},
            opts=child,
        )
        host_subnet = aws.ec2.Subnet(
            f"{name}-host",
            vpc_id=vpc.id,
            cidr_block=blocks[-1],
            availability_zone=azs.names[0],
            map_public_ip_on_launch=False,  # the instance asks for its address explicitly
            tags={**tags, "Name": "host"},
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-host-rt", subnet_id=host_subnet.id, route_table_id=public_rt.id, opts=child
        )

        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.private_subnet_ids = private_ids
        self.host_subnet_id = host_subnet.id
        self.host_public_ip = True
