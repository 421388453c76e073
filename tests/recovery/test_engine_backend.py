"""recovery/engine.py: where state may live, and which secrets provider a stack uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import BadInput
from recovery.engine import check_backend, secrets_provider_for

S3 = {"PULUMI_BACKEND_URL": "s3://prism-pulumi-state-123456789012"}
GITHUB = {"CI": "true", "GITHUB_ACTIONS": "true"}


def test_a_local_run_may_keep_state_in_a_directory() -> None:
    assert check_backend({}, local_state=False) == f"file://{Path.home() / '.pulumi-prism'}"


@pytest.mark.parametrize(
    ("environ", "recovering", "where"),
    [
        (GITHUB, False, "CI"),
        ({"GITHUB_ACTIONS": "true"}, False, "CI"),
        ({}, True, "`recover`"),
        ({"PULUMI_BACKEND_URL": "file:///tmp/state"}, True, "`recover`"),
        ({**GITHUB, "PULUMI_BACKEND_URL": "file:///tmp/state"}, False, "CI"),
    ],
)
def test_ci_and_recover_refuse_a_directory(environ, recovering, where) -> None:
    with pytest.raises(BadInput) as info:
        check_backend(environ, local_state=False, recovering=recovering)
    message = str(info.value)
    assert "\n" not in message and where in message
    assert "PULUMI_BACKEND_URL=s3://" in message and "--local-state" in message


@pytest.mark.parametrize("environ", [GITHUB, {}])
def test_local_state_is_accepted_when_asked_for(environ) -> None:
    assert check_backend(environ, local_state=True, recovering=True).startswith("file://")


def test_an_object_store_backend_passes_everywhere() -> None:
    assert check_backend({**GITHUB, **S3}, local_state=False, recovering=True) == S3[
        "PULUMI_BACKEND_URL"
    ]


@pytest.mark.parametrize(
    ("stack", "key"),
    [
        ("staging", "staging"),
        ("prod", "prod"),
        ("drill-20261202-010000", "drill"),
        ("recovery-202612020100", "prod"),  # a recovery stack becomes prod
    ],
)
def test_each_stack_uses_its_own_kms_key_on_an_object_store(stack, key) -> None:
    environ = {**S3, "AWS_REGION": "eu-west-1"}
    provider = secrets_provider_for(stack, S3["PULUMI_BACKEND_URL"], environ)
    assert provider == f"awskms://alias/prism-state-{key}?region=eu-west-1"


def test_a_directory_backend_keeps_the_passphrase() -> None:
    assert secrets_provider_for("drill-x", "file:///tmp/state", {}) is None
