"""Policies called as the engine calls them: pulumi-policy's own argument objects, the props
behind its unknown-checking proxy, the config a `--policy-pack-config` file would hand over.

Resource props come from the real stack program (an offline preview of Pulumi.prod.yaml and
Pulumi.staging.yaml), so a passing case is what the stacks really declare, and each failing
case changes one property of it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policy.pack import policies

PROJECT = "prism-infra"
POLICIES = {p.name: p for p in policies()}


def urn(stack: str, type_: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{type_}::{name}"


def options(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def wire(value: Any) -> Any:
    """An offline record's value as the engine sends it: unknowns as pulumi-policy's sentinel
    strings, secrets as plain values (pulumi-policy does not mark them)."""
    from infra.offline import UNKNOWN, Secret

    if value is UNKNOWN:
        return UNKNOWN_STRING_VALUE
    if isinstance(value, Secret):
        return wire(value.value)
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire(v) for v in value]
    return value


def check(
    policy: str,
    type_: str,
    props: Mapping[str, Any],
    *,
    config: Mapping[str, Any] | None = None,
    stack: str = "prod",
    name: str = "subject",
    protect: bool = False,
) -> list[str]:
    """The violation messages one resource policy reports."""
    args = ResourceValidationArgs(
        type_,
        unknown_checking_proxy(copy.deepcopy(dict(props))),
        urn(stack, type_, name),
        name,
        options(protect),
        None,
        dict(config or {}),
    )
    messages: list[str] = []
    POLICIES[policy].validate(args, lambda message, _urn=None: messages.append(message))
    return messages


Spec = tuple[str, str, Mapping[str, Any]] | tuple[str, str, Mapping[str, Any], Mapping[str, Any]]


def check_stack(
    policy: str,
    resources: Sequence[Spec],
    *,
    config: Mapping[str, Any] | None = None,
    stack: str = "prod",
) -> list[tuple[str | None, str]]:
    """(URN or None, message) a stack policy reports. Each resource: (type, name, props) or
    (type, name, props, {input: [names it depends on]})."""
    built = []
    deps_by_name: dict[str, Mapping[str, Any]] = {}
    for spec in resources:
        type_, name, props = spec[0], spec[1], spec[2]
        deps_by_name[name] = spec[3] if len(spec) > 3 else {}  # type: ignore[misc]
        built.append(
            PolicyResource(
                type_,
                unknown_checking_proxy(copy.deepcopy(dict(props))),
                urn(stack, type_, name),
                name,
                options(),
                None,
                None,
                [],
                {},
            )
        )
    by_name = {r.name: r for r in built}
    for r in built:
        for key, names in deps_by_name[r.name].items():
            r.property_dependencies[key] = [by_name[n] for n in names]
    args = StackValidationArgs(built, dict(config or {}))
    found: list[tuple[str | None, str]] = []
    POLICIES[policy].validate(args, lambda message, u=None: found.append((u, message)))
    return found


def _declared(stack: str) -> dict[tuple[str, str], dict[str, Any]]:
    from infra.offline import run_program

    run = run_program(stack, preview=True)
    return {(r.type, r.name): wire({**r.outputs, **r.inputs}) for r in run.resources if r.custom}


@pytest.fixture(scope="session")
def prod_declared() -> dict[tuple[str, str], dict[str, Any]]:
    return _declared("prod")


@pytest.fixture(scope="session")
def staging_declared() -> dict[tuple[str, str], dict[str, Any]]:
    return _declared("staging")


def changed(props: Mapping[str, Any], **values: Any) -> dict[str, Any]:
    """A copy of props with top-level keys set; a value of DROP removes the key."""
    result = copy.deepcopy(dict(props))
    for key, value in values.items():
        if value is DROP:
            result.pop(key, None)
        else:
            result[key] = value
    return result


DROP = object()


def pytest_configure(config: pytest.Config) -> None:
    for package in ("pulumi_aws", "pulumi_cloudflare"):
        config.addinivalue_line("filterwarnings", f"ignore::DeprecationWarning:{package}.*")
