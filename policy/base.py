"""What every policy sees: a resource as plain data, and the rule types the pack and the
offline plan both run.

A policy is a plain function. A resource rule gets one `Resource` and the policy config and
yields violation messages; a stack rule gets every resource of the stack and yields
(resource or None, message) pairs. Neither knows whether it runs inside `pulumi preview
--policy-pack` (policy/pack.py) or on `prism-dr plan`'s offline run (infra/policy_check.py): each
adapter turns its own representation into `Resource` first. Nothing here imports Pulumi.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from policy.config import PolicyConfig

Enforcement = Literal["mandatory", "advisory"]

STACK_TAG = "prism:stack"
ENVIRONMENT_TAG = "prism:environment"
DRILL_TAG = "prism:drill"
EXPIRES_TAG = "prism:expires-at"
DRILL_STACK_PREFIX = "drill-"  # drill stacks are named drill-<utc timestamp> (DESIGN.md)


class _Unknown:
    """A value the engine only learns during the update (a preview's computed output)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class SecretValue:
    """A value the program marked secret; repr never shows it."""

    value: Any

    def __repr__(self) -> str:
        return "<secret>"


def plain(value: Any) -> Any:
    """The value without its secret marker (the checks read secrets; they never print them)."""
    while isinstance(value, SecretValue):
        value = value.value
    return value


def is_unknown(value: Any) -> bool:
    return plain(value) is UNKNOWN


@dataclass(frozen=True)
class Resource:
    """One resource as the engine registers it: type, name, URN, inputs, options.

    props: the inputs, camelCase as on the wire (`backupRetentionPeriod`), with UNKNOWN for a
        value only the update computes and SecretValue around what the program marked secret.
    dependencies: input name -> URNs of the resources that input was computed from (the pack
        gets them from the engine; the offline run does not record them).
    """

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    protect: bool = False
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, path: str, default: Any = None) -> Any:
        """The input at a dotted path (`metadataOptions.httpTokens`), secrets unwrapped."""
        node: Any = self.props
        for part in path.split("."):
            node = plain(node)
            if node is UNKNOWN:
                return UNKNOWN
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        node = plain(node)
        return default if node is None else node

    @property
    def stack(self) -> str:
        """The stack name, from the URN (`urn:pulumi:<stack>::<project>::<type>::<name>`)."""
        head = self.urn.split("::", 1)[0]
        parts = head.split(":")
        return parts[2] if len(parts) >= 3 and parts[0] == "urn" else ""

    @property
    def tags(self) -> dict[str, Any]:
        tags = self.get("tags")
        return dict(tags) if isinstance(tags, Mapping) else {}


def is_prod(resource: Resource, config: PolicyConfig) -> bool:
    """Prod rules apply when the config says prod, or the resource or its stack does: a
    forgotten --policy-pack-config must not relax them."""
    return (
        config.environment == "prod"
        or resource.tags.get(ENVIRONMENT_TAG) == "prod"
        or resource.stack == "prod"
    )


def is_drill(resource: Resource, config: PolicyConfig) -> bool:
    tags = resource.tags
    return (
        config.environment == "drill"
        or tags.get(ENVIRONMENT_TAG) == "drill"
        or DRILL_TAG in tags
        or EXPIRES_TAG in tags
        or resource.stack.startswith(DRILL_STACK_PREFIX)
    )


ResourceCheck = Callable[[Resource, PolicyConfig], Iterable[str]]
StackCheck = Callable[[Sequence[Resource], PolicyConfig], Iterable[tuple[Resource | None, str]]]


@dataclass(frozen=True)
class ResourceRule:
    """A policy over one resource at a time, for the listed types (None: every type)."""

    name: str
    description: str
    fix: str
    types: frozenset[str] | None
    check: ResourceCheck
    enforcement: Enforcement = "mandatory"
    config_fields: tuple[str, ...] = ()

    def violations(self, resource: Resource, config: PolicyConfig) -> list[str]:
        if self.types is not None and resource.type not in self.types:
            return []
        return list(self.check(resource, config))


@dataclass(frozen=True)
class StackRule:
    """A policy that needs several resources at once (an instance and its replication, a role
    and the policies attached to it)."""

    name: str
    description: str
    fix: str
    check: StackCheck
    enforcement: Enforcement = "mandatory"
    config_fields: tuple[str, ...] = ()

    def violations(
        self, resources: Sequence[Resource], config: PolicyConfig
    ) -> list[tuple[Resource | None, str]]:
        return list(self.check(resources, config))


Rule = ResourceRule | StackRule
