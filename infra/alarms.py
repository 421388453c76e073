"""Alarms: someone hears about backup, recovery and health problems before users do.

One SNS topic per stack with an e-mail subscription (AWS mails a confirmation link first).
RDS event notifications cover what has no metric: failed or missing backups, recoveries,
failovers, deletions, low storage. CloudWatch alarms watch free storage and CPU on the
database and the API host's status checks. Cross-region backup replication has no lag
metric in CloudWatch; its failures arrive as RDS events of the `backup` category.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.config import AlarmsConfig, resource_tags
from infra.options import child_options

# RDS event categories for a db-instance source that matter for DR and availability.
DB_EVENT_CATEGORIES = [
    "availability",
    "backup",
    "deletion",
    "failover",
    "failure",
    "low storage",
    "notification",
    "recovery",
    "restoration",
]

_GIB = 1024**3


@dataclass(frozen=True)
class AlarmsArgs:
    settings: AlarmsConfig
    stack: str
    db_identifier: pulumi.Input[str]
    host_instance_id: pulumi.Input[str] | None = None
    extra_tags: Mapping[str, str] = field(default_factory=dict)


class Alarms(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("prism:infra:Alarms", name, None, opts)
        s = args.settings
        tags = resource_tags(args.stack, "alarms", args.extra_tags)
        child = child_options(self, opts)
        account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id

        topic = aws.sns.Topic(
            f"{name}-topic", name=f"prism-{args.stack}-alarms", tags=tags, opts=child
        )
        aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account).apply(
                lambda ta: _topic_policy(ta[0], ta[1])
            ),
            opts=child,
        )
        aws.sns.TopicSubscription(
            f"{name}-email", topic=topic.arn, protocol="email", endpoint=s.email, opts=child
        )

        aws.rds.EventSubscription(
            f"{name}-db-events",
            name=f"prism-{args.stack}-db-events",
            sns_topic=topic.arn,
            source_type="db-instance",
            source_ids=[args.db_identifier],
            event_categories=DB_EVENT_CATEGORIES,
            enabled=True,
            tags=tags,
            opts=child,
        )

        def alarm(label: str, **kwargs: object) -> None:
            aws.cloudwatch.MetricAlarm(
                f"{name}-{label}",
                name=f"prism-{args.stack}-{label}",
                alarm_actions=[topic.arn],
                ok_actions=[topic.arn],
                tags=tags,
                opts=child,
                **kwargs,  # type: ignore[arg-type]
            )

        db_dims = {"DBInstanceIdentifier": args.db_identifier}
        alarm(
            "db-free-storage",
            alarm_description=f"Database free storage below {s.free_storage_threshold_gb} GiB",
            namespace="AWS/RDS",
            metric_name="FreeStorageSpace",
            dimensions=db_dims,
            statistic="Minimum",
            period=300,
            evaluation_periods=1,
            comparison_operator="LessThanThreshold",
            threshold=s.free_storage_threshold_gb * _GIB,
            treat_missing_data="missing",
        )
        alarm(
            "db-cpu",
            alarm_description=f"Database CPU above {s.cpu_threshold_percent}% for 15 minutes",
            namespace="AWS/RDS",
            metric_name="CPUUtilization",
            dimensions=db_dims,
            statistic="Average",
            period=300,
            evaluation_periods=3,
            comparison_operator="GreaterThanThreshold",
            threshold=s.cpu_threshold_percent,
            treat_missing_data="missing",
        )
        if args.host_instance_id is not None:
            alarm(
                "host-status-check",
                alarm_description="API host failed its EC2 status checks",
                namespace="AWS/EC2",
                metric_name="StatusCheckFailed",
                dimensions={"InstanceId": args.host_instance_id},
                statistic="Maximum",
                period=60,
                evaluation_periods=5,
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                # No data means no host reporting at all: that is an outage too.
                treat_missing_data="breaching",
            )

        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})


def _topic_policy(topic_arn: str, account_id: str) -> str:
    """Lets RDS events and CloudWatch alarms of this account publish, nobody else."""

    def allow(sid: str, service: str) -> dict[str, object]:
        return {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }

    partition = topic_arn.split(":")[1]
    owner = {
        "Sid": "AccountManagesTopic",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
        "Action": [
            "sns:GetTopicAttributes",
            "sns:SetTopicAttributes",
            "sns:Subscribe",
            "sns:Publish",
        ],
        "Resource": topic_arn,
    }
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                owner,
                allow("RdsEvents", "events.rds.amazonaws.com"),
                allow("CloudWatchAlarms", "cloudwatch.amazonaws.com"),
            ],
        }
    )
