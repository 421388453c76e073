"""The catalog's rules as pulumi-policy objects: what `pulumi preview --policy-pack policy` runs.

`policies()` builds them without starting anything (tests import this module); only
policy/__main__.py hands them to `PolicyPack`, whose constructor serves the engine forever.
Each rule reads its settings through its own config schema, so `--policy-pack-config
policy/config/prod.json` reaches exactly the settings a rule declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    _DictProxy,
    _ListProxy,
)

from policy.base import UNKNOWN, Resource, ResourceRule, Rule, StackRule
from policy.catalog import RULES
from policy.config import PolicyConfig, field_schemas

PACK_NAME = "prism-dr"
_SENTINELS = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)
_LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


def _raw(value: Any) -> Any:
    """The engine's props without pulumi-policy's proxies (which raise on any unknown), with
    unknowns as UNKNOWN, so a rule decides itself what an unknown means."""
    if isinstance(value, (_DictProxy, _ListProxy)):
        value = value["__target"]
    if isinstance(value, str) and value in _SENTINELS:
        return UNKNOWN
    if isinstance(value, Mapping):
        return {k: _raw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_raw(v) for v in value]
    return value


def resource_from_args(args: ResourceValidationArgs) -> Resource:
    return Resource(
        type=args.resource_type,
        name=args.name,
        urn=args.urn,
        props=_raw(args.props),
        protect=bool(getattr(args.opts, "protect", False)),
    )


def _stack_resources(args: StackValidationArgs) -> list[Resource]:
    return [
        Resource(
            type=r.resource_type,
            name=r.name,
            urn=r.urn,
            props=_raw(r.props),
            protect=bool(getattr(r.opts, "protect", False)),
            dependencies={
                k: tuple(d.urn for d in deps) for k, deps in r.property_dependencies.items()
            },
        )
        for r in args.resources
    ]


_KNOWN_SETTINGS = frozenset(f.alias or n for n, f in PolicyConfig.model_fields.items())


def _settings(args: ResourceValidationArgs | StackValidationArgs) -> PolicyConfig:
    # The engine validated the values against the policy's schema; keep only the settings.
    raw = dict(args.get_config() or {})
    return PolicyConfig.model_validate({k: v for k, v in raw.items() if k in _KNOWN_SETTINGS})


def _resource_policy(rule: ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for message in rule.violations(resource_from_args(args), _settings(args)):
            report(message, None)

    return ResourceValidationPolicy(validate=validate, **_common(rule))


def _stack_policy(rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        for resource, message in rule.violations(_stack_resources(args), _settings(args)):
            report(message, resource.urn if resource else None)

    return StackValidationPolicy(validate=validate, **_common(rule))


def _common(rule: Rule) -> dict[str, Any]:
    schema = (
        PolicyConfigSchema(properties=field_schemas(rule.config_fields))
        if rule.config_fields
        else None
    )
    return {
        "name": rule.name,
        "description": rule.description,
        "enforcement_level": _LEVELS[rule.enforcement],
        "config_schema": schema,
        "remediation_steps": rule.fix,
    }


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [
        _resource_policy(rule) if isinstance(rule, ResourceRule) else _stack_policy(rule)
        for rule in RULES
    ]
