"""The pack loads: its policies build without a server, its files say what Pulumi needs, and
started the way Pulumi starts it (`python -u -m pulumi.policy <engine> <pack dir>`) it
answers the engine's analyzer calls over gRPC on 127.0.0.1 with this repository's verdicts."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import jsonschema
import pytest
import yaml
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from policy.catalog import RULES
from policy.config import PolicyConfig
from policy.pack import PACK_NAME, policies

ROOT = Path(__file__).resolve().parents[2]
PACK_DIR = ROOT / "policy"


def test_every_rule_becomes_one_policy() -> None:
    built = policies()
    assert [p.name for p in built] == [r.name for r in RULES]
    assert len({p.name for p in built}) == len(built)
    for policy, rule in zip(built, RULES, strict=True):
        assert policy.description and policy.remediation_steps == rule.fix
        assert isinstance(policy, ResourceValidationPolicy | StackValidationPolicy)
        level = EnforcementLevel(rule.enforcement)
        assert policy.enforcement_level == level
        if rule.config_fields:
            schema = {"type": "object", "properties": policy.config_schema.properties}
            jsonschema.Draft7Validator.check_schema(schema)
            defaults = {k: v["default"] for k, v in schema["properties"].items()}
            jsonschema.validate(defaults, schema)
            assert set(schema["properties"]) == set(rule.config_fields)
        else:
            assert policy.config_schema is None


def test_advisory_policies_are_the_documented_ones() -> None:
    advisory = {r.name for r in RULES if r.enforcement == "advisory"}
    assert advisory == {"rds-prod-multi-az"}
    catalog_doc = (PACK_DIR / "catalog.py").read_text()
    assert all(f"`{name}`" in catalog_doc for name in advisory)


def test_pack_files() -> None:
    manifest = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"] == {"name": "python", "options": {"virtualenv": "venv"}}
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["description"]
    # the pack's venv gets the versions the project's lock pins
    lock = (ROOT / "requirements.lock").read_text()
    pins = [
        line.split("==")
        for line in (PACK_DIR / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert {name for name, _ in pins} == {"pulumi-policy", "pydantic"}
    for name, version in pins:
        assert f"\n{name}=={version} " in lock, f"{name}=={version} is not the locked version"
    assert "policy/venv/" in (ROOT / ".gitignore").read_text().splitlines()


def test_main_only_builds_the_pack() -> None:
    # Imported, it would serve forever: read it instead.
    tree = ast.parse((PACK_DIR / "__main__.py").read_text())
    calls = [
        node.value.func.id
        for node in tree.body
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
    ]
    assert calls == ["PolicyPack"]


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_committed_configs_fit_the_policies_schemas(stack: str) -> None:
    doc = json.loads((PACK_DIR / "config" / f"{stack}.json").read_text())
    by_name = {p.name: p for p in policies()}
    for name, settings in doc.items():
        schema = {
            "type": "object",
            "properties": by_name[name].config_schema.properties,
            "additionalProperties": False,
        }
        jsonschema.validate(settings, schema)
        PolicyConfig.model_validate(settings)


# --- the pack as Pulumi runs it ---------------------------------------------------------------


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    env = {**os.environ, "PYTHONPATH": ""}  # nothing from the test run: the pack finds itself
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(PACK_DIR)],
        cwd=PACK_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        line = process.stdout.readline().decode().strip() if process.stdout else ""
        assert line.isdigit(), (line, process.stderr.read().decode() if process.stderr else "")
        channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def _struct(data: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    json_format.ParseDict(data, message)
    return message


def _db_urn(stack: str) -> str:
    return f"urn:pulumi:{stack}::prism-infra::aws:rds/instance:Instance::database-instance"


DB_PROPS = {
    "backupRetentionPeriod": 7,
    "backupWindow": "03:00-03:30",
    "storageEncrypted": True,
    "publiclyAccessible": False,
    "copyTagsToSnapshot": True,
    "allocatedStorage": 20,
    "maxAllocatedStorage": 100,
    "deletionProtection": False,
    "skipFinalSnapshot": False,
    "finalSnapshotIdentifier": "prism-staging-final-1a2b3c4d",
    "deleteAutomatedBackups": False,
    "multiAz": False,
    "tags": {"prism:stack": "staging", "prism:environment": "staging"},
}


def _analyze(stub: analyzer_pb2_grpc.AnalyzerStub, stack: str, props: dict) -> dict[str, str]:
    request = analyzer_pb2.AnalyzeRequest(
        type="aws:rds/instance:Instance",
        properties=_struct(props),
        urn=_db_urn(stack),
        name="database-instance",
    )
    response = stub.Analyze(request, timeout=30)
    return {d.policyName: d.message for d in response.diagnostics}


def test_the_pack_serves_the_engine(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(struct_pb2.Struct(), timeout=30)
    assert info.name == PACK_NAME
    assert [p.name for p in info.policies] == [r.name for r in RULES]
    assert _analyze(analyzer, "staging", DB_PROPS) == {}
    # the same instance on a stack called prod: prod's floors and safeguards apply
    found = _analyze(analyzer, "prod", DB_PROPS)
    assert set(found) == {
        "rds-backup-retention",
        "rds-prod-deletion-protection",
        "rds-prod-multi-az",
    }
    assert "at least 30 required on prod" in found["rds-backup-retention"]


def test_the_pack_takes_its_config_from_the_engine(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    config = analyzer_pb2.ConfigureAnalyzerRequest(
        policyConfig={
            "rds-backup-retention": analyzer_pb2.PolicyConfig(
                enforcementLevel=analyzer_pb2.MANDATORY,
                properties=_struct({"minRetentionDays": 14}),
            ),
            "rds-prod-multi-az": analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.DISABLED),
        }
    )
    analyzer.Configure(config, timeout=30)
    try:
        found = _analyze(analyzer, "staging", DB_PROPS)
        assert "at least 14 required" in found["rds-backup-retention"]
        assert "rds-prod-multi-az" not in _analyze(analyzer, "prod", DB_PROPS)
    finally:
        analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(), timeout=30)


def test_the_pack_runs_stack_policies(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    prod_db = {**DB_PROPS, "backupRetentionPeriod": 30, "deletionProtection": True}
    resource = analyzer_pb2.AnalyzerResource(
        type="aws:rds/instance:Instance",
        properties=_struct(prod_db),
        urn=_db_urn("prod"),
        name="database-instance",
    )
    response = analyzer.AnalyzeStack(
        analyzer_pb2.AnalyzeStackRequest(resources=[resource]), timeout=30
    )
    [diagnostic] = [d for d in response.diagnostics if d.enforcementLevel == analyzer_pb2.MANDATORY]
    assert diagnostic.policyName == "rds-prod-backup-replication"
    assert diagnostic.urn == _db_urn("prod")
