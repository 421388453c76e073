"""AWS's rules (infra/aws_rules.py) applied to everything one offline run declared: the RDS
engine version and class, and every IAM action in the stack's policies (inline, key policies
and the managed policies it attaches). Used by `prism-dr plan` and the tests."""

from __future__ import annotations

import json

from infra import aws_rules
from infra.aws_rules import Problem
from infra.config import full_key
from infra.iam import managed_policy
from infra.offline import OfflineRun

_POLICY_INPUTS = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/role:Role": "assumeRolePolicy",
    "aws:kms/key:Key": "policy",
    "aws:sns/topicPolicy:TopicPolicy": "policy",
}


def aws_rule_problems(run: OfflineRun, region: str) -> list[Problem]:
    problems: list[Problem] = []
    for db in run.of_type("aws:rds/instance:Instance"):
        problems += aws_rules.rds_problems(
            engine_version=str(db.inputs.get("engineVersion")),
            instance_class=str(db.inputs.get("instanceClass")),
            region=region,
            key=full_key("database"),
        )
    for record in run.resources:
        field = _POLICY_INPUTS.get(record.type)
        text = record.inputs.get(field) if field else None
        if not isinstance(text, str):
            continue
        for action in aws_rules.unknown_actions(aws_rules.policy_actions(json.loads(text))):
            problems.append(
                Problem(record.name, f"names the IAM action {action}, which AWS does not have")
            )
    for attachment in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        arn = attachment.inputs.get("policyArn")
        if isinstance(arn, str) and ":iam::aws:policy/" in arn:
            document = managed_policy(arn.rsplit("/", 1)[-1])
            for action in aws_rules.unknown_actions(aws_rules.policy_actions(document)):
                problems.append(Problem(attachment.name, f"attaches the unknown action {action}"))
    return problems
