"""infra/database.py: the RDS instance's backup, PITR and safe-deletion posture, per stack."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from infra.config import ConfigError, DatabaseConfig, RestoreSpec
from infra.database import PrismDatabase, PrismDatabaseArgs
from infra.offline import OfflineRun, ResourceRecord, Secret, run_program
from tests.infra.conftest import config_error, run_stack

DB = "prism-infra:database"
INSTANCE = "aws:rds/instance:Instance"
REPLICATION = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"

EXPECTED = {
    "staging": {
        "identifier": "prism-staging",
        "retention": 7,
        "multi_az": False,
        "protected": False,
    },
    "prod": {"identifier": "prism-prod", "retention": 30, "multi_az": True, "protected": True},
}


def _db(run: OfflineRun) -> ResourceRecord:
    return run.one(INSTANCE)


def test_identifier_comes_from_config(each_stack: OfflineRun) -> None:
    assert _db(each_stack).inputs["identifier"] == EXPECTED[each_stack.stack]["identifier"]
    assert each_stack.outputs["dbIdentifier"] == EXPECTED[each_stack.stack]["identifier"]


def test_retention_and_windows(each_stack: OfflineRun) -> None:
    db = _db(each_stack).inputs
    assert db["backupRetentionPeriod"] == EXPECTED[each_stack.stack]["retention"]
    assert db["backupWindow"] == "03:00-03:30"
    assert db["maintenanceWindow"] == "sun:04:30-sun:05:30"


def test_encrypted_private_managed_password(each_stack: OfflineRun) -> None:
    db = _db(each_stack).inputs
    assert db["storageEncrypted"] is True
    assert db["publiclyAccessible"] is False
    assert db["manageMasterUserPassword"] is True
    assert "password" not in db
    assert db["engine"] == "postgres"


def test_snapshots_and_deletion_keep_data(each_stack: OfflineRun) -> None:
    db = _db(each_stack).inputs
    assert db["copyTagsToSnapshot"] is True
    assert db["skipFinalSnapshot"] is False
    assert db["deleteAutomatedBackups"] is False
    suffix = each_stack.one("random:index/randomId:RandomId").outputs["hex"]
    assert db["finalSnapshotIdentifier"] == f"{db['identifier']}-final-{suffix}"


def test_deletion_protection_and_protect_only_in_prod(each_stack: OfflineRun) -> None:
    record = _db(each_stack)
    expected = EXPECTED[each_stack.stack]["protected"]
    assert record.inputs["deletionProtection"] is expected
    assert record.protect is expected


def test_multi_az_only_in_prod(each_stack: OfflineRun) -> None:
    assert _db(each_stack).inputs["multiAz"] is EXPECTED[each_stack.stack]["multi_az"]


def test_backup_replication_only_in_prod(staging: OfflineRun, prod: OfflineRun) -> None:
    assert staging.of_type(REPLICATION) == []
    assert staging.of_type("pulumi:providers:aws") == []
    replication = prod.one(REPLICATION)
    assert replication.inputs["sourceDbInstanceArn"] == _db(prod).outputs["arn"]
    assert replication.inputs["retentionPeriod"] == 30
    assert replication.protect is True
    # Created in the DR region through its own provider, encrypted with a key of that region.
    provider = prod.one("pulumi:providers:aws")
    assert provider.inputs["region"] == "us-west-2"
    assert replication.provider.startswith(provider.urn + "::")
    key = prod.one("aws:kms/key:Key", "database-dr-backup-key")
    assert key.provider == replication.provider
    assert replication.inputs["kmsKeyId"] == key.outputs["arn"]
    assert ":us-west-2:" in key.outputs["arn"]
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 30
    assert key.protect is True


def test_security_group_admits_only_the_host_on_5432(each_stack: OfflineRun) -> None:
    db = _db(each_stack)
    (sg_id,) = db.inputs["vpcSecurityGroupIds"]
    db_sg = each_stack.by_id(sg_id)
    assert db_sg is not None and db_sg.type == "aws:ec2/securityGroup:SecurityGroup"
    assert "ingress" not in db_sg.inputs and "egress" not in db_sg.inputs
    rules = [
        r
        for r in each_stack.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == sg_id
    ]
    assert len(rules) == 1
    rule = rules[0].inputs
    host_sg = each_stack.one("aws:ec2/securityGroup:SecurityGroup", "api-host-sg")
    assert rule["referencedSecurityGroupId"] == host_sg.id
    assert (rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 5432, 5432)
    assert "cidrIpv4" not in rule and "cidrIpv6" not in rule


# Inputs AWS cannot change in place (a change replaces the resource): keep them constant.
_REPLACE_ON_CHANGE = {
    "aws:ec2/securityGroup:SecurityGroup": ("description", "name", "vpcId"),
    "aws:rds/subnetGroup:SubnetGroup": ("name",),
    "aws:rds/parameterGroup:ParameterGroup": ("family", "name"),
}


def test_port_and_identifier_changes_replace_no_group(staging: OfflineRun) -> None:
    changed = run_stack(
        "staging",
        {"prism-infra:database.port": 6432, "prism-infra:database.logMinDurationStatementMs": 50},
    )
    assert _db(changed).inputs["port"] == 6432  # the change did take effect
    for type_, fields in _REPLACE_ON_CHANGE.items():
        before = {r.name: r.inputs for r in staging.of_type(type_)}
        after = {r.name: r.inputs for r in changed.of_type(type_)}
        assert before.keys() == after.keys()
        for name in before:
            for field in fields:
                assert before[name].get(field) == after[name].get(field), (name, field)


def test_subnet_and_parameter_groups_are_explicit(each_stack: OfflineRun) -> None:
    db = _db(each_stack).inputs
    subnet_group = each_stack.one("aws:rds/subnetGroup:SubnetGroup")
    assert db["dbSubnetGroupName"] == subnet_group.outputs["name"]
    private = [s.id for s in each_stack.of_type("aws:ec2/subnet:Subnet") if "private" in s.name]
    assert sorted(subnet_group.inputs["subnetIds"]) == sorted(private)
    params = each_stack.one("aws:rds/parameterGroup:ParameterGroup")
    assert db["parameterGroupName"] == params.outputs["name"]


def test_parameter_group_forces_tls_and_logs(each_stack: OfflineRun) -> None:
    params = each_stack.one("aws:rds/parameterGroup:ParameterGroup").inputs
    assert params["family"] == "postgres16"
    values = {p["name"]: p["value"] for p in params["parameters"]}
    assert values["rds.force_ssl"] == "1"
    assert values["log_connections"] == "1"
    assert int(values["log_min_duration_statement"]) > 0


def test_no_restore_arguments_on_a_normal_stack(each_stack: OfflineRun) -> None:
    db = _db(each_stack)
    assert "restoreToPointInTime" not in db.inputs and "snapshotIdentifier" not in db.inputs
    assert db.ignore_changes == ()


# Restores: the same component, fed a backup point.

RESTORE_BASE = {f"{DB}.identifier": "prism-staging-r1"}


def _restored(restore: dict[str, Any]) -> OfflineRun:
    return run_stack("staging", RESTORE_BASE | {f"{DB}.restore": restore})


def test_restore_latest() -> None:
    db = _db(_restored({"point": "latest", "sourceIdentifier": "prism-staging"}))
    assert db.inputs["identifier"] == "prism-staging-r1"
    assert db.inputs["restoreToPointInTime"] == {
        "sourceDbInstanceIdentifier": "prism-staging",
        "useLatestRestorableTime": True,
    }
    assert "snapshotIdentifier" not in db.inputs
    assert set(db.ignore_changes) == {"restoreToPointInTime", "snapshotIdentifier"}


def test_restore_to_a_time_is_sent_in_utc() -> None:
    db = _db(_restored({"point": "2024-05-01T05:30:00+02:00", "sourceIdentifier": "prism-staging"}))
    assert db.inputs["restoreToPointInTime"] == {
        "sourceDbInstanceIdentifier": "prism-staging",
        "restoreTime": "2024-05-01T03:30:00Z",
    }
    assert set(db.ignore_changes) == {"restoreToPointInTime", "snapshotIdentifier"}


def test_restore_from_snapshot() -> None:
    db = _db(_restored({"point": "snapshot:prism-staging-pre-migration-42"}))
    assert db.inputs["snapshotIdentifier"] == "prism-staging-pre-migration-42"
    assert "restoreToPointInTime" not in db.inputs
    assert set(db.ignore_changes) == {"restoreToPointInTime", "snapshotIdentifier"}


def test_restore_in_another_region_from_replicated_backups() -> None:
    arn = "arn:aws:rds:us-west-2:123456789012:auto-backup:ab-abc123"
    db = _db(_restored({"point": "latest", "sourceAutomatedBackupsArn": arn}))
    assert db.inputs["restoreToPointInTime"]["sourceDbInstanceAutomatedBackupsArn"] == arn


def test_restored_instance_keeps_explicit_groups_and_posture() -> None:
    run = _restored({"point": "latest", "sourceIdentifier": "prism-staging"})
    db = _db(run).inputs
    assert db["dbSubnetGroupName"] == run.one("aws:rds/subnetGroup:SubnetGroup").outputs["name"]
    assert (
        db["parameterGroupName"] == run.one("aws:rds/parameterGroup:ParameterGroup").outputs["name"]
    )
    assert db["vpcSecurityGroupIds"] == [
        run.one("aws:ec2/securityGroup:SecurityGroup", "database-sg").id
    ]
    assert db["publiclyAccessible"] is False and db["storageEncrypted"] is True
    assert db["backupRetentionPeriod"] == 7 and db["skipFinalSnapshot"] is False
    # Name and master user come from the source; setting them would be rejected or churn.
    assert "dbName" not in db and "username" not in db
    assert db["tags"]["prism:restored-from"] == "prism-staging@latest"


def test_final_snapshot_suffix_changes_with_identifier_and_source() -> None:
    def keepers(run: OfflineRun) -> dict[str, str]:
        return run.one("random:index/randomId:RandomId").inputs["keepers"]

    plain = keepers(run_stack("staging"))
    renamed = keepers(run_stack("staging", RESTORE_BASE))
    restored = keepers(_restored({"point": "latest", "sourceIdentifier": "prism-staging"}))
    assert plain != renamed != restored != plain


# After a restore: the restore block is the instance's record of its origin. It may only be
# dropped for `restoredFrom`, which must leave the instance exactly as the block did.

RESTORE_BLOCK = {"point": "latest", "sourceIdentifier": "prism-staging"}
RESTORED_INSTANCE_STATE = ("inputs", "ignore_changes", "protect")


def test_restored_from_in_place_of_the_restore_block_changes_nothing_but_the_block() -> None:
    with_block = _restored(RESTORE_BLOCK)
    without = run_stack(
        "staging",
        RESTORE_BASE
        | {f"{DB}.restoredFrom": _db(with_block).inputs["tags"]["prism:restored-from"]},
    )
    before, after = _db(with_block), _db(without)
    # The restore arguments go; they are ignored, so the engine keeps them as they were.
    assert set(before.inputs) - set(after.inputs) == {"restoreToPointInTime"}
    assert (
        set(after.ignore_changes)
        == set(before.ignore_changes)
        == {
            "restoreToPointInTime",
            "snapshotIdentifier",
        }
    )
    # Everything else is the same: no dbName/username appear, same tags, same snapshot name.
    same = {k: v for k, v in before.inputs.items() if k != "restoreToPointInTime"}
    assert after.inputs == same
    assert "dbName" not in after.inputs and "username" not in after.inputs

    def suffix(run: OfflineRun) -> ResourceRecord:
        return run.one("random:index/randomId:RandomId")

    assert suffix(without).inputs["keepers"] == suffix(with_block).inputs["keepers"]


def test_dropping_the_restore_block_alone_would_replace_the_database() -> None:
    # Why docs/stacks.md says never to remove it: this is the diff the engine would see.
    restored_run, dropped_run = _restored(RESTORE_BLOCK), run_stack("staging", RESTORE_BASE)
    restored, dropped = _db(restored_run), _db(dropped_run)
    assert restored.ignore_changes != () and dropped.ignore_changes == ()
    assert "dbName" in dropped.inputs and "username" in dropped.inputs
    assert "dbName" not in restored.inputs and "username" not in restored.inputs

    def keepers(run: OfflineRun) -> dict[str, str]:
        return run.one("random:index/randomId:RandomId").inputs["keepers"]

    assert keepers(restored_run) != keepers(dropped_run)  # a new final-snapshot suffix


def test_restored_from_and_restore_together_are_refused() -> None:
    message = config_error(
        "staging",
        RESTORE_BASE
        | {f"{DB}.restore": RESTORE_BLOCK, f"{DB}.restoredFrom": "prism-staging@latest"},
    )
    assert message.startswith(f"{DB}.restoredFrom must not be set together with {DB}.restore")


def test_restored_from_must_look_like_an_origin() -> None:
    message = config_error("staging", RESTORE_BASE | {f"{DB}.restoredFrom": "yes"})
    assert message.startswith(f"{DB}.restoredFrom must be <source>@<point>")


# The component on its own, as a drill program would use it.


def test_component_reuses_an_existing_subnet_group_and_extra_tags() -> None:
    settings = DatabaseConfig.model_validate(
        {
            "identifier": "drill-20260401t0300",
            "instanceClass": "db.t4g.micro",
            "backupRetentionDays": 7,
            "backupWindow": "03:00-03:30",
            "maintenanceWindow": "sun:04:30-sun:05:30",
            "finalSnapshot": False,
        }
    )

    def program() -> None:
        db = PrismDatabase(
            "drill-db",
            PrismDatabaseArgs(
                settings=settings,
                stack="drill-20260401t0300",
                vpc_id="vpc-0abc1234",
                subnet_group_name="prism-prod-subnets",
                client_security_group_ids=["sg-0drillhost"],
                restore=RestoreSpec(point="latest", source_identifier="prism-prod"),
                extra_tags={"prism:drill": "true", "prism:expires-at": "2026-04-01T09:00:00Z"},
            ),
        )
        pulumi.export("endpoint", db.endpoint)

    run = _run_component(program)
    db = _db(run)
    assert db.inputs["dbSubnetGroupName"] == "prism-prod-subnets"
    assert run.of_type("aws:rds/subnetGroup:SubnetGroup") == []
    assert db.inputs["skipFinalSnapshot"] is True and "finalSnapshotIdentifier" not in db.inputs
    assert db.protect is False and db.inputs["deletionProtection"] is False
    assert db.inputs["tags"]["prism:drill"] == "true"
    assert db.inputs["tags"]["prism:expires-at"] == "2026-04-01T09:00:00Z"
    assert run.outputs["endpoint"].startswith("drill-20260401t0300.offline.")


def _drill_settings() -> DatabaseConfig:
    return DatabaseConfig.model_validate(
        {
            "identifier": "drill-20260401t0300",
            "instanceClass": "db.t4g.micro",
            "backupRetentionDays": 7,
            "backupWindow": "03:00-03:30",
            "maintenanceWindow": "sun:04:30-sun:05:30",
            "finalSnapshot": False,
        }
    )


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({}, "exactly one of subnet_ids and subnet_group_name"),
        (
            {"subnet_ids": ["subnet-0abc1234"], "subnet_group_name": "prism-prod-subnets"},
            "exactly one of subnet_ids and subnet_group_name",
        ),
        (
            {
                "subnet_group_name": "prism-prod-subnets",
                "restore": RestoreSpec(point="latest", source_identifier="prism-prod"),
                "restored_from": "prism-prod@latest",
            },
            "restore or restored_from, not both",
        ),
    ],
)
def test_bad_component_arguments_fail_before_any_resource(
    where: dict[str, Any], message: str
) -> None:
    # Raised when the arguments are built, so nothing can have been registered yet.
    with pytest.raises(ValueError, match=message):
        PrismDatabaseArgs(settings=_drill_settings(), stack="drill", vpc_id="vpc-0abc1234", **where)


def test_a_bad_restore_in_component_arguments_fails_before_any_resource() -> None:
    with pytest.raises(ConfigError, match=r"^PrismDatabaseArgs\.restore\.sourceIdentifier "):
        PrismDatabaseArgs(
            settings=_drill_settings(),
            stack="drill",
            vpc_id="vpc-0abc1234",
            subnet_group_name="prism-prod-subnets",
            restore=RestoreSpec(point="latest"),
        )


def _run_component(program: Any) -> OfflineRun:
    # Any stack file provides the runtime config; the program ignores it.
    return run_program("staging", preview=False, program=program, fill_missing_secrets=False)


def test_master_secret_arn_is_exported_but_never_a_password(each_stack: OfflineRun) -> None:
    arn = each_stack.outputs["dbMasterSecretArn"]
    assert isinstance(arn, str) and arn.startswith("arn:aws:secretsmanager:")
    assert not any(isinstance(v, Secret) for v in each_stack.outputs.values())


def test_computed_outputs_are_exported(each_stack: OfflineRun) -> None:
    identifier = EXPECTED[each_stack.stack]["identifier"]
    assert each_stack.outputs["dbEndpoint"].startswith(f"{identifier}.")
    assert each_stack.outputs["dbArn"].endswith(f":db:{identifier}")
    assert (
        each_stack.outputs["dbLatestRestorableTime"]
        == _db(each_stack).outputs["latestRestorableTime"]
    )


def test_each_log_export_has_its_own_tagged_log_group_with_a_retention(
    each_stack: OfflineRun,
) -> None:
    db = _db(each_stack).inputs
    groups = {
        g.inputs["name"]: g.inputs for g in each_stack.of_type("aws:cloudwatch/logGroup:LogGroup")
    }
    # The names RDS writes the exports to: declared, RDS never creates them untagged.
    assert set(groups) == {
        f"/aws/rds/instance/{db['identifier']}/{log}" for log in db["enabledCloudwatchLogsExports"]
    }
    for group in groups.values():
        assert group["retentionInDays"] == 30
        assert group["tags"]["prism:stack"] == each_stack.stack
