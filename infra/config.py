"""Typed stack configuration: one pydantic model per component, validated at the edge.

Every knob lives under the `prism-infra:` namespace of `Pulumi.<stack>.yaml`. Structured
components are objects (`prism-infra:database`, `prism-infra:apiHost`, ...); runtime secrets are
separate secret keys (`prism-infra:clerkSecretKey`, ...). Any problem surfaces as one
`ConfigError` whose text names the full key and the fix, e.g.
`prism-infra:database.backupRetentionDays must be 7-35 (got 3)` (with an en dash).

Production rules are switched on by `prism-infra:environment: prod`, an explicit knob, so a
stack cannot lose them by being renamed; the stack called `prod` must also say `prod`.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pulumi
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass as pydantic_dataclass

from infra.downloads import pinned_versions

# Defined without pulumi (infra/errors.py) and re-exported here.
from infra.errors import ConfigError as ConfigError
from infra.errors import FieldProblem
from infra.host_rules import (
    COMPOSE_SET_ENV,
    ENV_BYTES_LIMIT,
    ENV_MAX_ENTRIES,
    HEREDOC_MARKER,
    HOST_RESERVED_PORTS,
    ecr_registry,
    image_digest,
)

NAMESPACE = "prism-infra"
DASH = "\u2013"  # en dash for ranges ("7-35"); escaped so no look-alike character hides in code

Environment = Literal["staging", "prod", "drill"]
ENVIRONMENTS = ("staging", "prod", "drill")

# Runtime secrets: the config key (a Pulumi secret) and the environment variable the API reads.
SECRET_SETTINGS: dict[str, str] = {
    "clerkSecretKey": "CLERK_SECRET_KEY",
    "clerkPublishableKey": "CLERK_PUBLISHABLE_KEY",
    "redisUrl": "REDIS_URL",
}
SECRET_KEYS: tuple[str, ...] = tuple(f"{NAMESPACE}:{k}" for k in SECRET_SETTINGS)
# The private registry's password or token: needed only with apiHost.registryUsername.
REGISTRY_PASSWORD_KEY = "registryPassword"
OPTIONAL_SECRET_KEYS: tuple[str, ...] = (f"{NAMESPACE}:{REGISTRY_PASSWORD_KEY}",)
# Set by the deploy workflow only (never committed): the commit a `pulumi up` applies.
DEPLOYED_COMMIT_KEY = "deployedCommit"
# Built on the host from the RDS endpoint and the RDS-managed secret, never stored as a value.
DATABASE_URL_ENV = "DATABASE_URL"

# Values committed in the example stack files; a real deployment must replace them.
EXAMPLE_CLOUDFLARE_ID = "0" * 32
_EXAMPLE_DOMAIN = re.compile(r"(^|\.|@)example\.(com|org|net)$")
# RFC 5737's documentation ranges: no real endpoint lives there, so an example CIDR uses one.
_EXAMPLE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)


def _is_example_network(cidr: str) -> bool:
    network = ipaddress.ip_network(cidr, strict=False)
    return any(network.overlaps(example) for example in _EXAMPLE_NETWORKS)


def full_key(path: str) -> str:
    return path if ":" in path else f"{NAMESPACE}:{path}"


# Hints for secret keys put `--secret` last: the command line masks the word after any
# secret-looking flag in its error output (recovery/redact.py), which would hide the key's name.


def _set_hint(key: str, placeholder: str = "<value>") -> str:
    if ":" in key and "." not in key.split(":", 1)[1]:
        return f"pulumi config set {key} {placeholder}"
    return f"pulumi config set --path '{key}' {placeholder}"


def _got(value: Any) -> str:
    return f"(got {json.dumps(value, default=str)})"


# ---------------------------------------------------------------------------------------------
# Field-level checks. Each raises ValueError with the text that follows the key.


def _between(lo: int, hi: int) -> AfterValidator:
    def check(value: int) -> int:
        if not lo <= value <= hi:
            raise ValueError(f"must be {lo}{DASH}{hi} {_got(value)}")
        return value

    return AfterValidator(check)


def _pattern(regex: str, what: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be {what} {_got(value)}")
        return value

    return AfterValidator(check)


def _db_identifier(value: str) -> str:
    # RDS rules: 1-63 letters, digits or hyphens; starts with a letter; no "--"; no trailing "-".
    ok = re.fullmatch(r"[a-z][a-z0-9-]{0,62}", value) and "--" not in value
    if not ok or value.endswith("-"):
        raise ValueError(
            "must be an RDS identifier: 1-63 lowercase letters, digits or single hyphens, "
            f"starting with a letter {_got(value)}"
        )
    return value


_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _hostname(value: str) -> str:
    labels = value.split(".")
    ok = (
        len(value) <= 253
        and len(labels) >= 2
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )
    if not ok:
        raise ValueError(f"must be a lowercase DNS name like api.example.com {_got(value)}")
    return value


def _env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
        raise ValueError(f"must be an UPPER_SNAKE environment variable name {_got(value)}")
    return value


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"must be an IPv4 network like 10.40.0.0/16 {_got(value)}") from None
    if net.version != 4 or not 16 <= net.prefixlen <= 24:
        raise ValueError(f"must be an IPv4 network from /16 to /24 {_got(value)}")
    return value


def _egress_cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"must be an IPv4 network like 10.60.0.0/24 {_got(value)}") from None
    if net.version != 4:
        raise ValueError(f"must be an IPv4 network {_got(value)}")
    return value


DbIdentifier = Annotated[str, AfterValidator(_db_identifier)]
CloudflareId = Annotated[str, _pattern(r"[0-9a-f]{32}", "a 32-character lowercase hex id")]
Hostname = Annotated[str, AfterValidator(_hostname)]
Region = Annotated[str, _pattern(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d", "an AWS region")]
VpcId = Annotated[str, _pattern(r"vpc-[0-9a-f]{8,17}", "a VPC id like vpc-0abc1234")]
SubnetId = Annotated[str, _pattern(r"subnet-[0-9a-f]{8,17}", "a subnet id like subnet-0abc1234")]
Email = Annotated[str, _pattern(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", "an e-mail address")]
PgName = Annotated[str, _pattern(r"[a-zA-Z][a-zA-Z0-9_]{0,62}", "a PostgreSQL identifier")]
DbPort = Annotated[int, _between(1150, 65535)]  # what RDS accepts for PostgreSQL
EnvName = Annotated[str, AfterValidator(_env_name)]
Cidr = Annotated[str, AfterValidator(_cidr)]


class _Model(BaseModel):
    """camelCase keys in YAML, snake_case in Python; unknown keys are errors (typos)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
    )


