"""infra/config.py: every invalid setting fails with its full key named, on the real stack files."""

from __future__ import annotations

import pulumi
import pytest

from infra.config import (
    DASH,
    SECRET_KEYS,
    SECRET_KEYS_ENV,
    ConfigError,
    DatabaseConfig,
    StackConfig,
    declared_secret_keys,
    load_config,
    parse_backup_window,
    parse_maintenance_window,
    parse_section,
    windows_overlap,
)
from infra.downloads import PINNED
from infra.offline import DELETE, Secret, read_stack_config, runtime_config
from tests.infra.conftest import FAKE_SECRETS, config_error, run_stack

DB = "prism-infra:database"


@pytest.mark.parametrize("days", [0, 3, 40])
@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_retention_outside_7_to_35_names_the_key(stack: str, days: int) -> None:
    message = config_error(stack, {f"{DB}.backupRetentionDays": days})
    assert message == f"{DB}.backupRetentionDays must be 7{DASH}35 (got {days})"


def test_prod_without_deletion_protection_fails() -> None:
    message = config_error("prod", {f"{DB}.deletionProtection": False})
    assert message == (
        f"{DB}.deletionProtection must be true when prism-infra:environment is prod (got false)"
    )


def test_prod_needs_30_days_retention() -> None:
    message = config_error("prod", {f"{DB}.backupRetentionDays": 14})
    assert message.startswith(f"{DB}.backupRetentionDays must be at least 30 when")
    assert message.endswith("(got 14)")


def test_prod_needs_multi_az() -> None:
    assert config_error("prod", {f"{DB}.multiAz": False}).startswith(f"{DB}.multiAz must be true")


def test_prod_needs_backup_replication() -> None:
    message = config_error("prod", {f"{DB}.backupReplication.enabled": False})
    assert message.startswith(f"{DB}.backupReplication.enabled must be true when")


def test_prod_rules_follow_the_environment_knob_not_the_stack_name() -> None:
    # staging's file, switched to prod: the prod rules apply to it.
    message = config_error("staging", {"prism-infra:environment": "prod"})
    assert message.startswith(
        f"{DB}.deletionProtection must be true when prism-infra:environment is prod"
    )


def test_the_prod_stack_cannot_opt_out_of_prod_rules() -> None:
    message = config_error("prod", {"prism-infra:environment": "staging"})
    assert message.startswith("prism-infra:environment must be prod for the stack named prod")


def test_staging_and_prod_keep_a_final_snapshot() -> None:
    message = config_error("staging", {f"{DB}.finalSnapshot": False})
    assert message.startswith(
        f"{DB}.finalSnapshot must be true when prism-infra:environment is staging"
    )


def test_missing_zone_id_names_the_key_and_the_command() -> None:
    message = config_error("staging", {"prism-infra:tunnel.zoneId": DELETE})
    assert message == (
        "prism-infra:tunnel.zoneId is required: "
        "pulumi config set --path 'prism-infra:tunnel.zoneId' <value>"
    )


@pytest.mark.parametrize(
    "hostname", ["api..example.com", "API.example.com", "localhost", "-api.example.com"]
)
def test_malformed_hostname(hostname: str) -> None:
    message = config_error("prod", {"prism-infra:tunnel.hostname": hostname})
    assert message.startswith("prism-infra:tunnel.hostname must be a lowercase DNS name")
    assert hostname in message


