"""The pack's configuration: one pydantic model, and the per-stack files under policy/config/.

A Pulumi policy-pack config file maps a policy name to its settings (and optionally its
`enforcementLevel`); `"all"` sets the level of every policy. `pulumi preview --policy-pack
policy --policy-pack-config policy/config/prod.json` hands each policy its own object; the
offline plan reads the same file (`load_pack_config`). A setting a policy's object leaves out
takes the model's default, so an empty file means: staging floors, environment from tags.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

CONFIG_DIR = Path(__file__).resolve().parent / "config"
Level = Literal["mandatory", "advisory", "disabled", "remediate"]


class PolicyConfigError(ValueError):
    """A policy config file that cannot be used; the text names the file, the key and the fix."""


class PolicyConfig(BaseModel):
    """Settings a policy may read. Each policy declares the fields it reads (its config schema)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    environment: Literal["auto", "staging", "prod", "drill"] = Field(
        "auto",
        description="auto: from the resource's prism:environment tag and the stack name",
    )
    min_retention_days: Annotated[int, Field(ge=1, le=35)] = Field(
        7, description="RDS automated-backup retention floor, in days (spec section 3: 7)"
    )
    prod_min_retention_days: Annotated[int, Field(ge=1, le=35)] = Field(
        30, description="the floor on prod, in days"
    )
    storage_headroom: Annotated[float, Field(ge=1.1, le=10)] = Field(
        1.1, description="maxAllocatedStorage must be at least this many times allocatedStorage"
    )
    parameter_prefix: str = Field(
        "/prism/{stack}",
        description="SSM path of a stack's own parameters; {stack} is the stack name",
        pattern=r"^/.*\{stack\}.*$",
    )

    @model_validator(mode="after")
    def _prod_floor_not_lower(self) -> PolicyConfig:
        if self.prod_min_retention_days < self.min_retention_days:
            raise ValueError(
                f"prodMinRetentionDays ({self.prod_min_retention_days}) must not be below "
                f"minRetentionDays ({self.min_retention_days})"
            )
        return self

    def retention_floor(self, prod: bool) -> int:
        return self.prod_min_retention_days if prod else self.min_retention_days


def field_schemas(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """JSON-schema properties of the named settings (aliases), for a policy's config_schema."""
    properties = PolicyConfig.model_json_schema(by_alias=True)["properties"]
    result = {}
    for name in names:
        schema = {k: v for k, v in properties[name].items() if k != "title"}
        result[name] = schema
    return result


@dataclass(frozen=True)
class PackConfig:
    """What a config file says: settings per policy, and enforcement levels that override."""

    settings: Mapping[str, PolicyConfig] = field(default_factory=dict)
    levels: Mapping[str, Level] = field(default_factory=dict)
    all_level: Level | None = None
    source: Path | None = None

    def for_policy(self, name: str) -> PolicyConfig:
        return self.settings.get(name) or PolicyConfig()

    def level(self, name: str, default: str) -> str:
        level = self.levels.get(name) or self.all_level or default
        return "mandatory" if level == "remediate" else level


_LEVELS = ("mandatory", "advisory", "disabled", "remediate")


def _level(value: Any, where: str) -> Level:
    if value not in _LEVELS:
        raise PolicyConfigError(f"{where} must be one of {', '.join(_LEVELS)} (got {value!r})")
    return value  # type: ignore[return-value]


def parse_pack_config(
    doc: Any, known: Mapping[str, Iterable[str]], source: Path | None = None
) -> PackConfig:
    """Validate a config document; `known` maps each policy name to the settings it reads."""
    where = str(source) if source else "policy config"
    if not isinstance(doc, dict):
        raise PolicyConfigError(f"{where} must be a JSON object of policy names")
    settings: dict[str, PolicyConfig] = {}
    levels: dict[str, Level] = {}
    all_level = None
    for name, value in doc.items():
        if name == "all":
            all_level = _level(value, f"{where}: all")
            continue
        if name not in known:
            raise PolicyConfigError(
                f"{where}: {name!r} is not a policy of this pack; remove it or fix the name "
                f"(policies: {', '.join(sorted(known))})"
            )
        if isinstance(value, str):
            levels[name] = _level(value, f"{where}: {name}")
            continue
        if not isinstance(value, dict):
            raise PolicyConfigError(f"{where}: {name} must be a level or an object of settings")
        value = dict(value)
        if "enforcementLevel" in value:
            levels[name] = _level(
                value.pop("enforcementLevel"), f"{where}: {name}.enforcementLevel"
            )
        allowed = set(known[name])
        extra = sorted(set(value) - allowed)
        if extra:
            reads = ", ".join(sorted(allowed)) or "no settings"
            raise PolicyConfigError(
                f"{where}: {name}.{extra[0]} is not a setting of this policy (it reads {reads})"
            )
        try:
            settings[name] = PolicyConfig.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            path = f"{name}.{key}" if key else name
            raise PolicyConfigError(f"{where}: {path}: {err['msg']}") from None
    return PackConfig(settings=settings, levels=levels, all_level=all_level, source=source)


def load_pack_config(path: Path, known: Mapping[str, Iterable[str]]) -> PackConfig:
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise PolicyConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise PolicyConfigError(
            f"{path}: not valid JSON at line {exc.lineno}; fix the file"
        ) from None
    return parse_pack_config(doc, known, source=path)


def stack_config_file(stack: str, config_dir: Path = CONFIG_DIR) -> Path:
    """Where the pack's settings for a stack live (policy/config/<stack>.json)."""
    return config_dir / f"{stack}.json"
