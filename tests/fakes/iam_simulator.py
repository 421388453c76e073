"""A stand-in for iam:SimulatePrincipalPolicy, which moto does not implement: it evaluates the
role's inline policies as stored in moto with infra/iam.py and answers in the API's shape
(EvaluationResults of EvalActionName, EvalResourceName and EvalDecision `allowed`,
`implicitDeny` or `explicitDeny`: IAM API Reference, "SimulatePrincipalPolicy" and
"EvaluationResult"). Like the real simulator it sees identity policies only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import boto3

from infra.iam import Request, evaluate

_DECISIONS = {"allow": "allowed", "implicit-deny": "implicitDeny", "explicit-deny": "explicitDeny"}


def simulator(region: str = "us-east-1"):
    iam = boto3.client("iam", region_name=region)

    def simulate(
        arn: str, actions: Sequence[str], resources: Sequence[str], context: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        name = arn.rsplit("/", 1)[1]
        policies = [
            iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
            for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
        ]
        return [
            {
                "EvalActionName": action,
                "EvalResourceName": resource,
                "EvalDecision": _DECISIONS[
                    evaluate(Request(arn, action, resource, dict(context)), policies)
                ],
            }
            for action in actions
            for resource in resources
        ]

    return simulate