# ---------------------------------------------------------------------------------------------
# Backup and maintenance windows (UTC), as RDS spells them.

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_MIN = 24 * 60
_WEEK_MIN = 7 * _DAY_MIN
MIN_WINDOW_MINUTES = 30  # RDS refuses shorter backup and maintenance windows


def _clock(text: str) -> int | None:
    m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", text)
    return int(m[1]) * 60 + int(m[2]) if m else None


def parse_backup_window(text: str) -> tuple[int, int]:
    """`hh:mm-hh:mm` → (start minute of the day, length in minutes)."""
    parts = text.split("-")
    start, end = (_clock(p) for p in parts) if len(parts) == 2 else (None, None)
    if start is None or end is None:
        raise ValueError(f"must look like 03:00-03:30 (hh:mm-hh:mm, UTC) {_got(text)}")
    length = (end - start) % _DAY_MIN
    if length < MIN_WINDOW_MINUTES:
        raise ValueError(f"must be at least {MIN_WINDOW_MINUTES} minutes long {_got(text)}")
    return start, length


def parse_maintenance_window(text: str) -> tuple[int, int]:
    """`ddd:hh:mm-ddd:hh:mm` → (start minute of the week, length in minutes)."""

    def point(part: str) -> int | None:
        day, _, clock = part.partition(":")
        minute = _clock(clock)
        if day not in _DAYS or minute is None:
            return None
        return _DAYS.index(day) * _DAY_MIN + minute

    parts = text.split("-")
    start, end = (point(p) for p in parts) if len(parts) == 2 else (None, None)
    if start is None or end is None:
        raise ValueError(
            f"must look like sun:04:30-sun:05:30 (ddd:hh:mm-ddd:hh:mm, UTC) {_got(text)}"
        )
    length = (end - start) % _WEEK_MIN
    if length < MIN_WINDOW_MINUTES:
        raise ValueError(f"must be at least {MIN_WINDOW_MINUTES} minutes long {_got(text)}")
    return start, length


def windows_overlap(backup: str, maintenance: str) -> bool:
    """True if the daily backup window meets the weekly maintenance window on any day."""
    b_start, b_len = parse_backup_window(backup)
    m_start, m_len = parse_maintenance_window(maintenance)
    backup_minutes = {
        (day * _DAY_MIN + b_start + i) % _WEEK_MIN for day in range(7) for i in range(b_len)
    }
    return any((m_start + i) % _WEEK_MIN in backup_minutes for i in range(m_len))


def _backup_window(value: str) -> str:
    parse_backup_window(value)
    return value


def _maintenance_window(value: str) -> str:
    parse_maintenance_window(value)
    return value


# ---------------------------------------------------------------------------------------------
# Restore: where a new instance's data comes from.


