"""Drill policies: everything a drill creates can be found and destroyed.

A drill stack (`drill-<timestamp>`, or anything tagged as a drill) must carry `prism:drill`
and an RFC 3339 `prism:expires-at` on every taggable resource: the reaper and the audit find
orphans by those tags alone (runbook/audit.py, drills/aws/reaper.py). And nothing in it may
resist deletion: no RDS deletion protection, no EC2 termination protection, no Pulumi
`protect`, or a crashed drill leaves a database that bills until someone notices.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from policy.base import DRILL_TAG, EXPIRES_TAG, Resource, is_drill, is_unknown
from policy.config import PolicyConfig

# Taggable AWS types a drill stack creates (the infra components it reuses); any other
# resource that carries tags is checked as well.
TAGGABLE = frozenset(
    {
        "aws:rds/instance:Instance",
        "aws:rds/parameterGroup:ParameterGroup",
        "aws:rds/subnetGroup:SubnetGroup",
        "aws:ec2/instance:Instance",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/eip:Eip",
        "aws:iam/role:Role",
        "aws:iam/instanceProfile:InstanceProfile",
        "aws:ssm/parameter:Parameter",
        "aws:kms/key:Key",
        "aws:sns/topic:Topic",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:rds/eventSubscription:EventSubscription",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    }
)
RDS_INSTANCE = "aws:rds/instance:Instance"
EC2_INSTANCE = "aws:ec2/instance:Instance"


def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return moment.tzinfo is not None


def tagged(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    if not resource.type.startswith("aws:") or not is_drill(resource, config):
        return
    tags = resource.get("tags")
    if is_unknown(tags):
        return
    if resource.type not in TAGGABLE and tags is None:
        return
    tags = resource.tags
    missing = [t for t in (DRILL_TAG, EXPIRES_TAG) if t not in tags]
    if missing:
        yield (
            f"drill resource without {' and '.join(missing)}: the reaper and the audit cannot "
            "find it once the drill is gone"
        )
    elif not is_unknown(tags[EXPIRES_TAG]) and not _is_rfc3339(tags[EXPIRES_TAG]):
        yield (
            f"{EXPIRES_TAG} is {tags[EXPIRES_TAG]!r}, not an RFC 3339 time with a zone "
            "(e.g. 2026-12-02T06:00:00Z): the reaper cannot tell when it expires"
        )


def deletable(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    if not is_drill(resource, config):
        return
    if resource.protect:
        yield "Pulumi protect is set on a drill resource: the drill's destroy would fail"
    if resource.type == RDS_INSTANCE and resource.get("deletionProtection") is True:
        yield "deletionProtection is true on a drill database: teardown cannot delete it"
    if resource.type == EC2_INSTANCE and resource.get("disableApiTermination") is True:
        yield "disableApiTermination is true on a drill host: teardown cannot terminate it"
