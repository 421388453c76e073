"""AWS's own rules, from the data cfn-lint ships, checked against what a stack declares.

cfn-lint (a pinned dev dependency) carries AWS's service data, regenerated from AWS's APIs
with each release:
- `schemas/extensions/aws_rds_dbinstance/engine_version.json`: the engine versions RDS offers;
- `.../db_instance_class.json`: the classes each engine version offers;
- `.../dbinstanceclass_enum.json`: the classes each region offers, per engine;
- `AdditionalSpecs/Policies.json`: every IAM action of every service.
Read as plain JSON (cfn-lint itself is not imported). When cfn-lint is not installed (a
deployment without the dev extras) there is nothing to check against: `available()` says so
and callers skip, saying it.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ENGINE = "postgres"


def data_dir() -> Path | None:
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    return path if path.is_dir() else None


def available() -> bool:
    return data_dir() is not None


def cfnlint_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cfn-lint")
    except PackageNotFoundError:
        return None


@cache
def _json(relative: str) -> Any:
    root = data_dir()
    if root is None:
        raise FileNotFoundError("cfn-lint is not installed: no AWS service data to check against")
    return json.loads((root / relative).read_text())


_RDS = "schemas/extensions/aws_rds_dbinstance"


@cache
def engine_versions(engine: str = ENGINE) -> tuple[str, ...]:
    for rule in _json(f"{_RDS}/engine_version.json")["allOf"]:
        props = rule["if"]["properties"]
        if props.get("Engine", {}).get("const") == engine and "EngineVersion" in props:
            return tuple(rule["then"]["properties"]["EngineVersion"]["enum"])
    return ()


@cache
def _classes_by_version(engine: str) -> tuple[tuple[re.Pattern[str], frozenset[str]], ...]:
    out = []
    for rule in _json(f"{_RDS}/db_instance_class.json")["allOf"]:
        props = rule["if"]["properties"]
        if props.get("Engine", {}).get("const") != engine:
            continue
        pattern = props.get("EngineVersion", {}).get("pattern")
        if pattern:
            classes = rule["then"]["properties"]["DBInstanceClass"]["enum"]
            out.append((re.compile(pattern), frozenset(classes)))
    return tuple(out)


@cache
def classes_in_region(region: str, engine: str = ENGINE) -> frozenset[str] | None:
    """None when the data does not know the region."""
    by_region = _json(f"{_RDS}/dbinstanceclass_enum.json")
    if region not in by_region:
        return None
    found: set[str] = set()
    for rule in by_region[region]["allOf"]:
        props = rule["if"]["properties"]
        if props.get("Engine", {}).get("const") == engine:
            found |= set(rule["then"]["properties"]["DBInstanceClass"]["enum"])
    return frozenset(found)


def _versions_meant(version: str, engine: str) -> list[str]:
    """A major (`16`) means whichever minor RDS picks: every known `16.x`."""
    known = engine_versions(engine)
    if "." in version:
        return [version] if version in known else []
    return [v for v in known if v.split(".")[0] == version and re.fullmatch(r"\d+\.\d+", v)]


def classes_for_version(version: str, engine: str = ENGINE) -> frozenset[str]:
    offered: set[str] = set()
    for concrete in _versions_meant(version, engine):
        for pattern, classes in _classes_by_version(engine):
            if pattern.fullmatch(concrete):
                offered |= classes
    return frozenset(offered)


@dataclass(frozen=True)
class Problem:
    key: str  # the config key, or the resource, to name
    message: str


def rds_problems(
    *, engine_version: str, instance_class: str, region: str, key: str
) -> list[Problem]:
    """Does RDS PostgreSQL offer this version, this class for it, and the class in region?"""
    if not _versions_meant(engine_version, ENGINE):
        return [
            Problem(
                f"{key}.engineVersion",
                f"is not a PostgreSQL version RDS offers (got {engine_version!r}; "
                f"cfn-lint {cfnlint_version()} data)",
            )
        ]
    problems = []
    offered = classes_for_version(engine_version)
    if offered and instance_class not in offered:
        problems.append(
            Problem(
                f"{key}.instanceClass",
                f"{instance_class} is not offered for PostgreSQL {engine_version} "
                f"(e.g. {', '.join(sorted(c for c in offered if c.startswith('db.t4g')))})",
            )
        )
    in_region = classes_in_region(region)
    if in_region is not None and instance_class not in in_region:
        problems.append(
            Problem(
                f"{key}.instanceClass",
                f"{instance_class} is not offered for PostgreSQL in {region}",
            )
        )
    return problems


@cache
def _actions() -> Mapping[str, frozenset[str]]:
    return {
        prefix: frozenset(spec.get("Actions", {}))
        for prefix, spec in _json("AdditionalSpecs/Policies.json").items()
        if isinstance(spec, Mapping)
    }


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def unknown_actions(actions: Iterable[str]) -> list[str]:
    """Actions (wildcards allowed) that name no action of AWS's list."""
    known = _actions()
    bad = []
    for action in actions:
        if action == "*":
            continue
        prefix, _, name = action.partition(":")
        names = known.get(prefix.lower())
        if names is None or not name:
            bad.append(action)
            continue
        regex = re.compile(re.escape(name.lower()).replace(r"\*", ".*").replace(r"\?", "."))
        if not any(regex.fullmatch(n) for n in names):
            bad.append(action)
    return bad


def policy_actions(policy: Mapping[str, Any]) -> list[str]:
    statements = policy.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    return [
        a for st in statements for field in ("Action", "NotAction") for a in _as_list(st.get(field))
    ]
