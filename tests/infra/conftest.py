"""Runs of the real stack program under Pulumi mocks, once per stack per session.

`pulumi_aws` is imported once for the whole session; each run after the first is fast.
Runs use preview=False so fake computed values (ARNs, endpoints) let tests follow the wiring.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from infra.config import ConfigError
from infra.offline import OfflineRun, Secret, run_program

# Recognisable fake values: none of them may appear anywhere outside a secret.
FAKE_SECRETS = {
    "prism-infra:clerkSecretKey": "sk_test_FAKEclerkSecret7d1c9e",
    "prism-infra:clerkPublishableKey": "pk_test_FAKEclerkPublishable2b9e",
    "prism-infra:redisUrl": "rediss://default:FAKEredisPass5a3f@redis.internal.test:6379",
}

STAGING_OVERRIDES_FOR_RESTORE = {
    "prism-infra:database.identifier": "prism-staging-restore",
}


def run_stack(stack: str, overrides: Mapping[str, Any] | None = None, **kwargs: Any) -> OfflineRun:
    kwargs.setdefault("secrets", FAKE_SECRETS)
    kwargs.setdefault("preview", False)
    return run_program(stack, overrides=overrides, **kwargs)


def config_error(stack: str, overrides: Mapping[str, Any], **kwargs: Any) -> str:
    """The one-line message of the ConfigError the overrides cause (fails if none)."""
    with pytest.raises(ConfigError) as info:
        run_stack(stack, overrides, **kwargs)
    return str(info.value)


def clear_strings(value: Any) -> Iterator[str]:
    """Every string in recorded data that is not inside a Secret."""
    if isinstance(value, Secret):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from clear_strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from clear_strings(v)
    elif isinstance(value, str):
        yield value


@pytest.fixture(scope="session")
def staging() -> OfflineRun:
    return run_stack("staging")


@pytest.fixture(scope="session")
def prod() -> OfflineRun:
    return run_stack("prod")


@pytest.fixture(scope="session", params=["staging", "prod"])
def each_stack(request: pytest.FixtureRequest, staging: OfflineRun, prod: OfflineRun) -> OfflineRun:
    return {"staging": staging, "prod": prod}[request.param]


def pytest_configure(config: pytest.Config) -> None:
    # The provider SDKs warn about their own deprecated resources when imported; not ours.
    for package in ("pulumi_aws", "pulumi_cloudflare"):
        config.addinivalue_line("filterwarnings", f"ignore::DeprecationWarning:{package}.*")