class RestoreSpec(_Model):
    """Restore a new instance from a backup instead of creating an empty one.

    `point` is `latest` (latest restorable time), an ISO-8601 time with a UTC offset, or
    `snapshot:<snapshot id or ARN>`. A point in time needs the source: its DB identifier, or
    the ARN of its (replicated) automated backups when restoring in another region.
    """

    point: str
    source_identifier: DbIdentifier | None = None
    source_automated_backups_arn: (
        Annotated[
            str,
            _pattern(
                r"arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:auto-backup:[a-z0-9-]+",
                "an RDS automated-backups ARN",
            ),
        ]
        | None
    ) = None

    @property
    def kind(self) -> Literal["latest", "time", "snapshot"]:
        if self.point == "latest":
            return "latest"
        if self.point.startswith("snapshot:"):
            return "snapshot"
        return "time"

    @property
    def snapshot_id(self) -> str | None:
        return self.point.removeprefix("snapshot:") if self.kind == "snapshot" else None

    @property
    def restore_time(self) -> str | None:
        """The point as RFC 3339 UTC, the form RDS takes."""
        if self.kind != "time":
            return None
        return _parse_point_time(self.point).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def description(self) -> str:
        source = self.source_identifier or self.source_automated_backups_arn or "snapshot"
        return f"{source}@{self.point}"

    def check(self, key: str, target_identifier: str) -> None:
        if self.kind == "snapshot":
            if not re.fullmatch(r"[A-Za-z0-9:/._-]+", self.snapshot_id or ""):
                raise ConfigError(
                    f"{key}.point", f"must name a snapshot as snapshot:<id> {_got(self.point)}"
                )
            return
        if self.kind == "time":
            try:
                when = _parse_point_time(self.point)
            except ValueError as exc:
                raise ConfigError(f"{key}.point", str(exc)) from None
            if when > datetime.now(UTC):
                raise ConfigError(f"{key}.point", f"is in the future {_got(self.point)}")
        sources = [s for s in (self.source_identifier, self.source_automated_backups_arn) if s]
        if len(sources) != 1:
            raise ConfigError(
                f"{key}.sourceIdentifier",
                "is required for a point-in-time restore (or set sourceAutomatedBackupsArn "
                "instead, not both)",
            )
        if self.source_identifier == target_identifier:
            raise ConfigError(
                f"{key}.sourceIdentifier",
                f"must differ from the new instance's identifier {_got(target_identifier)}: "
                "a restore always creates a new instance",
            )


def _parse_point_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"must be latest, snapshot:<id> or an ISO time like 2026-04-01T03:00:00Z {_got(text)}"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"must carry a UTC offset, e.g. 2026-04-01T03:00:00Z {_got(text)}")
    return when.astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# Component models.


class NetworkConfig(_Model):
    """`create`: a small VPC of our own. `adopt`: an existing VPC and subnets."""

    mode: Literal["create", "adopt"] = "create"
    cidr_block: Cidr = "10.40.0.0/16"
    az_count: Annotated[int, _between(2, 3)] = 2
    vpc_id: VpcId | None = None
    private_subnet_ids: list[SubnetId] | None = None
    host_subnet_id: SubnetId | None = None
    host_public_ip: bool = False

    def check(self, key: str) -> None:
        """Kept for callers: the rules already ran when the model was built."""

    @model_validator(mode="after")
    def _rules(self) -> NetworkConfig:
        key = full_key("network")
        if self.mode == "create":
            for name in ("vpc_id", "private_subnet_ids", "host_subnet_id"):
                if getattr(self, name) is not None:
                    raise FieldProblem(
                        to_camel(name),
                        "is only used with mode: adopt; remove it or set mode: adopt",
                    )
            return self
        if self.vpc_id is None:
            raise FieldProblem(
                "vpcId", f"is required with mode: adopt: {_set_hint(f'{key}.vpcId', 'vpc-...')}"
            )
        if not self.private_subnet_ids or len(self.private_subnet_ids) < 2:
            raise FieldProblem(
                "privateSubnetIds",
                "needs two or more private subnets in different availability zones (RDS needs two)",
            )
        if self.host_subnet_id is None:
            raise FieldProblem(
                "hostSubnetId",
                "is required with mode: adopt: a subnet with outbound internet (NAT or public)",
            )
        return self


class BackupReplicationConfig(_Model):
    """Cross-region copies of the automated backups (PITR survives a region loss)."""

    enabled: bool = False
    region: Region | None = None
    retention_days: Annotated[int, _between(7, 35)] | None = None


