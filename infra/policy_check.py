"""The pack's policies on `prism-dr plan`'s offline run: same functions, no engine.

infra/offline.py records every registration of the stack program under Pulumi's mocks; each
record becomes a `Resource` (its inputs, plus the computed state the mocks know, such as
auto-names) and every rule of the catalog runs on them, with the enforcement levels and
settings of the stack's policy config file, as `pulumi preview --policy-pack` would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policy.base import UNKNOWN, Resource, ResourceRule, SecretValue
from policy.catalog import RULES
from policy.config import PackConfig

if TYPE_CHECKING:
    from infra.offline import OfflineRun, ResourceRecord


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement: str  # mandatory | advisory
    resource_type: str
    resource: str  # logical name; "" for the stack as a whole
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {
            "policy": self.policy,
            "enforcement": self.enforcement,
            "resourceType": self.resource_type,
            "resource": self.resource,
            "message": self.message,
            "fix": self.fix,
        }


def _convert(value: Any) -> Any:
    from infra.offline import UNKNOWN as OFFLINE_UNKNOWN
    from infra.offline import Secret

    if value is OFFLINE_UNKNOWN:
        return UNKNOWN
    if isinstance(value, Secret):
        return SecretValue(_convert(value.value))
    if isinstance(value, dict):
        return {k: _convert(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_convert(v) for v in value]
    return value


def to_resource(record: ResourceRecord) -> Resource:
    # Inputs win: they carry the unknowns of a preview; the state adds what the mocks
    # computed (auto-names), as the engine's checked inputs and outputs would.
    props = {**_convert(record.outputs), **_convert(record.inputs)}
    return Resource(
        type=record.type, name=record.name, urn=record.urn, props=props, protect=record.protect
    )


def evaluate(resources: Sequence[Resource], config: PackConfig) -> list[Violation]:
    found: list[Violation] = []
    for rule in RULES:
        level = config.level(rule.name, rule.enforcement)
        if level == "disabled":
            continue
        settings = config.for_policy(rule.name)
        if isinstance(rule, ResourceRule):
            pairs = [(r, m) for r in resources for m in rule.violations(r, settings)]
        else:
            pairs = rule.violations(resources, settings)
        found += [
            Violation(
                policy=rule.name,
                enforcement=level,
                resource_type=r.type if r else "pulumi:pulumi:Stack",
                resource=r.name if r else "",
                message=message,
                fix=rule.fix,
            )
            for r, message in pairs
        ]
    return found


def check_run(run: OfflineRun, config: PackConfig) -> list[Violation]:
    return evaluate([to_resource(r) for r in run.resources if r.custom], config)
