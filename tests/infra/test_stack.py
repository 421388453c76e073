"""infra/stack.py: composition, tags on everything, parenting, exports."""

from __future__ import annotations

import importlib
import inspect

import pytest

from infra.offline import OfflineRun, ResourceRecord

COMPONENTS = {
    "prism:infra:Network": "network",
    "prism:infra:ApiHost": "api-host",
    "prism:infra:PrismDatabase": "database",
    "prism:infra:ApiTunnel": "api-tunnel",
    "prism:infra:RuntimeSecrets": "runtime-secrets",
    "prism:infra:Alarms": "alarms",
}
COMPONENT_TAG = {
    "prism:infra:Network": "network",
    "prism:infra:ApiHost": "api-host",
    "prism:infra:PrismDatabase": "database",
    "prism:infra:ApiTunnel": "api-tunnel",
    "prism:infra:RuntimeSecrets": "secrets",
    "prism:infra:Alarms": "alarms",
}


def _takes_tags(type_: str) -> bool:
    """Whether the pulumi-aws resource accepts `tags`, read from the installed SDK."""
    _, module_path, name = type_.split(":")
    module = module_path.split("/")[0]
    sdk = importlib.import_module("pulumi_aws" if module == "index" else f"pulumi_aws.{module}")
    args = getattr(sdk, f"{name}Args")
    return "tags" in inspect.signature(args.__init__).parameters


def _component_of(run: OfflineRun, record: ResourceRecord) -> ResourceRecord:
    parent = run.by_urn(record.parent)
    while parent.parent and not parent.parent.endswith(
        f"pulumi:pulumi:Stack::prism-infra-{run.stack}"
    ):
        parent = run.by_urn(parent.parent)
    return parent


def test_the_six_components(each_stack: OfflineRun) -> None:
    components = {r.type: r.name for r in each_stack.resources if not r.custom}
    assert components == COMPONENTS


def test_every_resource_is_a_child_of_a_component(each_stack: OfflineRun) -> None:
    for record in each_stack.resources:
        if record.custom:
            assert _component_of(each_stack, record).type in COMPONENTS, record.name


def test_every_taggable_aws_resource_is_tagged(each_stack: OfflineRun) -> None:
    checked = 0
    for record in each_stack.resources:
        if not record.type.startswith("aws:") or not _takes_tags(record.type):
            continue
        component = _component_of(each_stack, record)
        tags = record.inputs.get("tags")
        assert tags is not None, f"{record.name} has no tags"
        assert tags["prism:stack"] == each_stack.stack, record.name
        assert tags["prism:component"] == COMPONENT_TAG[component.type], record.name
        checked += 1
    assert checked >= 25


def test_exports(each_stack: OfflineRun) -> None:
    expected = {
        "environment",
        "dbIdentifier",
        "dbEndpoint",
        "dbArn",
        "dbLatestRestorableTime",
        "dbMasterSecretArn",
        "dbAppRole",
        "dbAppSecretArn",
        "apiImage",
        "dbBackupRetentionDays",
        "apiHostId",
        "tunnelId",
        "apiHostname",
        "alarmTopicArn",
    }
    if each_stack.stack == "prod":
        expected |= {"dbBackupReplicationArn", "dbBackupReplicationRegion"}
    assert set(each_stack.outputs) == expected
    assert each_stack.outputs["environment"] == each_stack.stack
    assert each_stack.outputs["apiHostId"] == each_stack.one("aws:ec2/instance:Instance").id


def test_only_prod_protects_resources(staging: OfflineRun, prod: OfflineRun) -> None:
    assert [r.name for r in staging.resources if r.protect] == []
    assert sorted(r.name for r in prod.resources if r.protect) == [
        "database-backup-replication",
        "database-dr-backup-key",
        "database-instance",
    ]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_plan_like_preview_leaves_cloud_values_unknown(stack: str) -> None:
    from infra.offline import UNKNOWN
    from tests.infra.conftest import run_stack

    run = run_stack(stack, preview=True)
    for key in ("dbEndpoint", "dbArn", "dbLatestRestorableTime", "alarmTopicArn"):
        assert run.outputs[key] is UNKNOWN
    assert run.outputs["dbIdentifier"] == f"prism-{stack}"