def test_overlapping_windows_fail_with_both_keys() -> None:
    message = config_error(
        "staging",
        {f"{DB}.backupWindow": "04:00-04:45", f"{DB}.maintenanceWindow": "sun:04:30-sun:05:30"},
    )
    assert message.startswith(f"{DB}.backupWindow 04:00-04:45 overlaps {DB}.maintenanceWindow")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (f"{DB}.backupWindow", "03:00-03:10", "must be at least 30 minutes long"),
        (f"{DB}.backupWindow", "3am", "must look like 03:00-03:30"),
        (f"{DB}.maintenanceWindow", "sunday 04:00", "must look like sun:04:30-sun:05:30"),
        (f"{DB}.identifier", "Prism_Prod", "must be an RDS identifier"),
        (f"{DB}.multiAz", "yes", "must be true or false"),
        ("prism-infra:tunnel.accountId", "abc", "must be a 32-character lowercase hex id"),
        ("prism-infra:alarms.email", "not-an-address", "must be an e-mail address"),
        ("prism-infra:apiHost.port", 0, f"must be 1{DASH}65535 (got 0)"),
        ("prism-infra:apiHost.port", 70000, f"must be 1{DASH}65535 (got 70000)"),
        (f"{DB}.port", 1024, f"must be 1150{DASH}65535 (got 1024)"),  # RDS's own range
        ("prism-infra:environment", "qa", "must be staging, prod or drill"),
    ],
)
def test_field_errors_name_their_key(key: str, value: object, expected: str) -> None:
    message = config_error("staging", {key: value})
    assert message.startswith(f"{key} ")
    assert expected in message


def test_unknown_key_is_a_typo_with_a_suggestion() -> None:
    message = config_error("staging", {f"{DB}.backupRetentionDay": 7})
    assert message.startswith(f"{DB}.backupRetentionDay is not a known setting")
    assert "did you mean prism-infra:database.backupRetentionDays?" in message


@pytest.mark.parametrize(("allocated", "ceiling"), [(20, 20), (20, 21), (50, 54), (100, 109)])
def test_storage_ceiling_must_be_at_least_a_tenth_above(allocated: int, ceiling: int) -> None:
    # RDS answers "Invalid max storage size" below 1.1 x the allocated storage.
    overrides = {f"{DB}.allocatedStorageGb": allocated, f"{DB}.maxAllocatedStorageGb": ceiling}
    message = config_error("staging", overrides)
    least = -(-allocated * 11 // 10)
    assert message == (
        f"{DB}.maxAllocatedStorageGb must be at least {least} (1.1 x allocatedStorageGb "
        f"{allocated}, what RDS accepts) (got {ceiling})"
    )


@pytest.mark.parametrize(("allocated", "ceiling"), [(20, 22), (50, 55), (21, 24)])
def test_storage_ceiling_of_a_tenth_above_is_accepted(allocated: int, ceiling: int) -> None:
    run = run_stack(
        "staging",
        {f"{DB}.allocatedStorageGb": allocated, f"{DB}.maxAllocatedStorageGb": ceiling},
    )
    assert run.one("aws:rds/instance:Instance").inputs["maxAllocatedStorage"] == ceiling


def test_replication_region_must_differ_from_the_primary() -> None:
    message = config_error("prod", {f"{DB}.backupReplication.region": "us-east-1"})
    assert message.startswith(f"{DB}.backupReplication.region must differ from aws:region")


def test_architecture_must_match_instance_type() -> None:
    message = config_error("staging", {"prism-infra:apiHost.instanceType": "t3.small"})
    assert message.startswith("prism-infra:apiHost.instanceType t3.small does not run arm64")


def test_secret_looking_plain_env_is_refused() -> None:
    message = config_error("staging", {"prism-infra:apiHost.env": {"STRIPE_SECRET": "x"}})
    assert message.startswith("prism-infra:apiHost.env.STRIPE_SECRET looks like a secret")


@pytest.mark.parametrize("port", [1024, 1149, 80])
def test_api_port_is_not_held_to_the_rds_port_range(port: int) -> None:
    run = run_stack("staging", {"prism-infra:apiHost.port": port})
    ingress = run.one(
        "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
    ).inputs["config"]["ingresses"][0]
    assert ingress["service"] == f"http://localhost:{port}"


@pytest.mark.parametrize(("port", "user"), [(22, "sshd"), (20241, "cloudflared"), (20245, "cloud")])
def test_api_port_taken_by_the_host_is_refused(port: int, user: str) -> None:
    message = config_error("staging", {"prism-infra:apiHost.port": port})
    assert message.startswith(f"prism-infra:apiHost.port {port} is taken on the host by {user}")


ENV = "prism-infra:apiHost.env"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # The boot script writes each file through a heredoc ending at PRISM_EOF.
        ({"BANNER": "x\nPRISM_EOF\ny"}, f"{ENV}.BANNER must not contain PRISM_EOF"),
        ({"BANNER": "before PRISM_EOF after"}, f"{ENV}.BANNER must not contain PRISM_EOF"),
        ({"PRISM_EOF": "1"}, f"{ENV}.PRISM_EOF must not contain PRISM_EOF"),
        ({"BANNER": "tab\there"}, f"{ENV}.BANNER must not contain control characters"),
        # Set by the compose file from their own keys: refused instead of silently overridden.
        ({"PORT": "9000"}, f"{ENV}.PORT is set by the stack from prism-infra:apiHost.port"),
        (
            {"IMPORT_UPLOAD_DIR": "/tmp"},
            f"{ENV}.IMPORT_UPLOAD_DIR is set by the stack from prism-infra:apiHost.importUploadDir",
        ),
        # User data is capped at 16 KiB by EC2.
        ({"BIG": "x" * 2100}, f"{ENV} holds 2103 bytes of names and values; at most 2048 fit"),
        ({f"K{i}": "" for i in range(65)}, f"{ENV} has 65 entries; at most 64 fit"),
    ],
)
def test_env_that_would_break_the_boot_script_names_the_key(
    env: dict[str, str], expected: str
) -> None:
    assert config_error("staging", {ENV: env}).startswith(expected)


