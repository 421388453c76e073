"""The recovery stack: the prod stack's own program and config, restored into a new instance.

`build_plan` turns the prod stack's config into the recovery stack's: a `database.restore`
block, a new identifier `<db>-rec-<name>`, its own tunnel hostname, the same safety settings
(environment prod: deletion protection, final snapshot, retention, multi-AZ, replication),
validated by `infra.config` exactly as a stack file would be. `recovery_program` declares it
with `infra.stack.build`.

In the DR region (`--region`, the home region lost) nothing may be created in the home region:
the recovered instance's backups replicate to a third region (`--replicate-to`), or, where
the environment does not require replication, nowhere. Once cut over, the recovery tunnel's
ingress declares the production hostname, so the stack's own `up`s (a re-run, a refresh)
keep the route the production traffic now takes, and the stack exports `cutoverFrom`, where
the hostname pointed before, for the undo.

The runtime secrets come from the prod stack's SSM parameters (or PRISM_RECOVERY_<ENV> when
those are out of reach) and reach the program only, as Pulumi secrets: never the stack's plain
config, an output or a log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from infra.errors import BadInput
from recovery.aws import Target, aws_errors
from recovery.engine import Program
from recovery.points import Point, Source
from recovery.times import utc_stamp

if TYPE_CHECKING:
    from infra.config import StackConfig

SECTIONS = ("network", "database", "apiHost", "tunnel", "alarms")
TUNNEL_CONFIG_TYPE = (
    "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
)
SECRET_HINT_PREFIX = "PRISM_RECOVERY_"  # e.g. PRISM_RECOVERY_CLERK_SECRET_KEY


def recovery_hostname(prod_hostname: str, name: str) -> str:
    """`api.example.com` → `api-<name>.example.com`: one label deep, so the zone's
    Universal SSL certificate (`*.example.com`) covers it."""
    first, _, rest = prod_hostname.partition(".")
    return f"{first}-{name}.{rest}"


def recovery_identifier(prod_identifier: str, name: str) -> str:
    suffix = name.removeprefix("recovery-")
    head = prod_identifier[: 63 - len(suffix) - 5].rstrip("-")
    return f"{head}-rec-{suffix}"


@dataclass(frozen=True)
class RecoveryPlan:
    name: str  # the recovery stack
    prod_stack: str
    prod_identifier: str
    home_region: str
    region: str
    point: Point
    source: Source
    cfg: StackConfig  # secrets not included: they are read at up time
    config_values: dict[str, str]  # the recovery stack's plain config, for the engine
    prod_hostname: str
    hostname: str
    replication_region: str | None = None  # where the recovered instance's backups go
    # Set once cut over: the production hostname's CNAME target before it moved here.
    cutover_from: str | None = None

    @property
    def db_identifier(self) -> str:
        return self.cfg.database.identifier

    def lines(self) -> list[tuple[str, str]]:
        db = self.cfg.database
        return [
            ("recovery stack", f"{self.name} (from stack {self.prod_stack}'s config)"),
            (
                "region",
                self.region
                + ("" if self.region == self.home_region else " (DR region: replicated backups)"),
            ),
            ("backup point", f"{self.point.text} from {self.source.description}"),
            (
                "restorable window",
                f"{utc_stamp(self.source.earliest) if self.source.earliest else '—'} to "
                f"{utc_stamp(self.source.latest) if self.source.latest else '—'}",
            ),
            (
                "new DB instance",
                f"{db.identifier} ({db.instance_class}); {self.prod_identifier} is kept",
            ),
            (
                "safety",
                f"deletion protection {db.deletion_protection}, "
                f"final snapshot {db.final_snapshot}, "
                f"backups {db.backup_retention_days} days, multi-AZ {db.multi_az}",
            ),
            (
                "backup replication",
                f"to {self.replication_region}"
                if self.replication_region
                else "off"
                + (
                    f" (nothing is created in the lost {self.home_region})"
                    if self.region != self.home_region
                    else ""
                ),
            ),
            ("recovery hostname", self.hostname),
            ("production hostname", f"{self.prod_hostname} (moves only with --cutover)"),
        ]


def build_plan(
    target: Target,
    *,
    point: Point,
    source: Source,
    name: str,
    replicate_to: str | None = None,
    examples_allowed: bool = False,
) -> RecoveryPlan:
    """The recovery stack's config: prod's, with a restore block, a new identifier and host."""
    if target.stack is None or target.stack_config is None or target.database is None:
        raise BadInput("recover needs --stack: the recovery stack is built from the stack's config")
    from infra.config import (
        NAMESPACE,
        StackConfig,
        check_rules,
        full_key,
        parse_section,
        reject_example_values,
    )

    config = {k: v for k, v in target.stack_config.items()}
    raw = {s: dict(config.get(full_key(s)) or {}) for s in SECTIONS}
    database = raw["database"]
    database.pop("restoredFrom", None)
    database["identifier"] = recovery_identifier(target.db_instance, name)
    restore: dict[str, str] = {
        "point": point.text if point.kind != "time" else utc_stamp(point.time)
    }
    if source.source_identifier:
        restore["sourceIdentifier"] = source.source_identifier
    if source.automated_backups_arn:
        restore["sourceAutomatedBackupsArn"] = source.automated_backups_arn
    database["restore"] = restore
    environment = config.get(full_key("environment"))
    replication = dict(database.get("backupReplication") or {})
    if source.region != target.region:
        # The home region is lost: its copies would be created there. A network of its own
        # in the DR region too (adopted subnets exist only in the home region).
        replication = _dr_replication(replication, replicate_to, target.region, source.region)
        database["backupReplication"] = replication
        if (raw["network"].get("mode") or "create") == "adopt":
            raw["network"] = {"mode": "create"}
    elif replicate_to is not None:
        raise BadInput(
            "--replicate-to is for a recovery in the DR region (--region); in the home region "
            "the backups replicate where the stack says"
        )
    prod_hostname = str(raw["tunnel"].get("hostname", ""))
    hostname = recovery_hostname(prod_hostname, name)
    raw["tunnel"]["hostname"] = hostname
    sections = {s: parse_section(s, raw[s]) for s in SECTIONS}
    cfg = StackConfig(
        stack=name,
        environment=environment,  # type: ignore[arg-type]
        region=source.region,
        network=sections["network"],  # type: ignore[arg-type]
        database=sections["database"],  # type: ignore[arg-type]
        api_host=sections["apiHost"],  # type: ignore[arg-type]
        tunnel=sections["tunnel"],  # type: ignore[arg-type]
        alarms=sections["alarms"],  # type: ignore[arg-type]
    )
    check_rules(cfg)
    if not examples_allowed:
        reject_example_values(cfg)
    values = {"aws:region": source.region, full_key("environment"): str(environment)}
    for s in SECTIONS:
        values[f"{NAMESPACE}:{s}"] = json.dumps(raw[s])
    return RecoveryPlan(
        name=name,
        prod_stack=target.stack,
        prod_identifier=target.db_instance,
        home_region=target.region,
        region=source.region,
        point=point,
        source=source,
        cfg=cfg,
        config_values=values,
        prod_hostname=prod_hostname,
        hostname=hostname,
        replication_region=replication.get("region") if replication.get("enabled") else None,
    )


def _dr_replication(
    replication: dict[str, Any], replicate_to: str | None, home: str, dr: str
) -> dict[str, Any]:
    """The recovered instance's backup replication in the DR region: to `replicate_to` (a
    third region), else off; refused when the stack requires it and no third region is named."""
    if replicate_to is not None:
        if replicate_to in (home, dr):
            raise BadInput(
                f"--replicate-to {replicate_to}: name a third region, neither the lost home "
                f"region {home} nor the recovery region {dr}"
            )
        return {**replication, "enabled": True, "region": replicate_to}
    if replication.get("enabled"):
        raise BadInput(
            f"the stack replicates its backups (required for prod), but its replica region is "
            f"{dr}, where this recovery runs, and the home region {home} is lost: pass "
            "--replicate-to REGION, a third region (e.g. us-east-2)"
        )
    return {**replication, "enabled": False}


def runtime_secrets(
    ssm: Any | None, prod_stack: str, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The prod stack's runtime secrets: its SSM parameters, else PRISM_RECOVERY_<ENV>.

    Read before anything is created; a missing one is bad input naming the variable to set.
    The values stay in memory and reach only the program, as Pulumi secrets.
    """
    from infra.api_host import parameter_prefix
    from infra.config import SECRET_SETTINGS

    envs = list(SECRET_SETTINGS.values())
    found: dict[str, str] = {}
    if ssm is not None:
        names = [f"{parameter_prefix(prod_stack)}/api/{env}" for env in envs]
        try:
            with aws_errors("reading the prod stack's runtime secrets"):
                answer = ssm.get_parameters(Names=names, WithDecryption=True)
            by_name = {p["Name"]: p["Value"] for p in answer.get("Parameters", [])}
            found = {env: by_name[n] for env, n in zip(envs, names, strict=True) if n in by_name}
        except BadInput:
            found = {}  # out of reach (a lost region): the environment must supply them
    for env in envs:
        if env not in found and environ.get(SECRET_HINT_PREFIX + env):
            found[env] = environ[SECRET_HINT_PREFIX + env]
    missing = [SECRET_HINT_PREFIX + env for env in envs if env not in found]
    if missing:
        raise BadInput(
            f"the prod stack's runtime secrets are out of reach; set {', '.join(missing)} "
            "(spec §4.2 step 4: restore the production secrets in the new environment)"
        )
    return found