class DatabaseConfig(_Model):
    identifier: DbIdentifier
    engine_version: Annotated[
        str, _pattern(r"\d{2}(\.\d+)?", "a PostgreSQL version like 16 or 16.4")
    ] = "16"
    instance_class: Annotated[
        str, _pattern(r"db\.[a-z0-9]+\.[a-z0-9]+", "an RDS class like db.t4g.micro")
    ]
    allocated_storage_gb: Annotated[int, _between(20, 65536)] = 20
    max_allocated_storage_gb: Annotated[int, _between(20, 65536)] | None = None
    storage_type: Literal["gp3", "gp2", "io1", "io2"] = "gp3"
    db_name: PgName = "prism"
    master_username: PgName = "prism_admin"
    port: DbPort = 5432
    backup_retention_days: Annotated[int, _between(7, 35)]
    backup_window: Annotated[str, AfterValidator(_backup_window)]
    maintenance_window: Annotated[str, AfterValidator(_maintenance_window)]
    multi_az: bool = False
    deletion_protection: bool = False
    final_snapshot: bool = True
    apply_immediately: bool = False
    log_min_duration_statement_ms: Annotated[int, _between(-1, 600000)] = 1000
    backup_replication: BackupReplicationConfig = BackupReplicationConfig()
    restore: RestoreSpec | None = None
    # After a restore, the block may only go if this takes its place: the instance's origin
    # as its `prism:restored-from` tag shows it (RestoreSpec.description). See docs/stacks.md.
    restored_from: (
        Annotated[
            str,
            _pattern(
                r"[^\s@]+@[^\s]+",
                "<source>@<point> exactly as the instance's prism:restored-from tag shows it, "
                "e.g. prism-prod@latest",
            ),
        ]
        | None
    ) = None

    @property
    def engine_major(self) -> str:
        return self.engine_version.split(".")[0]

    @property
    def replication_retention_days(self) -> int:
        return self.backup_replication.retention_days or self.backup_retention_days

    def check(self, key: str, region: str) -> None:
        """Kept for callers: the rules within the section ran when the model was built; the
        one against aws:region runs when a StackConfig is built (environment_rules)."""

    @model_validator(mode="after")
    def _rules(self) -> DatabaseConfig:
        key = full_key("database")
        if windows_overlap(self.backup_window, self.maintenance_window):
            raise FieldProblem(
                "backupWindow",
                f"{self.backup_window} overlaps {key}.maintenanceWindow {self.maintenance_window}; "
                "move one of them (RDS refuses overlapping windows)",
            )
        if self.max_allocated_storage_gb is not None:
            # RDS: "Invalid max storage size": the ceiling must be at least 10 % above.
            least = -(-self.allocated_storage_gb * 11 // 10)  # ceil(1.1 x), in integers
            if self.max_allocated_storage_gb < least:
                raise FieldProblem(
                    "maxAllocatedStorageGb",
                    f"must be at least {least} (1.1 x allocatedStorageGb "
                    f"{self.allocated_storage_gb}, what RDS accepts) "
                    f"{_got(self.max_allocated_storage_gb)}",
                )
        repl = self.backup_replication
        if repl.enabled and repl.region is None:
            raise FieldProblem(
                "backupReplication.region",
                "is required when backups are replicated: "
                + _set_hint(f"{key}.backupReplication.region", "us-west-2"),
            )
        if self.restore is not None and self.restored_from is not None:
            raise FieldProblem(
                "restoredFrom",
                f"must not be set together with {key}.restore: keep the restore block, or "
                "(only once the restore is done) replace it with restoredFrom",
            )
        if self.restore is not None:
            try:
                self.restore.check("restore", self.identifier)
            except ConfigError as error:
                raise FieldProblem(error.key, error.problem) from None
        return self


_SECRET_LOOKING = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# An image reference as docker reads it: [registry[:port]/]path[:tag][@sha256:digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = (
    rf"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::\d+)?/)?"
    rf"{_COMPONENT}(?:/{_COMPONENT})*(?::\w[\w.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?"
)


