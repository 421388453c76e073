"""The manifest: expectations a restored database must meet, on top of what the catalog shows.

The shipped Prism manifest (`drills/prism-manifest.yaml`) is always the base; a user manifest
overlays it, mapping by mapping, so a file that only changes the RPO target still expects
Prism's tables. Under `tables`, a table set to null is dropped and a list replaces the set.
"""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from infra.errors import BadInput

DEFAULT_MANIFEST_NAME = "prism-manifest.yaml"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class _Strict(BaseModel):
    # A misspelt key must fail loudly: silently ignoring it would drop an expectation.
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableExpectation(_Strict):
    min_rows: int = Field(default=1, ge=0)


class OrgScope(_Strict):
    table: str = "organizations"
    column_names: list[str] = Field(default_factory=lambda: ["org_id", "organization_id"])


class Migrations(_Strict):
    table: str | None = None  # None: look for a known migration table
    column: str | None = None  # None: the table's known version column
    min_version: int | None = None


class Freshness(_Strict):
    table: str = "audit_logs"
    column: str | None = None  # None: the table's creation timestamp, discovered
    max_staleness: timedelta = timedelta(hours=24)

    @field_validator("max_staleness", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)


class SpotChecks(_Strict):
    rows_per_table: int = Field(default=5, ge=1, le=1000)


class Targets(_Strict):
    rpo_hours: float = Field(default=24, gt=0)
    rto_hours: float = Field(default=4, gt=0)

    @property
    def rpo(self) -> timedelta:
        return timedelta(hours=self.rpo_hours)

    @property
    def rto(self) -> timedelta:
        return timedelta(hours=self.rto_hours)


class Manifest(_Strict):
    schemas: list[str] = Field(default_factory=lambda: ["public"], min_length=1)
    tables: dict[str, TableExpectation] = Field(default_factory=dict)
    org: OrgScope = Field(default_factory=OrgScope)
    migrations: Migrations = Field(default_factory=Migrations)
    freshness: Freshness = Field(default_factory=Freshness)
    spot_checks: SpotChecks = Field(default_factory=SpotChecks)
    targets: Targets = Field(default_factory=Targets)
    # After a cluster (pg_dumpall) restore: the database to check. None: the one holding the
    # most of the expected tables.
    database: str | None = Field(default=None, min_length=1)

    @field_validator("tables", mode="before")
    @classmethod
    def _tables(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {name: {} for name in value}
        if isinstance(value, dict):
            return {name: ({} if spec is None else spec) for name, spec in value.items()
                    if spec is not _DROPPED}
        return value


# A table the overlay removed; distinct from `{}` (expected with default minimums).
_DROPPED = object()


def parse_duration(value: Any) -> Any:
    """'90m', '6h', '1d', '1h30m' or a number of seconds; anything else is left to pydantic."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    parts = _DURATION_PART.findall(text)
    if parts and _DURATION_PART.sub("", text).strip() == "":
        return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return timedelta(seconds=float(text))
    raise ValueError(f"{value!r} is not a duration; use e.g. 30m, 6h, 1d")


def default_manifest_path() -> Path:
    return Path(str(resources.files("drills").joinpath(DEFAULT_MANIFEST_NAME)))


def load_manifest(path: Path | None = None) -> Manifest:
    """The default Prism manifest, overlaid with `path` when given.

    Raises BadInput with one line naming the file and key at fault.
    """
    base = _read_yaml(default_manifest_path())
    if path is None:
        return _validate(base, default_manifest_path())
    path = Path(path)
    top = _read_yaml(path)
    replaced = _replaced_keys(top, path)
    merged = _overlay({k: v for k, v in base.items() if k not in replaced}, top)
    return _validate(merged, path)


REPLACE_KEY = "replace"


def _replaced_keys(top: dict[str, Any], path: Path) -> set[str]:
    """`replace: [tables, ...]`: those keys of this manifest replace Prism's, not overlay them
    (a manifest for another database states its own table set outright)."""
    value = top.pop(REPLACE_KEY, [])
    if isinstance(value, str):
        value = [value]
    known = set(Manifest.model_fields)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"manifest {path}: {REPLACE_KEY} must be a list of keys, e.g. [tables]")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise BadInput(f"manifest {path}: {REPLACE_KEY}: unknown key '{unknown[0]}'; known keys:"
                       f" {', '.join(sorted(known))}")
    return set(value)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise BadInput(f"manifest {path} not found: pass an existing YAML file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"manifest {path} cannot be read ({err}): pass a UTF-8 YAML file") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise BadInput(f"manifest {path} is not valid YAML{where}: {problem}; fix the syntax") \
            from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(
            f"manifest {path}: the top level must be a mapping of keys (tables, freshness, ...)"
        )
    return data


def _overlay(base: dict[str, Any], top: dict[str, Any], key_path: str = "") -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        here = f"{key_path}.{key}" if key_path else str(key)
        below = merged.get(key)
        if here.startswith("tables.") and value is None:
            merged[key] = _DROPPED
        elif isinstance(value, dict) and isinstance(below, dict):
            merged[key] = _overlay(below, value, here)
        else:
            merged[key] = value
    return merged


def _validate(data: dict[str, Any], path: Path) -> Manifest:
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        if first["type"] == "extra_forbidden":
            known = _known_keys(first["loc"][:-1])
            raise BadInput(
                f"manifest {path}: unknown key '{key}'; known keys here: {', '.join(known)}"
            ) from None
        message = first["msg"].removeprefix("Value error, ")
        raise BadInput(f"manifest {path}: {key}: {message}") from None


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at `loc`, for the error message's fix."""
    model: type[BaseModel] = Manifest
    for part in loc:
        if model is Manifest and part == "tables":
            model = TableExpectation
            continue
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif model is TableExpectation:
            continue
    return list(model.model_fields)
