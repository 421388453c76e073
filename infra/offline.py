"""Run a stack's Pulumi program offline, under Pulumi's own mocks, and record what it declares.

This is the one mechanism behind the infra tests and `prism-dr plan`: it reads the real
`Pulumi.<stack>.yaml`, feeds it to the runtime the way the CLI would (structured values as
JSON strings, secret keys marked secret), runs the program to completion with a mock
monitor, and returns every registered resource (type, name, inputs, options) plus the stack
outputs. No cloud call, no Pulumi CLI, no plugin.

Offline limits, on purpose:
- `secure:` values cannot be decrypted without the stack's secrets provider, and secrets
  that are not in the file at all (the normal case: they are set per deployment) cannot be
  known; both become clearly fake placeholders, still marked secret, and are listed in
  `OfflineRun.placeholders`.
- Invokes (AMI lookup, caller identity, tunnel token, ...) get fixed fake answers.
- With `preview=True` (what `plan` uses) values the cloud computes (ARNs, endpoints,
  restorable times, random suffixes) are unknown, like in `pulumi preview`. With
  `preview=False` they get fake values, so tests can follow the wiring between resources.
  Resource ids are always known fakes (`<name>-id`) so references stay traceable.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

# Pulumi internals, on purpose: no public API runs a program to completion in-process and
# resets the runtime between runs (tests/infra/test_offline.py fails loudly if they move).
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.config import NAMESPACE, SECRET_KEYS, ConfigError

PROJECT = NAMESPACE
PROJECT_DIR = Path(__file__).resolve().parents[1]
FAKE_ACCOUNT_ID = "123456789012"
PLACEHOLDER_PREFIX = "offline-placeholder:"


class _Unknown:
    """A value the engine would only learn during `pulumi up`."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Secret:
    """A value marked secret; repr never shows it."""

    value: Any

    def __repr__(self) -> str:
        return "<secret>"


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()
"""Use as an override value to remove a key from the stack config."""


@dataclass(frozen=True)
class ResourceRecord:
    """One registration as the engine would receive it: inputs (with UNKNOWN and Secret
    markers), the mock's resulting state, and the resource options (protect, provider, ...)."""

    type: str
    name: str
    urn: str
    id: str
    custom: bool
    parent: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    protect: bool
    provider: str
    ignore_changes: tuple[str, ...]


@dataclass(frozen=True)
class OfflineRun:
    """Everything one offline run declared; `diagnostics` holds the engine log (warnings)."""

    stack: str
    project_dir: Path
    preview: bool
    resources: tuple[ResourceRecord, ...]
    outputs: dict[str, Any]
    placeholders: tuple[str, ...]
    diagnostics: tuple[str, ...] = ()
    region: str = "us-east-1"  # aws:region of the stack

    def of_type(self, type_: str) -> list[ResourceRecord]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> ResourceRecord:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} {name or ''}, found {len(found)}")
        return found[0]

    def by_urn(self, urn: str) -> ResourceRecord:
        return next(r for r in self.resources if r.urn == urn)

    def by_id(self, id_: str) -> ResourceRecord | None:
        return next((r for r in self.resources if r.custom and r.id == id_), None)


# ---------------------------------------------------------------------------------------------
# Stack files.


def stack_file(stack: str, project_dir: Path | None = None) -> Path:
    return (project_dir or PROJECT_DIR) / f"Pulumi.{stack}.yaml"