def test_upload_dir_with_the_heredoc_marker_is_refused() -> None:
    message = config_error("staging", {"prism-infra:apiHost.importUploadDir": "/srv/PRISM_EOF"})
    assert message.startswith("prism-infra:apiHost.importUploadDir must not contain PRISM_EOF")


def test_adopt_mode_needs_the_vpc() -> None:
    message = config_error("staging", {"prism-infra:network": {"mode": "adopt"}})
    assert message.startswith("prism-infra:network.vpcId is required with mode: adopt")


def test_missing_secret_names_the_set_command() -> None:
    secrets = {k: v for k, v in FAKE_SECRETS.items() if k != "prism-infra:redisUrl"}
    message = config_error("staging", {}, secrets=secrets, fill_missing_secrets=False)
    assert message == (
        "prism-infra:redisUrl is not set: "
        "pulumi config set prism-infra:redisUrl <value> --stack staging --secret"
    )


def test_secret_in_clear_text_is_refused() -> None:
    # A plain (not `secure:`) value in the stack file for a secret key.
    message = config_error("staging", {"prism-infra:redisUrl": "rediss://plain"}, secrets={})
    assert message.startswith("prism-infra:redisUrl is stored in clear text")


def test_all_secrets_in_clear_text_are_refused() -> None:
    # Nothing in the file is secure: nothing is declared secret, which must not mean "fine".
    plain = {key: "plain-value" for key in SECRET_KEYS}
    message = config_error("staging", plain, secrets={}, fill_missing_secrets=False)
    assert message == (
        "prism-infra:clerkSecretKey is stored in clear text in Pulumi.staging.yaml: "
        "pulumi config set prism-infra:clerkSecretKey <value> -s staging --secret"
    )


def test_a_secret_in_clear_in_the_file_is_refused_even_if_a_secret_value_is_given() -> None:
    message = config_error("staging", {"prism-infra:redisUrl": "rediss://plain"})
    assert message.startswith("prism-infra:redisUrl is stored in clear text in Pulumi.staging")


def _load_with_plain_secrets() -> None:
    """What the CLI hands a program whose three secrets are plain values in the stack file:
    every value, and no key in the runtime's secret set (the language host only sets
    PULUMI_CONFIG_SECRET_KEYS)."""
    values, _, _ = runtime_config(read_stack_config("staging"), fill_missing_secrets=False)
    pulumi.runtime.set_all_config(values | {k: "plain-value" for k in SECRET_KEYS}, [])
    load_config(examples_allowed=True)


