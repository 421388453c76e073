"""Runbook tests run against the shared moto server (tests/aws): a real moto process on
127.0.0.1, reset for every test. Helpers here build RDS states the way AWS would hold them."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.aws.conftest import moto, moto_session  # noqa: F401  (fixtures, re-exported)


def make_db(rds: Any, identifier: str = "prism-prod", **overrides: Any) -> dict[str, Any]:
    """A PostgreSQL instance with prod's posture unless `overrides` say otherwise."""
    settings: dict[str, Any] = dict(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t4g.medium",
        Engine="postgres",
        EngineVersion="16.4",
        MasterUsername="prism_admin",
        MasterUserPassword="not-a-real-password-1",
        AllocatedStorage=50,
        BackupRetentionPeriod=30,
        DeletionProtection=True,
        StorageEncrypted=True,
        MultiAZ=True,
        CopyTagsToSnapshot=True,
    )
    settings.update(overrides)
    return rds.create_db_instance(**settings)["DBInstance"]


@pytest.fixture
def rds(moto):  # noqa: F811
    return boto3.client("rds", region_name="us-east-1")