class ApiHostConfig(_Model):
    instance_type: Annotated[
        str, _pattern(r"[a-z][a-z0-9-]*\.[a-z0-9]+", "an EC2 type like t4g.small")
    ] = "t4g.small"
    architecture: Literal["arm64", "x86_64"] = "arm64"
    root_volume_gb: Annotated[int, _between(8, 1024)] = 20
    # A tag, or a digest (`...@sha256:<64 hex>`) to pin the exact image.
    image: Annotated[
        str, _pattern(_IMAGE, "an image reference like ghcr.io/org/api:1.4 or ...@sha256:<hex>")
    ]
    port: Annotated[int, _between(1, 65535)] = 8080
    env: dict[EnvName, str] = {}
    # Releases with a pinned sha256 per architecture in infra/downloads.py.
    compose_version: Annotated[
        str, _pattern(r"v\d+\.\d+\.\d+", "a docker compose release like v5.4.0")
    ] = "v5.4.0"
    cloudflared_version: Annotated[
        str, _pattern(r"\d{4}\.\d+\.\d+", "a cloudflared release like 2026.9.3")
    ] = "2026.9.3"
    import_upload_dir: Annotated[str, _pattern(r"/[A-Za-z0-9/_.-]+", "an absolute path")] = (
        "/var/lib/prism/imports"
    )
    # uid:gid owning importUploadDir: the user the API container runs as (a non-root image
    # cannot write a root-owned directory). Numeric: the user need not exist on the host.
    import_upload_owner: Annotated[
        str, _pattern(r"\d{1,10}:\d{1,10}", "numeric uid:gid like 65532:65532")
    ] = "65532:65532"
    # Log in to a private registry (GHCR, Docker Hub, ...) as this user, with the password in
    # the secret key prism-infra:registryPassword. ECR images need none: the host role logs in.
    registry_username: (
        Annotated[str, _pattern(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}", "a registry user name")]
        | None
    ) = None
    extra_egress_tcp_ports: list[Annotated[int, _between(1, 65535)]] = [6379]
    # Where those ports may go: the Redis endpoint's network. Anywhere only outside prod.
    extra_egress_cidr: Annotated[str, AfterValidator(_egress_cidr)] = "0.0.0.0/0"

    def check(self, key: str) -> None:
        """Kept for callers: the rules already ran when the model was built."""

    @model_validator(mode="after")
    def _rules(self) -> ApiHostConfig:
        key = full_key("apiHost")
        graviton = (
            re.fullmatch(r"[a-z]+\d+[a-z]*g[a-z]*\.[a-z0-9]+", self.instance_type) is not None
        )
        if graviton != (self.architecture == "arm64"):
            raise FieldProblem(
                "instanceType",
                f"{self.instance_type} does not run {self.architecture} images; pick a matching "
                f"type or change {key}.architecture",
            )
        if self.port in HOST_RESERVED_PORTS:
            raise FieldProblem(
                "port",
                f"{self.port} is taken on the host by {HOST_RESERVED_PORTS[self.port]}; "
                "pick another port, e.g. 8080",
            )
        if HEREDOC_MARKER in self.import_upload_dir:
            raise FieldProblem(
                "importUploadDir",
                f"must not contain {HEREDOC_MARKER}, which ends a file in the boot script "
                f"{_got(self.import_upload_dir)}",
            )
        for tool, version, setting in (
            ("compose", self.compose_version, "composeVersion"),
            ("cloudflared", self.cloudflared_version, "cloudflaredVersion"),
        ):
            pinned = pinned_versions(tool, self.architecture)  # type: ignore[arg-type]
            if version not in pinned:
                raise FieldProblem(
                    setting,
                    f"has no pinned sha256 for {self.architecture} in infra/downloads.py "
                    f"{_got(version)}: use one of {pinned or 'none yet'}, or add the release's "
                    "published checksum there",
                )
        if self.registry_username is not None and ecr_registry(self.image) is not None:
            raise FieldProblem(
                "registryUsername",
                "is not used with an ECR image: the host role logs in to ECR; remove it",
            )
        reserved = {DATABASE_URL_ENV, *SECRET_SETTINGS.values()}
        for name, value in self.env.items():
            if name in COMPOSE_SET_ENV:
                setting = f"{key}.{COMPOSE_SET_ENV[name]}"
                raise FieldProblem(
                    f"env.{name}",
                    f"is set by the stack from {setting} and would be overridden; "
                    f"remove it and set {setting} instead",
                )
            if name in reserved or _SECRET_LOOKING.search(name):
                raise FieldProblem(
                    f"env.{name}",
                    "looks like a secret, and plain env lands in user data in clear: store it "
                    "as a Pulumi secret (pulumi config set <key> <value> --secret) and list it in "
                    "SECRET_SETTINGS "
                    "(infra/config.py)",
                )
            if HEREDOC_MARKER in name or HEREDOC_MARKER in value:
                raise FieldProblem(
                    f"env.{name}",
                    f"must not contain {HEREDOC_MARKER}, which ends a file in the boot script",
                )
            if _CONTROL.search(value):
                raise FieldProblem(
                    f"env.{name}",
                    f"must not contain control characters (newline, tab, ...) {_got(value)}",
                )
        if len(self.env) > ENV_MAX_ENTRIES:
            raise FieldProblem(
                "env",
                f"has {len(self.env)} entries; at most {ENV_MAX_ENTRIES} fit in user data, "
                "which EC2 caps at 16 KiB: remove entries",
            )
        size = sum(len(n.encode()) + len(v.encode()) for n, v in self.env.items())
        if size > ENV_BYTES_LIMIT:
            raise FieldProblem(
                "env",
                f"holds {size} bytes of names and values; at most {ENV_BYTES_LIMIT} fit, "
                "because plain env lands in user data, which EC2 caps at 16 KiB: "
                "shorten or remove entries",
            )
        return self


class TunnelConfig(_Model):
    account_id: CloudflareId
    zone_id: CloudflareId
    hostname: Hostname


class AlarmsConfig(_Model):
    email: Email
    free_storage_threshold_gb: Annotated[int, _between(1, 1000)] = 2
    cpu_threshold_percent: Annotated[int, _between(1, 100)] = 80


_SECTIONS: dict[str, type[_Model]] = {
    "network": NetworkConfig,
    "database": DatabaseConfig,
    "apiHost": ApiHostConfig,
    "tunnel": TunnelConfig,
    "alarms": AlarmsConfig,
}


@pydantic_dataclass(frozen=True, config=ConfigDict(arbitrary_types_allowed=True))
class StackConfig:
    """One stack's whole config. Building it (also with dataclasses.replace) runs the
    cross-section and prod rules (check_rules), so no caller can skip them."""

    stack: str
    environment: str
    region: str
    network: NetworkConfig
    database: DatabaseConfig
    api_host: ApiHostConfig
    tunnel: TunnelConfig
    alarms: AlarmsConfig
    # env var name → the value, a Pulumi secret Output; never a plain string.
    secret_env: dict[str, Any] = field(default_factory=dict)
    # prism-infra:registryPassword (a Pulumi secret Output) when apiHost.registryUsername is set.
    registry_password: Any = None
    # prism-infra:deployRoleArns: who deploys the stack and so may use its key; empty means the
    # environment's role of infra/ci_roles.py in the stack's account.
    deploy_role_arns: tuple[str, ...] = ()
    # prism-infra:deployedCommit: the commit a deploy applies (set by the deploy workflow),
    # exported so that the next deploy snapshots every migration since.
    deployed_commit: str | None = None

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @model_validator(mode="after")
    def _rules(self) -> StackConfig:
        environment_rules(self)
        return self


# ---------------------------------------------------------------------------------------------
# Loading.


def parse_section(name: str, raw: Any) -> _Model:
    """Validate one structured section; any error becomes a ConfigError naming the full key."""
    key = full_key(name)
    model = _SECTIONS[name]
    if raw is None:
        raise ConfigError(
            key, f"is required: add a `{key}:` block to the stack file (see docs/stacks.md)"
        )
    if not isinstance(raw, dict):
        raise ConfigError(key, f"must be an object of settings {_got(raw)}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _translate(key, model, exc) from None


def _translate(key: str, model: type[_Model], exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    path = key
    for part in err["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return ConfigError(path, f"is required: {_set_hint(path)}")
    if kind == "extra_forbidden":
        parent = path.rsplit(".", 1)[0]
        known = _known_keys(model, err["loc"][:-1])
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        hint = f"did you mean {parent}.{close[0]}? " if close else ""
        return ConfigError(path, f"is not a known setting; {hint}remove it or fix the spelling")
    if kind == "value_error":
        error = err["ctx"]["error"]
        if isinstance(error, FieldProblem):  # a model validator's rule: names its own field
            return ConfigError(f"{path}.{error.field}", error.problem)
        return ConfigError(path, str(error))
    if kind == "literal_error":
        return ConfigError(path, f"must be one of {err['ctx']['expected']} {_got(value)}")
    if kind.startswith("int"):
        return ConfigError(path, f"must be a whole number {_got(value)}")
    if kind.startswith("bool"):
        return ConfigError(path, f"must be true or false {_got(value)}")
    if kind.startswith("string"):
        return ConfigError(path, f"must be text {_got(value)}")
    if kind.startswith(("list", "dict", "model")):
        return ConfigError(path, f"has the wrong shape: {err['msg'].lower()} {_got(value)}")
    return ConfigError(path, f"is invalid: {err['msg']} {_got(value)}")


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        if isinstance(part, int):
            continue
        fld = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        inner = getattr(fld, "annotation", None) if fld else None
        candidates = [a for a in getattr(inner, "__args__", (inner,)) if isinstance(a, type)]
        nested = next((a for a in candidates if issubclass(a, BaseModel)), None)
        if nested is None:
            return []
        model = nested
    return [f.alias or n for n, f in model.model_fields.items()]


def check_rules(cfg: StackConfig) -> None:
    """Every rule of a stack file: the stack called prod says prod, then environment_rules."""
    if cfg.stack == "prod" and cfg.environment != "prod":
        raise ConfigError(
            full_key("environment"),
            f"must be prod for the stack named prod {_got(cfg.environment)}",
        )
    environment_rules(cfg)


def environment_rules(cfg: StackConfig) -> None:
    """Rules across sections and the environment's rules; raises the first ConfigError. Run
    whenever a StackConfig is built (rules within one section are the sections' own model
    validators). Not the stack-name rule: a program may describe a stack it derives from
    another (a drill of prod)."""
    env_key = full_key("environment")
    if cfg.environment not in ENVIRONMENTS:
        raise ConfigError(
            env_key,
            f"must be staging, prod or drill {_got(cfg.environment)}: "
            + _set_hint(env_key, "staging"),
        )
    repl, db_key = cfg.database.backup_replication, full_key("database")
    if repl.enabled and repl.region == cfg.region:
        raise ConfigError(
            f"{db_key}.backupReplication.region",
            f"must differ from aws:region {_got(repl.region)}: "
            "a copy in the same region does not survive its loss",
        )
    db, db_key = cfg.database, full_key("database")
    if cfg.environment in ("staging", "prod") and not db.final_snapshot:
        raise ConfigError(
            f"{db_key}.finalSnapshot",
            f"must be true when {env_key} is {cfg.environment}: "
            "deleting the instance must leave a snapshot",
        )
    if not cfg.is_prod:
        return
    prod = f"when {env_key} is prod"
    if not db.deletion_protection:
        raise ConfigError(f"{db_key}.deletionProtection", f"must be true {prod} {_got(False)}")
    if db.backup_retention_days < 30:
        raise ConfigError(
            f"{db_key}.backupRetentionDays",
            f"must be at least 30 {prod} {_got(db.backup_retention_days)}",
        )
    if not db.multi_az:
        raise ConfigError(f"{db_key}.multiAz", f"must be true {prod} {_got(False)}")
    if image_digest(cfg.api_host.image) is None:
        # A tag can move after the approval: prod runs exactly the image that was approved.
        raise ConfigError(
            f"{full_key('apiHost')}.image",
            f"must name the image by digest (…@sha256:<64 hex>) {prod} "
            f"{_got(cfg.api_host.image)}: the deploy workflow resolves the approved tag and sets "
            "it; by hand: docker buildx imagetools inspect <image:tag>",
        )
    if not db.backup_replication.enabled:
        raise ConfigError(
            f"{db_key}.backupReplication.enabled", f"must be true {prod} {_got(False)}"
        )
    if db.replication_retention_days < 30:
        raise ConfigError(
            f"{db_key}.backupReplication.retentionDays",
            f"must be at least 30 {prod} {_got(db.replication_retention_days)}",
        )
    host = cfg.api_host
    if host.extra_egress_tcp_ports and ipaddress.ip_network(host.extra_egress_cidr).prefixlen == 0:
        raise ConfigError(
            f"{full_key('apiHost')}.extraEgressCidr",
            f"must name the Redis endpoint's network (e.g. its subnet's CIDR) {prod} and "
            f"extraEgressTcpPorts is set {_got(host.extra_egress_cidr)}",
        )


def reject_example_values(cfg: StackConfig) -> None:
    """Refuse the committed example values: they only serve offline plans and tests."""
    tunnel, key = cfg.tunnel, full_key("tunnel")
    examples = [
        (f"{key}.accountId", tunnel.account_id, tunnel.account_id == EXAMPLE_CLOUDFLARE_ID),
        (f"{key}.zoneId", tunnel.zone_id, tunnel.zone_id == EXAMPLE_CLOUDFLARE_ID),
        (f"{key}.hostname", tunnel.hostname, bool(_EXAMPLE_DOMAIN.search(tunnel.hostname))),
        (
            f"{full_key('alarms')}.email",
            cfg.alarms.email,
            bool(_EXAMPLE_DOMAIN.search(cfg.alarms.email)),
        ),
        (f"{full_key('apiHost')}.image", cfg.api_host.image, "/example/" in cfg.api_host.image),
        (
            f"{full_key('apiHost')}.extraEgressCidr",
            cfg.api_host.extra_egress_cidr,
            _is_example_network(cfg.api_host.extra_egress_cidr),
        ),
    ]
    for path, value, is_example in examples:
        if is_example:
            raise ConfigError(path, f"is still the example value {_got(value)}: {_set_hint(path)}")


def _raw(config: pulumi.Config, name: str) -> Any:
    text = config.get(name)
    if text is None or name not in _SECTIONS:
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(
            full_key(name), "must be an object of settings, not a plain value"
        ) from None


SECRET_KEYS_ENV = "PULUMI_CONFIG_SECRET_KEYS"


def declared_secret_keys() -> set[str] | None:
    """Which of SECRET_KEYS the engine declared secret, or None if nothing says.

    The CLI's language host always sets PULUMI_CONFIG_SECRET_KEYS, a JSON list that is `[]`
    when no key is secret: its presence, even empty, is an answer. The Automation API's inline
    programs and Pulumi's mocks fill the runtime's set instead, and only when it is not empty;
    so with no variable and none of our keys in that set, nothing says. (Offline runs check
    the stack file itself: infra/offline.py.)
    """
    declared = {
        k for k in (*SECRET_KEYS, *OPTIONAL_SECRET_KEYS) if pulumi.runtime.is_config_secret(k)
    }
    if SECRET_KEYS_ENV in os.environ:
        return declared | set(pulumi.runtime.get_config_secret_keys_env() or [])
    return declared or None


def load_config(*, examples_allowed: bool = False) -> StackConfig:
    """Read and validate every knob of the current stack, once."""
    stack = pulumi.get_stack()
    config = pulumi.Config(NAMESPACE)
    environment = config.get("environment")
    if environment not in ("staging", "prod", "drill"):
        raise ConfigError(
            full_key("environment"),
            f"must be staging, prod or drill {_got(environment)}: "
            + _set_hint(full_key("environment"), "staging"),
        )
    region = pulumi.Config("aws").get("region")
    if region is None or not re.fullmatch(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d", region):
        raise ConfigError(
            "aws:region",
            f"must be set to an AWS region {_got(region)}: pulumi config set aws:region us-east-1",
        )

    sections = {name: parse_section(name, _raw(config, name)) for name in _SECTIONS}

    known_secret = declared_secret_keys()
    secret_env: dict[str, pulumi.Output[str]] = {}
    for name, env in SECRET_SETTINGS.items():
        key = full_key(name)
        value = config.get_secret(name)
        if value is None:
            raise ConfigError(
                key, f"is not set: pulumi config set {key} <value> --stack {stack} --secret"
            )
        if known_secret is not None and key not in known_secret:
            raise ConfigError(
                key,
                f"is stored in clear text: pulumi config set {key} <value> -s {stack} --secret",
            )
        secret_env[env] = value

    registry_password = None
    api_host: ApiHostConfig = sections["apiHost"]  # type: ignore[assignment]
    if api_host.registry_username is not None:
        key = full_key(REGISTRY_PASSWORD_KEY)
        registry_password = config.get_secret(REGISTRY_PASSWORD_KEY)
        if registry_password is None:
            raise ConfigError(
                key,
                f"is not set but {full_key('apiHost')}.registryUsername is: "
                f"pulumi config set {key} <token> --stack {stack} --secret",
            )
        if known_secret is not None and key not in known_secret:
            raise ConfigError(
                key,
                f"is stored in clear text: pulumi config set {key} <token> -s {stack} --secret",
            )

    deploy_roles = deploy_role_arns(config.get_object(DEPLOY_ROLES_KEY))

    deployed_commit = config.get(DEPLOYED_COMMIT_KEY)
    if deployed_commit is not None and not re.fullmatch(r"[0-9a-f]{40}", deployed_commit):
        raise ConfigError(
            full_key(DEPLOYED_COMMIT_KEY),
            f"must be a full git commit id (40 lowercase hex) {_got(deployed_commit)}: the "
            "deploy workflow sets it to $GITHUB_SHA",
        )

    # Validating the whole runs the rules across sections (check_rules).
    cfg = StackConfig(
        stack=stack,
        environment=environment,  # type: ignore[arg-type]
        region=region,
        network=sections["network"],  # type: ignore[arg-type]
        database=sections["database"],  # type: ignore[arg-type]
        api_host=sections["apiHost"],  # type: ignore[arg-type]
        tunnel=sections["tunnel"],  # type: ignore[arg-type]
        alarms=sections["alarms"],  # type: ignore[arg-type]
        secret_env=secret_env,
        registry_password=registry_password,
        deploy_role_arns=deploy_roles,
        deployed_commit=deployed_commit,
    )
    check_rules(cfg)  # the stack-name rule; the others ran when cfg was built
    if not examples_allowed:
        reject_example_values(cfg)
    return cfg


DEPLOY_ROLES_KEY = "deployRoleArns"
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")


def deploy_role_arns(raw: Any) -> tuple[str, ...]:
    """`prism-infra:deployRoleArns`: IAM role ARNs (not STS sessions: a key policy names roles)."""
    if raw is None:
        return ()
    key = full_key(DEPLOY_ROLES_KEY)
    if not isinstance(raw, list) or not raw:
        raise ConfigError(key, f"must be a non-empty list of IAM role ARNs {_got(raw)}")
    for item in raw:
        if not isinstance(item, str) or not _ROLE_ARN.fullmatch(item):
            raise ConfigError(
                key, f"must hold IAM role ARNs like arn:aws:iam::123456789012:role/x {_got(item)}"
            )
    return tuple(raw)


def resource_tags(
    stack: str, component: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The tags every taggable resource carries; `extra` adds e.g. drill expiry tags."""
    return {
        "prism:stack": stack,
        "prism:component": component,
        "managed-by": "pulumi",
        **(extra or {}),
    }