def available_stacks(project_dir: Path | None = None) -> list[str]:
    root = project_dir or PROJECT_DIR
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def read_stack_config(stack: str, project_dir: Path | None = None) -> dict[str, Any]:
    """The `config:` mapping of Pulumi.<stack>.yaml, keys fully qualified."""
    path = stack_file(stack, project_dir)
    if not path.is_file():
        known = ", ".join(available_stacks(project_dir)) or "none"
        raise ConfigError(
            path.name,
            f"does not exist in {path.parent} (known stacks: {known}); create it with "
            f"`pulumi stack init {stack}` and set its keys (docs/stacks.md)",
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            path.name,
            f"is not UTF-8 (byte 0x{raw[exc.start]:02x} at line {line}); save it as UTF-8, "
            "as Pulumi reads it",
        ) from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigError(path.name, f"is not valid YAML{line}; fix the file") from None
    config = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(path.name, "has no `config:` mapping; see docs/stacks.md for the keys")
    return {(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in config.items()}


def apply_overrides(config: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set or (with DELETE) remove keys by Pulumi path, e.g. `prism-infra:database.multiAz`."""
    result = copy.deepcopy(config)
    for path, value in overrides.items():
        top, _, rest = path.partition(".")
        if not rest:
            if value is DELETE:
                result.pop(top, None)
            else:
                result[top] = value
            continue
        node = result.setdefault(top, {})
        parts = rest.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return result


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def reject_clear_text_secrets(config: Mapping[str, Any], stack: str) -> None:
    """A secret key stored as a plain value in the stack file is refused, whatever else the
    program is told: `pulumi config set --secret` is the only way it may get there."""
    for key in SECRET_KEYS:
        if key in config and not _is_secure(config[key]):
            raise ConfigError(
                key,
                f"is stored in clear text in Pulumi.{stack}.yaml: "
                f"pulumi config set {key} <value> -s {stack} --secret",
            )


def _contains_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return _is_secure(value) or any(_contains_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secure(v) for v in value)
    return False


def _replace_secure(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        if _is_secure(value):
            return f"{PLACEHOLDER_PREFIX}{key}"
        return {k: _replace_secure(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(v, key) for v in value]
    return value


def _as_config_string(value: Any) -> str:
    # The CLI hands every value over as a string; objects and lists as JSON.
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, bool)) or value is None:
        return json.dumps(value)
    return str(value)


def runtime_config(
    config: Mapping[str, Any],
    secrets: Mapping[str, str] | None = None,
    fill_missing_secrets: bool = True,
) -> tuple[dict[str, str], list[str], list[str]]:
    """(values, secret keys, placeholder keys) in the form `pulumi.runtime.set_all_config` takes."""
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    placeholders: list[str] = []
    for key, value in config.items():
        if _contains_secure(value):
            secret_keys.append(key)
            placeholders.append(key)
            value = _replace_secure(value, key)
        values[key] = _as_config_string(value)
    for key, value in (secrets or {}).items():
        values[key] = value
        if key not in secret_keys:
            secret_keys.append(key)
        if key in placeholders:
            placeholders.remove(key)
    if fill_missing_secrets:
        for key in SECRET_KEYS:
            if key not in values:
                values[key] = f"{PLACEHOLDER_PREFIX}{key}"
                secret_keys.append(key)
                placeholders.append(key)
    return values, secret_keys, placeholders


# ---------------------------------------------------------------------------------------------
# Mocks.


def _strip_unknowns(value: Any) -> Any:
    if isinstance(value, pulumi.output.Unknown):
        return None
    if rpc.is_rpc_secret(value):
        inner = _strip_unknowns(value.get("value"))
        return None if inner is None else rpc.wrap_rpc_secret(inner)
    if isinstance(value, dict):
        return {k: s for k, v in value.items() if (s := _strip_unknowns(v)) is not None}
    if isinstance(value, list):
        return [_strip_unknowns(v) for v in value]
    return value


def _digest(*parts: str, size: int = 8) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:size]


_TUNNEL_TOKEN_INVOKE = (
    "cloudflare:index/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken"
)


class OfflineMocks(pulumi.runtime.Mocks):
    """Plausible provider answers. Unknown invokes fail loudly so tests see new ones."""

    def __init__(self, region: str, preview: bool, stack: str = "") -> None:
        self.region = region
        self.preview = preview
        self.stack = stack
        self._provider_regions: dict[str, str] = {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        if not args.custom:
            return "", {}
        inputs = _strip_unknowns(dict(args.inputs))
        resource_id = f"{args.name}-id"
        if args.typ.startswith("pulumi:providers:"):
            if isinstance(inputs.get("region"), str):
                self._provider_regions[resource_id] = inputs["region"]
            return resource_id, inputs
        state = dict(inputs)
        if args.typ.startswith("aws:") and "name" not in state:
            # What provider auto-naming does during check: logical name + random suffix, which
            # differs between two stacks of one account.
            state["name"] = f"{args.name}-{_digest(self.stack, args.name, size=7)}"
        if not self.preview:
            region = self._provider_regions.get(
                (args.provider or "").rsplit("::", 1)[-1], self.region
            )
            state.update(self._computed(args.typ, args.name, state, region))
        return resource_id, state

    def _computed(self, typ: str, name: str, state: dict[str, Any], region: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        package, _, rest = typ.partition(":")
        module = rest.split(":")[0].split("/")[0]
        if package == "aws":
            label = state.get("identifier") or state.get("name") or name
            out["arn"] = f"arn:aws:{module}:{region}:{FAKE_ACCOUNT_ID}:{name}/{label}"

        def arn_base(service: str) -> str:
            return f"arn:aws:{service}:{region}:{FAKE_ACCOUNT_ID}"

        if typ == "aws:rds/instance:Instance":
            ident = state.get("identifier", name)
            address = f"{ident}.offline.{region}.rds.amazonaws.com"
            port = int(state.get("port", 5432))
            out |= {
                "arn": f"arn:aws:rds:{region}:{FAKE_ACCOUNT_ID}:db:{ident}",
                "address": address,
                "endpoint": f"{address}:{port}",
                "port": port,
                "resourceId": f"db-{_digest(ident, size=26).upper()}",
                "latestRestorableTime": "2000-01-01T00:00:00Z",
            }
            if state.get("manageMasterUserPassword"):
                out["masterUserSecrets"] = [
                    {
                        "secretArn": f"{arn_base('secretsmanager')}:secret:rds!db-{ident}",
                        # RDS reports the key it was given, else the AWS-managed one.
                        "kmsKeyId": state.get("masterUserSecretKmsKeyId")
                        or f"{arn_base('kms')}:alias/aws/secretsmanager",
                        "secretStatus": "active",
                    }
                ]
        elif typ == "aws:kms/key:Key":
            out["keyId"] = f"{name}-key-id"
        elif typ == "random:index/randomId:RandomId":
            out |= {
                "hex": _digest(name, size=2 * int(state.get("byteLength", 4))),
                "b64Url": "offline",
                "dec": "0",
            }
        elif typ == "random:index/randomPassword:RandomPassword":
            # Not a real secret: letters and digits of the requested length, fixed per name.
            length = int(state.get("length", 16))
            out["result"] = (_digest(name, size=64) * (length // 64 + 1))[:length]
        elif typ == "random:index/randomBytes:RandomBytes":
            out |= {
                "base64": "b2ZmbGluZS1ub3QtYS1yZWFsLXNlY3JldC0wMDAwMDAwMA==",
                "hex": _digest(name, size=64),
            }
        return out

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:  # type: ignore[override]
        # A plain dict: the mock monitor reads a tuple's second item as a list of failures.
        a = args.args
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            arn = f"arn:aws:iam::{FAKE_ACCOUNT_ID}:user/offline"
            return {
                "accountId": FAKE_ACCOUNT_ID,
                "arn": arn,
                "id": FAKE_ACCOUNT_ID,
                "userId": "OFFLINE",
            }
        if token == "aws:index/getPartition:getPartition":
            return {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "id": "aws",
                "reverseDnsPrefix": "com.amazonaws",
            }
        if token == "aws:iam/getSessionContext:getSessionContext":
            # The offline caller is an IAM user: its own ARN is the issuer.
            arn = a.get("arn", "")
            return {
                "arn": arn,
                "issuerArn": arn,
                "id": arn,
                "issuerId": "OFFLINE",
                "issuerName": arn.rsplit("/", 1)[-1],
                "sessionName": "",
            }
        if token == "aws:index/getRegion:getRegion":
            return {"region": self.region, "name": self.region, "id": self.region}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{z}" for z in "abc"]
            return {
                "names": names,
                "zoneIds": [f"offline-az{i}" for i in range(3)],
                "id": self.region,
            }
        if token == "aws:ec2/getAmi:getAmi":
            arch = next(
                (f["values"][0] for f in a.get("filters", []) if f.get("name") == "architecture"),
                "arm64",
            )
            return {
                "id": f"ami-offline-al2023-{arch}",
                "imageId": f"ami-offline-al2023-{arch}",
                "architecture": arch,
                "name": "al2023-ami-offline",
            }
        if token == "aws:ssm/getParameter:getParameter":
            # Only AWS's public AMI parameters: the stack reads no other parameter at deploy.
            name = a.get("name", "")
            prefix = "/aws/service/ami-amazon-linux-latest/"
            if not name.startswith(prefix):
                raise NotImplementedError(f"offline mocks know no SSM parameter {name}")
            return {
                "id": name,
                "name": name,
                "arn": f"arn:aws:ssm:{self.region}::parameter{name}",
                "type": "String",
                "value": f"ami-offline-{name.removeprefix(prefix)}",
                "insecureValue": f"ami-offline-{name.removeprefix(prefix)}",
                "version": 1,
                "withDecryption": True,
            }
        if token == "aws:ec2/getVpc:getVpc":
            return {
                "id": a.get("id", "vpc-offline"),
                "cidrBlock": "10.0.0.0/16",
                "arn": "arn:aws:ec2:::vpc/offline",
            }
        if token == _TUNNEL_TOKEN_INVOKE:
            return {
                "token": f"offline-tunnel-token-{a.get('tunnelId')}",
                "accountId": a.get("accountId"),
                "tunnelId": a.get("tunnelId"),
            }
        raise NotImplementedError(
            f"offline mocks do not answer the invoke {token}; add it to infra/offline.py"
        )


def _normalize(value: Any) -> Any:
    """Deserialized RPC values → plain data with UNKNOWN and Secret markers."""
    if isinstance(value, pulumi.output.Unknown):
        return UNKNOWN
    if rpc.is_rpc_secret(value):
        # An unknown secret arrives as a secret marker without a value.
        return Secret(_normalize(value["value"]) if "value" in value else UNKNOWN)
    if isinstance(value, pulumi.Resource):
        return f"<resource {value._name}>"
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire format has only doubles
    return value


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, plus a record of each registration's options (protect, provider, ...)."""

    def __init__(self, mocks: OfflineMocks) -> None:
        super().__init__(mocks)
        self.records: list[ResourceRecord] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        state = self.resources[response.urn].state
        self.records.append(
            ResourceRecord(
                type=request.type,
                name=request.name,
                urn=response.urn,
                id=response.id,
                custom=bool(request.custom),
                parent=request.parent,
                inputs=_normalize(inputs),
                outputs=_normalize(state),
                protect=bool(request.protect),
                provider=request.provider,
                ignore_changes=tuple(request.ignoreChanges),
            )
        )
        return response


class _Diagnostics(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname.lower()}: {record.getMessage()}")


def _default_program() -> None:
    from infra.stack import main

    # The committed stack files carry example account values; offline they are fine.
    main(examples_allowed=True)


@dataclass
class _Box:
    outputs: dict[str, Any] = field(default_factory=dict)


async def _collect_outputs(box: _Box) -> None:
    root = pulumi.runtime.get_root_resource()
    for name, value in list(getattr(root, "outputs", {}).items()):
        output = pulumi.Output.from_input(value)
        known = await output.is_known()
        secret = await output.is_secret()
        resolved = _normalize(await output.future(with_unknowns=True)) if known else UNKNOWN
        box.outputs[name] = Secret(resolved) if secret else resolved


def _in_own_event_loop(fn: Callable[[], OfflineRun]) -> OfflineRun:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return fn()
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        asyncio.set_event_loop(None)


def run_program(
    stack: str,
    *,
    project_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    fill_missing_secrets: bool = True,
    preview: bool = True,
    program: Callable[[], Any] | None = None,
) -> OfflineRun:
    """Run `program` (default: the stack program of __main__.py) for `stack`, offline.

    overrides: change the file's config by Pulumi path (`prism-infra:database.multiAz`), or
        remove a key with DELETE. secrets: values for secret keys (marked secret).
    Raises ConfigError for a missing/invalid stack file or invalid config.
    """
    root = project_dir or PROJECT_DIR
    config = apply_overrides(read_stack_config(stack, root), overrides or {})
    reject_clear_text_secrets(config, stack)
    values, secret_keys, placeholders = runtime_config(config, secrets, fill_missing_secrets)
    region = values.get("aws:region") or "us-east-1"

    def run() -> OfflineRun:
        mocks = OfflineMocks(region, preview, stack)
        monitor = _RecordingMonitor(mocks)
        diagnostics = _Diagnostics()
        logger = logging.getLogger(f"infra.offline.{stack}")
        logger.propagate = False
        logger.handlers = [diagnostics]
        pulumi.runtime.set_mocks(
            mocks, project=PROJECT, stack=stack, preview=preview, logger=logger, monitor=monitor
        )
        # The mock settings leave these two alone; a previous run's tasks must not be awaited.
        pulumi_settings.SETTINGS.outputs = set()
        pulumi_settings.SETTINGS.lock = threading.Lock()
        pulumi.runtime.set_all_config(values, secret_keys)
        box = _Box()

        def body() -> Any:
            (program or _default_program)()
            return _collect_outputs(box)

        _sync_await(run_pulumi_func(body))
        return OfflineRun(
            stack=stack,
            project_dir=root,
            preview=preview,
            resources=tuple(sorted(monitor.records, key=lambda r: r.urn)),
            outputs=box.outputs,
            placeholders=tuple(placeholders),
            diagnostics=tuple(diagnostics.messages),
            region=region,
        )

    # A fresh context and event loop per run: the Pulumi runtime keeps its settings, root
    # stack and config in context variables, and a failed program leaves tasks behind on its
    # loop; neither may leak into the next run (staging, prod, test variants).
    return contextvars.Context().run(_in_own_event_loop, run)