def test_cli_saying_no_key_is_secret_still_refuses_plain_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CLI's language host sends `[]` when no key is secret: an answer, not silence.
    monkeypatch.setenv(SECRET_KEYS_ENV, "[]")
    with pytest.raises(ConfigError) as info:
        run_stack("staging", program=_load_with_plain_secrets)
    assert str(info.value).startswith("prism-infra:clerkSecretKey is stored in clear text")


def test_declared_secret_keys_tells_silence_from_an_empty_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SECRET_KEYS_ENV, raising=False)
    assert declared_secret_keys() is None
    monkeypatch.setenv(SECRET_KEYS_ENV, "[]")
    assert declared_secret_keys() == set()
    monkeypatch.setenv(SECRET_KEYS_ENV, '["prism-infra:redisUrl"]')
    assert declared_secret_keys() == {"prism-infra:redisUrl"}


def test_a_real_deployment_refuses_the_committed_example_values() -> None:
    from infra.stack import main

    message = config_error("prod", {}, program=lambda: main(examples_allowed=False))
    assert message.startswith("prism-infra:tunnel.accountId is still the example value")


# Values a real prod stack could hold in place of every committed example value.
REAL_VALUES = {
    "prism-infra:tunnel.accountId": "a1" * 16,
    "prism-infra:tunnel.zoneId": "b2" * 16,
    "prism-infra:tunnel.hostname": "api.prism-app.io",
    "prism-infra:alarms.email": "oncall@prism-app.io",
    "prism-infra:apiHost.image": "ghcr.io/prism-app/api@sha256:" + "c4" * 32,
    "prism-infra:apiHost.extraEgressCidr": "10.60.0.0/24",
}


def test_real_values_pass_the_example_check() -> None:
    from infra.stack import main

    run = run_stack("prod", REAL_VALUES, program=lambda: main(examples_allowed=False))
    assert run.outputs["apiHostname"] == "api.prism-app.io"


@pytest.mark.parametrize("cidr", ["192.0.2.0/24", "198.51.100.7/32", "203.0.112.0/23"])
def test_a_documentation_range_as_the_redis_network_is_an_example_value(cidr) -> None:
    from infra.stack import main

    real = {**REAL_VALUES, "prism-infra:apiHost.extraEgressCidr": cidr}
    message = config_error("prod", real, program=lambda: main(examples_allowed=False))
    assert message.startswith("prism-infra:apiHost.extraEgressCidr is still the example value")


def test_restore_point_must_be_a_known_form() -> None:
    message = config_error(
        "staging",
        {
            f"{DB}.identifier": "prism-staging-r1",
            f"{DB}.restore": {"point": "yesterday", "sourceIdentifier": "prism-staging"},
        },
    )
    assert message.startswith(f"{DB}.restore.point must be latest, snapshot:<id> or an ISO time")


def test_restore_time_needs_an_offset_and_a_source() -> None:
    base = {f"{DB}.identifier": "prism-staging-r1"}
    naive = {f"{DB}.restore": {"point": "2024-05-01T03:00:00", "sourceIdentifier": "prism-staging"}}
    assert "must carry a UTC offset" in config_error("staging", base | naive)
    no_source = {f"{DB}.restore": {"point": "latest"}}
    assert config_error("staging", base | no_source).startswith(
        f"{DB}.restore.sourceIdentifier is required"
    )
    same = {f"{DB}.restore": {"point": "latest", "sourceIdentifier": "prism-staging-r1"}}
    assert "must differ from the new instance's identifier" in config_error("staging", base | same)


def test_every_secret_key_is_a_declared_secret_setting() -> None:
    assert set(FAKE_SECRETS) == set(SECRET_KEYS)


# Windows: the parser and the overlap rule on their own.


def test_window_parsing() -> None:
    assert parse_backup_window("03:00-03:30") == (180, 30)
    assert parse_backup_window("23:45-00:15") == (1425, 30)  # wraps midnight
    assert parse_maintenance_window("sun:04:30-sun:05:30") == (6 * 1440 + 270, 60)
    assert parse_maintenance_window("sun:23:30-mon:00:30") == (
        6 * 1440 + 1410,
        60,
    )  # wraps the week


