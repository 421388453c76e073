"""infra/offline.py: stack files in, recorded resources out, nothing shared between runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pulumi
import pytest
import yaml

from infra.config import ConfigError
from infra.offline import (
    DELETE,
    PLACEHOLDER_PREFIX,
    PROJECT_DIR,
    OfflineMocks,
    Secret,
    apply_overrides,
    available_stacks,
    reject_clear_text_secrets,
    run_program,
    runtime_config,
)


def test_both_stack_files_exist() -> None:
    assert {"staging", "prod"} <= set(available_stacks())


def test_unknown_stack_names_the_file() -> None:
    with pytest.raises(ConfigError) as info:
        run_program("qa")
    assert str(info.value).startswith("Pulumi.qa.yaml does not exist in ")
    assert "pulumi stack init qa" in str(info.value)


def test_runtime_config_matches_what_the_cli_hands_over() -> None:
    values, secret_keys, placeholders = runtime_config(
        {
            "aws:region": "us-east-1",
            "prism-infra:database": {"multiAz": True, "backupRetentionDays": 7},
            "prism-infra:clerkSecretKey": {"secure": "v1:AAAA"},
        }
    )
    assert values["aws:region"] == "us-east-1"
    assert values["prism-infra:database"] == '{"multiAz": true, "backupRetentionDays": 7}'
    assert values["prism-infra:clerkSecretKey"] == f"{PLACEHOLDER_PREFIX}prism-infra:clerkSecretKey"
    assert "prism-infra:clerkSecretKey" in secret_keys
    # Missing secrets are filled (and listed) so a plan works on a committed stack file.
    assert set(placeholders) == {
        "prism-infra:clerkSecretKey",
        "prism-infra:clerkPublishableKey",
        "prism-infra:redisUrl",
    }


def test_overrides_set_and_delete_nested_keys() -> None:
    base = {"prism-infra:tunnel": {"zoneId": "z", "hostname": "h"}}
    changed = apply_overrides(
        base, {"prism-infra:tunnel.zoneId": DELETE, "prism-infra:tunnel.x.y": 1}
    )
    assert changed == {"prism-infra:tunnel": {"hostname": "h", "x": {"y": 1}}}
    assert base == {"prism-infra:tunnel": {"zoneId": "z", "hostname": "h"}}  # untouched


def test_secure_values_in_a_stack_file_become_secret_placeholders(tmp_path: Path) -> None:
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", tmp_path)
    doc = yaml.safe_load((PROJECT_DIR / "Pulumi.staging.yaml").read_text())
    doc["config"]["prism-infra:redisUrl"] = {"secure": "v1:ZW5jcnlwdGVk"}
    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump(doc))
    run = run_program("staging", project_dir=tmp_path, preview=False)
    param = run.one("aws:ssm/parameter:Parameter", "runtime-secrets-redis-url")
    assert param.inputs["value"] == Secret(f"{PLACEHOLDER_PREFIX}prism-infra:redisUrl")
    assert "prism-infra:redisUrl" in run.placeholders


def test_runs_do_not_leak_into_each_other() -> None:
    first = run_program("prod", preview=False)
    second = run_program("staging", preview=False)
    again = run_program("prod", preview=False)
    assert second.outputs["dbIdentifier"] == "prism-staging"
    assert [r.urn for r in first.resources] == [r.urn for r in again.resources]
    assert all("::prod::" not in r.urn for r in second.resources)


def test_unanswered_invokes_fail_loudly() -> None:
    import pulumi_aws as aws

    def program() -> None:
        aws.ec2.get_instance_type_output(instance_type="t4g.small").apply(print)

    with pytest.raises(NotImplementedError, match="getInstanceType"):
        run_program("staging", program=program)


def test_the_pulumi_internals_offline_relies_on_are_still_there() -> None:
    # infra/offline.py drives the runtime through these non-public names. A Pulumi upgrade
    # that moves one breaks every infra test and `prism-dr plan`; this test says which.
    import importlib
    import inspect

    from pulumi.runtime import mocks

    def attribute(module: str, name: str) -> object | None:
        try:
            return getattr(importlib.import_module(module), name, None)
        except ImportError:
            return None

    missing = [
        f"{module}.{name}"
        for module, name in [
            ("pulumi.runtime.sync_await", "_sync_await"),
            ("pulumi.runtime.stack", "run_pulumi_func"),
            ("pulumi.runtime.settings", "SETTINGS"),
            ("pulumi.runtime.rpc", "deserialize_properties"),
            ("pulumi.runtime.rpc", "is_rpc_secret"),
            ("pulumi.runtime.rpc", "wrap_rpc_secret"),
            ("pulumi.output", "Unknown"),
        ]
        if attribute(module, name) is None
    ]
    settings = attribute("pulumi.runtime.settings", "SETTINGS")
    missing += [f"SETTINGS.{a}" for a in ("outputs", "lock") if not hasattr(settings, a)]
    monitor = mocks.MockMonitor(OfflineMocks("us-east-1", preview=True))
    missing += [
        f"pulumi.runtime.mocks.MockMonitor.{a}"
        for a in ("RegisterResource", "resources")
        if not hasattr(monitor, a)
    ]
    if "monitor" not in inspect.signature(pulumi.runtime.set_mocks).parameters:
        missing.append("pulumi.runtime.set_mocks(monitor=...)")
    assert not missing, (
        "infra/offline.py uses Pulumi internals that this pulumi version no longer has: "
        + ", ".join(missing)
        + "; adapt run_program / _RecordingMonitor in infra/offline.py to the new names"
    )


def test_a_secret_key_in_clear_in_the_stack_file_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        reject_clear_text_secrets({"prism-infra:redisUrl": "rediss://plain"}, "prod")
    assert str(info.value) == (
        "prism-infra:redisUrl is stored in clear text in Pulumi.prod.yaml: "
        "pulumi config set prism-infra:redisUrl <value> -s prod --secret"
    )
    reject_clear_text_secrets({"prism-infra:redisUrl": {"secure": "v1:AAAA"}}, "prod")  # fine
