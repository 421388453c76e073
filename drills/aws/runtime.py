"""What the drill host gets at runtime, and from where: drill-scoped values only.

A drill serves restored, stale data. With prod's REDIS_URL it could poison prod's cache or
consume its queues; with prod's Clerk secret key it would act as prod's auth backend. So the
drill reads its own values under `/prism/drill/` (set once per account, README "Setting up a
new account"), never `/prism/<source stack>/`:

- `/prism/drill/api/CLERK_SECRET_KEY`, `CLERK_PUBLISHABLE_KEY`: a Clerk development
  instance's keys (`sk_test_…` / `pk_test_…`; a live key is refused);
- `/prism/drill/api/REDIS_URL`: optional. Without it the host gets no REDIS_URL and no Redis
  egress: the API runs without Redis, cache misses falling through to the database (spec §7);
- `/prism/drill/registry/password`: the private registry's credential, when the image needs one.

`PRISM_DRILL_<ENV>` variables stand in for a missing parameter (a local run without SSM).
A recovery is different: its stack becomes prod and gets prod's values (recovery/stack.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.errors import BadInput
from recovery.aws import aws_errors

PREFIX = "/prism/drill"
ENV_PREFIX = "PRISM_DRILL_"
REQUIRED = ("CLERK_SECRET_KEY", "CLERK_PUBLISHABLE_KEY")
OPTIONAL = ("REDIS_URL",)
REGISTRY = "REGISTRY_PASSWORD"
PARAMETERS = {
    **{env: f"{PREFIX}/api/{env}" for env in (*REQUIRED, *OPTIONAL)},
    REGISTRY: f"{PREFIX}/registry/password",
}
# Clerk's key prefixes: a development instance's keys start sk_test_/pk_test_, a production
# instance's sk_live_/pk_live_ (clerk.com/docs/deployments/overview, "API keys").
LIVE_KEY_PREFIXES = ("sk_live_", "pk_live_")


@dataclass(frozen=True)
class RuntimeValue:
    env: str
    source: str  # where it came from (a parameter name or a variable), or why it is absent
    value: str | None = None  # never printed

    def describe(self) -> dict[str, str]:
        return {"env": self.env, "source": self.source}


def drill_runtime_values(
    ssm: Any, *, registry: bool, redis_egress_cidr: str | None, environ: Mapping[str, str]
) -> list[RuntimeValue]:
    """Every runtime value the drill host gets, read before anything is created. A Redis for
    drills needs `prism-infra:drill.redisEgressCidr`: the host's only way out to port 6379."""
    wanted = [*REQUIRED, *OPTIONAL, *((REGISTRY,) if registry else ())]
    names = [PARAMETERS[env] for env in wanted]
    with aws_errors("reading the drill's runtime values under /prism/drill/"):
        answer = ssm.get_parameters(Names=names, WithDecryption=True)
    found = {p["Name"]: p["Value"] for p in answer.get("Parameters", [])}
    values: list[RuntimeValue] = []
    for env in wanted:
        name, variable = PARAMETERS[env], ENV_PREFIX + env
        if name in found:
            values.append(RuntimeValue(env, f"SSM {name}", found[name]))
        elif environ.get(variable):
            values.append(RuntimeValue(env, f"${variable}", environ[variable]))
        elif env in OPTIONAL:
            values.append(RuntimeValue(env, f"not set ({name} absent): the API runs without Redis"))
        else:
            raise BadInput(
                f"the drill's {env} is not set: aws ssm put-parameter --type SecureString "
                f"--name {name} --value … (or set {variable}); the drill never uses prod's"
            )
    for item in values:
        if item.value is not None and item.value.startswith(LIVE_KEY_PREFIXES):
            raise BadInput(
                f"{item.source} holds a Clerk production key: a drill takes a development "
                "instance's keys (sk_test_/pk_test_)"
            )
    redis = next(v for v in values if v.env == "REDIS_URL")
    if redis.value is not None and redis_egress_cidr is None:
        raise BadInput(
            f"{redis.source} is set but prism-infra:drill.redisEgressCidr is not: name the "
            "drill Redis's network (the host gets no egress to 6379 otherwise)"
        )
    return values


def secrets_of(values: list[RuntimeValue]) -> dict[str, str]:
    """The API's environment variables the drill host gets (the registry credential apart)."""
    return {v.env: v.value for v in values if v.value is not None and v.env != REGISTRY}


def registry_password_of(values: list[RuntimeValue]) -> str | None:
    return next((v.value for v in values if v.env == REGISTRY), None)