@pytest.mark.parametrize(
    ("backup", "maintenance", "overlap"),
    [
        ("03:00-03:30", "sun:04:30-sun:05:30", False),
        ("03:00-03:30", "sun:03:30-sun:04:00", False),  # touching is fine
        ("03:00-03:30", "wed:03:29-wed:04:00", True),
        ("23:45-00:15", "mon:00:00-mon:00:30", True),  # backup wraps midnight into monday
        ("23:45-00:15", "sun:23:30-mon:00:00", True),  # maintenance wraps the week
        ("10:00-11:00", "sun:23:30-mon:00:30", False),
    ],
)
def test_windows_overlap(backup: str, maintenance: str, overlap: bool) -> None:
    assert windows_overlap(backup, maintenance) is overlap


def test_section_missing_entirely() -> None:
    with pytest.raises(Exception) as info:
        parse_section("tunnel", None)
    assert str(info.value).startswith("prism-infra:tunnel is required")


# The rules live in the models: no caller can build a config that skips them.


def test_a_model_built_directly_runs_its_rules() -> None:
    raw = dict(read_stack_config("staging")[DB])
    raw["maxAllocatedStorageGb"] = 21
    with pytest.raises(ConfigError) as info:
        parse_section("database", raw)
    assert str(info.value).startswith(f"{DB}.maxAllocatedStorageGb must be at least 22")
    with pytest.raises(ValueError, match="must be at least 22"):
        DatabaseConfig.model_validate(raw)


def test_a_stack_config_built_directly_runs_the_prod_rules() -> None:
    cfg = read_stack_config("prod")
    sections = {
        name: parse_section(name, cfg[f"prism-infra:{name}"])
        for name in ("network", "database", "apiHost", "tunnel", "alarms")
    }
    database = sections["database"].model_copy(update={"multi_az": False})
    with pytest.raises(ConfigError) as info:
        StackConfig(
            stack="prod",
            environment="prod",
            region="us-east-1",
            network=sections["network"],
            database=database,
            api_host=sections["apiHost"],
            tunnel=sections["tunnel"],
            alarms=sections["alarms"],
        )
    assert (
        str(info.value)
        == f"{DB}.multiAz must be true when prism-infra:environment is prod (got false)"
    )


HOST = "prism-infra:apiHost"


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/example/prism-api@sha256:" + "0" * 64,
        "ghcr.io/example/prism-api:1.4.2@sha256:" + "ab" * 32,
        "registry.internal:5000/prism/api:v2",
        "prism-api",
    ],
)
def test_staging_takes_a_tag_or_a_digest(image: str) -> None:
    run = run_stack("staging", {f"{HOST}.image": image})
    parameter = run.one("aws:ssm/parameter:Parameter", "api-host-image")
    assert parameter.inputs["insecureValue"] == image


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/acme/prism-api:stable",
        "ghcr.io/acme/prism-api:1.4.2",
        "ghcr.io/acme/prism-api",  # docker reads it as :latest
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/prism-api:release",
    ],
)
def test_prod_refuses_a_mutable_image_reference(image: str) -> None:
    message = config_error("prod", {f"{HOST}.image": image})
    assert message.startswith(
        f"{HOST}.image must name the image by digest (…@sha256:<64 hex>) when "
        f"prism-infra:environment is prod (got \"{image}\")"
    )


def test_prod_takes_a_digest_with_or_without_its_tag() -> None:
    for image in (
        "ghcr.io/acme/prism-api@sha256:" + "d" * 64,
        "ghcr.io/acme/prism-api:1.4.2@sha256:" + "d" * 64,
    ):
        run = run_stack("prod", {f"{HOST}.image": image})
        assert run.outputs["apiImage"] == image


