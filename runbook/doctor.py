"""`prism-dr doctor`: a read-only check of a real account before a first run.

Each check passes, fails (with the fix) or is skipped (with why). Nothing is created or
changed: the calls are reads, `iam:SimulatePrincipalPolicy` (an evaluation, no request is
made as the role), and `ssm:GetParameters` with decryption of the parameters the job must
read — the only way to see a KMS key policy at work, since the simulator evaluates identity
policies only and cannot see key policies for a role.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from infra.ci_roles import (
    OIDC_HOST,
    ROLE_TABLE,
    Placeholders,
    policy_document,
    role_arn,
    state_key_alias,
    state_key_for,
)
from infra.errors import BadInput

AWS_ERRORS = (BotoCoreError, ClientError)

Status = Literal["pass", "fail", "skip"]
Clients = Callable[[str, str], Any]
Simulate = Callable[[str, Sequence[str], Sequence[str], Mapping[str, str]], list[dict[str, Any]]]

# What each role's job must read with decryption (the job would stop without it).
ROLE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "drill": ("/prism/drill/api/CLERK_SECRET_KEY", "/prism/drill/api/CLERK_PUBLISHABLE_KEY"),
    "deploy-prod": tuple(
        f"/prism/prod/api/{env}" for env in ("CLERK_SECRET_KEY", "CLERK_PUBLISHABLE_KEY")
    ),
}
# The roles whose job runs the Pulumi CLI, and the drill's port forward.
PULUMI_ROLES = ("preview", "deploy-staging", "deploy-prod", "drill")
TUNNEL_ROLES = ("preview", "deploy-staging", "deploy-prod", "drill")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Doctor:
    """The checks' inputs; every outside call goes through one of these (tests replace them)."""

    region: str
    environ: Mapping[str, str]
    clients: Clients
    simulate: Simulate | None = None  # default: iam:SimulatePrincipalPolicy
    verify_cloudflare: Callable[[str], str] | None = None  # token → its status
    which: Callable[[str], str | None] = shutil.which
    pulumi_version: Callable[[str], str] | None = None  # CLI path → "3.272.0"
    db_instance: str = "prism-prod"

    def run(self, *, stack: str | None, role: str | None) -> list[Check]:
        if role is not None and role not in ROLE_TABLE:
            raise BadInput(f"--role {role!r} is not a CI role; use one of {', '.join(ROLE_TABLE)}")
        checks: list[Check] = []
        account, partition = self._caller(checks)
        aws_ok = account is not None
        checks.append(self._oidc() if aws_ok else _skipped("oidc provider"))
        checks.append(self._backend() if aws_ok else _skipped("state backend"))
        key_stack = stack or (ROLE_TABLE[role].stack if role else None)
        if key_stack and aws_ok:
            checks.append(self._secrets_key(key_stack.replace("*", "x")))
        else:
            why = "no AWS credentials" if not aws_ok else "no --stack or --role to name the key"
            checks.append(Check("secrets key", "skip", why))
        if role and aws_ok:
            checks.append(self._simulate(role, account, partition, stack))  # type: ignore[arg-type]
            checks.append(self._parameters(role))
        else:
            why = "no --role" if not role else "no AWS credentials"
            checks.append(Check("role permissions", "skip", why))
            checks.append(Check("runtime parameters", "skip", why))
        checks.append(self._port_forward_tools(role))
        checks.append(self._cloudflare(role))
        checks.append(self._pulumi(role))
        return checks

    # -- AWS --------------------------------------------------------------------------------

    def _caller(self, checks: list[Check]) -> tuple[str | None, str]:
        try:
            me = self.clients("sts", self.region).get_caller_identity()
        except AWS_ERRORS as error:  # no credentials, no network, refused: all a failed check
            checks.append(
                Check(
                    "caller",
                    "fail",
                    _one_line(error),
                    "set AWS credentials (CI: configure-aws-credentials with the job's role)",
                )
            )
            return None, "aws"
        arn = me["Arn"]
        checks.append(Check("caller", "pass", f"{arn} (account {me['Account']})"))
        return me["Account"], arn.split(":")[1]

    def _oidc(self) -> Check:
        try:
            found = self.clients("iam", self.region).list_open_id_connect_providers()
        except AWS_ERRORS as error:
            return Check(
                "oidc provider", "fail", _one_line(error), "allow iam:ListOpenIDConnectProviders"
            )
        arns = [p["Arn"] for p in found.get("OpenIDConnectProviderList", [])]
        if any(a.endswith(f"oidc-provider/{OIDC_HOST}") for a in arns):
            return Check("oidc provider", "pass", f"{OIDC_HOST} is trusted")
        return Check(
            "oidc provider",
            "fail",
            f"no OIDC provider for {OIDC_HOST}: CI jobs cannot assume their roles",
            "apply the account bootstrap (cd bootstrap && pulumi up)",
        )

    def _backend(self) -> Check:
        url = self.environ.get("PULUMI_BACKEND_URL", "")
        if url.startswith("https://"):
            return Check("state backend", "pass", f"{url} (Pulumi Cloud keeps the history)")
        match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?(\?.*)?", url)
        if not match:
            return Check(
                "state backend",
                "fail",
                f"PULUMI_BACKEND_URL is {url or 'unset'}: state would live on this machine",
                "export PULUMI_BACKEND_URL=s3://<the bootstrap's stateBucket output>",
            )
        bucket = match[1]
        try:
            status = self.clients("s3", self.region).get_bucket_versioning(Bucket=bucket)
        except AWS_ERRORS as error:
            return Check("state backend", "fail", _one_line(error), f"check s3://{bucket} exists")
        if status.get("Status") != "Enabled":
            return Check(
                "state backend",
                "fail",
                f"s3://{bucket} is not versioned: an overwritten state could not be recovered",
                f"aws s3api put-bucket-versioning --bucket {bucket} "
                "--versioning-configuration Status=Enabled (the bootstrap does it)",
            )
        return Check("state backend", "pass", f"s3://{bucket}, versioned")

    def _secrets_key(self, stack: str) -> Check:
        alias = state_key_alias(state_key_for(stack))
        try:
            key = self.clients("kms", self.region).describe_key(KeyId=alias)["KeyMetadata"]
        except AWS_ERRORS as error:
            return Check(
                "secrets key", "fail", f"{alias}: {_one_line(error)}", "apply the account bootstrap"
            )
        if key.get("KeyState") != "Enabled":
            return Check("secrets key", "fail", f"{alias} is {key.get('KeyState')}", "enable it")
        return Check("secrets key", "pass", f"{alias} → {key['KeyId']}, enabled")

    def _simulate(self, role: str, account: str, partition: str, stack: str | None) -> Check:
        arn = role_arn(role, partition=partition, account=account)
        bucket = self.environ.get("PULUMI_BACKEND_URL", "").removeprefix("s3://").split("/")[0]
        where = Placeholders(
            account=account,
            partition=partition,
            region=self.region,
            db=self.db_instance,
            bucket=bucket or f"prism-pulumi-state-{account}",
        )
        document = policy_document(role, stack=stack, where=where)
        scope = stack or ROLE_TABLE[role].stack
        denied: list[str] = []
        simulate = self.simulate or self._simulate_with_iam
        try:
            for st in document["Statement"]:
                context = _context_for(st, scope.replace("*", "x"))
                for result in simulate(arn, st["Action"], st["Resource"], context):
                    if result["EvalDecision"] != "allowed":
                        denied.append(f"{result['EvalActionName']} on {result['EvalResourceName']}")
        except AWS_ERRORS as error:
            return Check(
                "role permissions",
                "fail",
                f"cannot simulate {arn}: {_one_line(error)}",
                "run as a principal allowed iam:SimulatePrincipalPolicy on the role",
            )
        if denied:
            more = f" (+{len(denied) - 3} more)" if len(denied) > 3 else ""
            return Check(
                "role permissions",
                "fail",
                f"{arn} is denied {'; '.join(denied[:3])}{more}",
                f"attach `prism-dr iam policy {role} --json` to the role (or apply the bootstrap)",
            )
        total = sum(len(st["Action"]) for st in document["Statement"])
        return Check(
            "role permissions", "pass", f"{arn}: {total} actions allowed (identity policy)"
        )

    def _simulate_with_iam(
        self, arn: str, actions: Sequence[str], resources: Sequence[str], context: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        iam = self.clients("iam", self.region)
        entries = [
            {"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"}
            for k, v in context.items()
        ]
        pages = iam.get_paginator("simulate_principal_policy").paginate(
            PolicySourceArn=arn,
            ActionNames=list(actions),
            ResourceArns=list(resources),
            ContextEntries=entries,
        )
        return [r for page in pages for r in page.get("EvaluationResults", [])]

    def _parameters(self, role: str) -> Check:
        names = ROLE_PARAMETERS.get(role)
        if not names:
            return Check("runtime parameters", "skip", f"the {role} job reads none")
        try:
            answer = self.clients("ssm", self.region).get_parameters(
                Names=list(names), WithDecryption=True
            )
        except AWS_ERRORS as error:
            return Check(
                "runtime parameters",
                "fail",
                _one_line(error),
                "the key policy of the parameters' key must let this role decrypt through SSM",
            )
        missing = answer.get("InvalidParameters") or []
        if missing:
            return Check(
                "runtime parameters",
                "fail",
                f"missing: {', '.join(missing)}",
                "aws ssm put-parameter --type SecureString --name <name> --value …",
            )
        # Read and decrypted; the values themselves are dropped here.
        return Check("runtime parameters", "pass", f"{len(names)} read with decryption")

    # -- tools and Cloudflare ---------------------------------------------------------------

    def _port_forward_tools(self, role: str | None) -> Check:
        if role != "drill":
            return Check("port forward tools", "skip", "only the drill forwards a port")
        missing = [t for t in ("aws", "session-manager-plugin") if self.which(t) is None]
        if missing:
            return Check(
                "port forward tools",
                "fail",
                f"not on PATH: {', '.join(missing)}",
                "install the AWS CLI v2 and the Session Manager plugin (or drill with --direct)",
            )
        return Check("port forward tools", "pass", "aws and session-manager-plugin found")

    def _cloudflare(self, role: str | None) -> Check:
        if role is not None and role not in TUNNEL_ROLES:
            return Check("cloudflare token", "skip", f"the {role} job does not touch Cloudflare")
        token = self.environ.get("CLOUDFLARE_API_TOKEN", "")
        if not token:
            return Check(
                "cloudflare token",
                "fail",
                "CLOUDFLARE_API_TOKEN is not set",
                "a token with Cloudflare Tunnel:Edit (account) and DNS:Edit (zone)",
            )
        verify = self.verify_cloudflare or _verify_with_cloudflare
        try:
            status = verify(token)
        except BadInput as error:
            return Check("cloudflare token", "fail", str(error), "create a new API token")
        if status != "active":
            return Check("cloudflare token", "fail", f"the token is {status}", "create a new one")
        # /user/tokens/verify says whether the token is valid, not what it may do.
        return Check(
            "cloudflare token",
            "pass",
            "active (its permissions are not visible to the token itself: Tunnel:Edit and "
            "DNS:Edit are needed)",
        )

    def _pulumi(self, role: str | None) -> Check:
        if role is not None and role not in PULUMI_ROLES:
            return Check("pulumi cli", "skip", f"the {role} job does not run Pulumi")
        path = self.which("pulumi")
        pinned = metadata.version("pulumi")
        if path is None:
            return Check(
                "pulumi cli",
                "fail",
                "not on PATH",
                f"install Pulumi {pinned} (the SDK's version in requirements.lock)",
            )
        found = (self.pulumi_version or _pulumi_version)(path)
        if found != pinned:
            return Check(
                "pulumi cli", "fail", f"{found}, the lock pins {pinned}", f"install Pulumi {pinned}"
            )
        return Check("pulumi cli", "pass", f"{pinned} at {path}")


def _context_for(statement: Mapping[str, Any], stack: str) -> dict[str, str]:
    """Values for the statement's tag conditions as the job's own requests carry them."""
    keys = [k for tests in statement.get("Condition", {}).values() for k in tests]
    values = {"prism:stack": stack, "prism:drill": "doctor"}
    return {k: values[k.rsplit("/", 1)[1]] for k in keys if k.rsplit("/", 1)[-1] in values} | {
        k: "ec2.amazonaws.com" for k in keys if k == "iam:PassedToService"
    }


def _verify_with_cloudflare(token: str) -> str:
    from recovery.cloudflare import CloudflareApi

    return CloudflareApi(token=token).verify_token()


def _pulumi_version(path: str) -> str:
    done = subprocess.run([path, "version"], capture_output=True, text=True, timeout=60)
    return done.stdout.strip().removeprefix("v")


def _skipped(name: str) -> Check:
    return Check(name, "skip", "no AWS credentials (see caller)")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]