def recovery_program(plan: RecoveryPlan, secrets: Mapping[str, str]) -> Program:
    def program() -> None:
        import pulumi

        from infra.stack import build

        if plan.cutover_from is not None:
            pulumi.runtime.register_stack_transformation(
                serve_hostname(plan.prod_hostname, TUNNEL_CONFIG_TYPE)
            )
        cfg = replace(plan.cfg, secret_env={k: pulumi.Output.secret(v) for k, v in secrets.items()})
        stack = build(cfg)
        # Where `recover` reaches the restored instance to set the API role's password.
        pulumi.export("dbAddress", stack.database.address)
        pulumi.export("dbPort", stack.database.port)
        pulumi.export("dbName", cfg.database.db_name)
        if plan.cutover_from is not None:
            pulumi.export("cutoverFrom", plan.cutover_from)
            pulumi.export("servesHostname", plan.prod_hostname)

    return program


def serve_hostname(hostname: str, config_type: str) -> Any:
    """A stack transformation adding `hostname` to the tunnel's ingress, served like the
    recovery hostname, ahead of the catch-all rule cloudflared requires last. Declared here,
    in the stack, so that an `up` of the recovery stack keeps it instead of dropping a rule
    changed behind Pulumi's back (infra/tunnel.py declares the rest of the ingress)."""
    import pulumi
    import pulumi_cloudflare as cloudflare

    def transform(args: pulumi.ResourceTransformationArgs) -> Any:
        if args.type_ != config_type:
            return None
        config = args.props["config"]
        rules = list(config.ingresses or [])
        rules.insert(
            max(0, len(rules) - 1),
            cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(
                hostname=hostname, service=rules[0].service
            ),
        )
        props = dict(args.props)
        props["config"] = cloudflare.ZeroTrustTunnelCloudflaredConfigConfigArgs(ingresses=rules)
        return pulumi.ResourceTransformationResult(props, args.opts)

    return transform