@pytest.mark.parametrize(
    ("overrides", "setting", "version"),
    [
        ({f"{HOST}.composeVersion": "v2.36.0"}, "composeVersion", "v2.36.0"),
        ({f"{HOST}.cloudflaredVersion": "2024.6.1"}, "cloudflaredVersion", "2024.6.1"),
    ],
)
def test_a_download_without_a_pinned_checksum_is_refused(
    overrides: dict[str, str], setting: str, version: str
) -> None:
    # 2024.6.1 was the stacks' cloudflared before: a release nobody pinned is never fetched.
    message = config_error("staging", overrides)
    assert message.startswith(f"{HOST}.{setting} has no pinned sha256 for arm64 ")
    assert f'in infra/downloads.py (got "{version}")' in message


def test_an_architecture_without_a_pinned_checksum_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arm_only = {"compose": PINNED["compose"], "cloudflared": {"2026.9.3": {"arm64": "e" * 64}}}
    monkeypatch.setattr("infra.downloads.PINNED", arm_only)
    message = config_error(
        "staging", {f"{HOST}.architecture": "x86_64", f"{HOST}.instanceType": "t3.small"}
    )
    assert message.startswith(f"{HOST}.cloudflaredVersion has no pinned sha256 for x86_64 ")


def test_deployed_commit_must_be_a_commit_id() -> None:
    message = config_error("prod", {"prism-infra:deployedCommit": "main"})
    assert message.startswith("prism-infra:deployedCommit must be a full git commit id")
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert run_stack("prod", {"prism-infra:deployedCommit": sha}).outputs["deployedCommit"] == sha
    assert "deployedCommit" not in run_stack("prod").outputs


@pytest.mark.parametrize(
    "image",
    ["ghcr.io/example/prism-api@sha256:abc", "ghcr.io/Example/api", "api:", "api@latest"],
)
def test_bad_image_reference_names_the_key(image: str) -> None:
    message = config_error("staging", {f"{HOST}.image": image})
    assert message.startswith(f"{HOST}.image must be an image reference like ")


@pytest.mark.parametrize("owner", ["65532", "app:app", "-1:0", "1:2:3"])
def test_upload_owner_must_be_numeric_uid_gid(owner: str) -> None:
    message = config_error("staging", {f"{HOST}.importUploadOwner": owner})
    assert (
        message
        == f'{HOST}.importUploadOwner must be numeric uid:gid like 65532:65532 (got "{owner}")'
    )


def test_upload_owner_reaches_the_boot_script() -> None:
    run = run_stack("staging", {f"{HOST}.importUploadOwner": "65532:1000"})
    user_data = run.one("aws:ec2/instance:Instance").inputs["userData"]
    assert "install -d -m 0750 -o 65532 -g 1000 /var/lib/prism/imports\n" in user_data


def test_registry_user_needs_its_password_secret() -> None:
    message = config_error("staging", {f"{HOST}.registryUsername": "prism-bot"})
    assert message == (
        "prism-infra:registryPassword is not set but prism-infra:apiHost.registryUsername is: "
        "pulumi config set prism-infra:registryPassword <token> --stack staging --secret"
    )


def test_registry_password_goes_to_ssm_under_the_stack_key() -> None:
    secrets = {**FAKE_SECRETS, "prism-infra:registryPassword": "ghp_FAKEregistry0042"}
    run = run_stack("staging", {f"{HOST}.registryUsername": "prism-bot"}, secrets=secrets)
    param = run.one("aws:ssm/parameter:Parameter", "runtime-secrets-registry-password")
    assert param.inputs["name"] == "/prism/staging/registry/password"
    assert param.inputs["type"] == "SecureString"
    assert param.inputs["value"] == Secret("ghp_FAKEregistry0042")
    key = run.one("aws:kms/key:Key", "runtime-secrets-key")
    assert param.inputs["keyId"] == key.outputs["arn"]


def test_ecr_image_takes_no_registry_user() -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/prism-api:1.0"
    message = config_error(
        "staging", {f"{HOST}.image": image, f"{HOST}.registryUsername": "prism-bot"}
    )
    assert message.startswith(f"{HOST}.registryUsername is not used with an ECR image")
