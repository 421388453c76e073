"""infra/alarms.py: backup/recovery events and health alarms all reach the on-call address."""

from __future__ import annotations

import json

from infra.alarms import DB_EVENT_CATEGORIES
from infra.offline import OfflineRun

REQUIRED_CATEGORIES = {"backup", "recovery", "failure", "deletion", "low storage"}


def _topic(run: OfflineRun):
    return run.one("aws:sns/topic:Topic")


def test_topic_with_email_subscription(each_stack: OfflineRun) -> None:
    topic = _topic(each_stack)
    sub = each_stack.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert sub == {
        "topic": topic.outputs["arn"],
        "protocol": "email",
        "endpoint": "ops@example.com",
    }
    assert each_stack.outputs["alarmTopicArn"] == topic.outputs["arn"]


def test_topic_policy_lets_rds_and_cloudwatch_publish(each_stack: OfflineRun) -> None:
    policy = json.loads(each_stack.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"])
    services = {
        st["Principal"]["Service"]: st["Condition"]["StringEquals"]["aws:SourceAccount"]
        for st in policy["Statement"]
        if "Service" in st["Principal"]
    }
    assert services == {
        "events.rds.amazonaws.com": "123456789012",
        "cloudwatch.amazonaws.com": "123456789012",
    }


def test_rds_event_subscription_on_the_instance(each_stack: OfflineRun) -> None:
    events = each_stack.one("aws:rds/eventSubscription:EventSubscription").inputs
    assert events["snsTopic"] == _topic(each_stack).outputs["arn"]
    assert events["sourceType"] == "db-instance"
    assert events["sourceIds"] == [each_stack.outputs["dbIdentifier"]]
    assert set(events["eventCategories"]) >= REQUIRED_CATEGORIES
    assert events["eventCategories"] == DB_EVENT_CATEGORIES
    assert events["enabled"] is True


def test_alarms_watch_storage_cpu_and_host_and_notify_the_topic(each_stack: OfflineRun) -> None:
    alarms = {
        a.inputs["metricName"]: a.inputs
        for a in each_stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    assert set(alarms) == {"FreeStorageSpace", "CPUUtilization", "StatusCheckFailed"}
    topic_arn = _topic(each_stack).outputs["arn"]
    for alarm in alarms.values():
        assert alarm["alarmActions"] == [topic_arn]
        assert alarm["okActions"] == [topic_arn]
    db_dims = {"DBInstanceIdentifier": each_stack.outputs["dbIdentifier"]}
    storage = alarms["FreeStorageSpace"]
    assert storage["dimensions"] == db_dims
    assert storage["comparisonOperator"] == "LessThanThreshold"
    gib = {"staging": 2, "prod": 10}[each_stack.stack]
    assert storage["threshold"] == gib * 1024**3
    cpu = alarms["CPUUtilization"]
    assert cpu["dimensions"] == db_dims and cpu["threshold"] == 80
    host = alarms["StatusCheckFailed"]
    assert host["dimensions"] == {"InstanceId": each_stack.outputs["apiHostId"]}
    assert host["treatMissingData"] == "breaching"
