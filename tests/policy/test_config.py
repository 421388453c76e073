"""Policy config: the model's floors, and config files that are refused with the file, the key
and the fix named (the offline plan turns these into exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from policy.catalog import SETTINGS
from policy.config import (
    CONFIG_DIR,
    PolicyConfig,
    PolicyConfigError,
    load_pack_config,
    parse_pack_config,
)


def test_defaults_are_the_specs_floors() -> None:
    config = PolicyConfig()
    assert (config.min_retention_days, config.prod_min_retention_days) == (7, 30)
    assert config.retention_floor(prod=False) == 7 and config.retention_floor(prod=True) == 30
    assert config.storage_headroom == 1.1 and config.environment == "auto"


@pytest.mark.parametrize(
    "settings",
    [
        {"minRetentionDays": 0},
        {"minRetentionDays": 36},
        {"minRetentionDays": 14, "prodMinRetentionDays": 7},
        {"storageHeadroom": 1.05},
        {"parameterPrefix": "prism/{stack}"},
        {"parameterPrefix": "/prism/all"},
        {"environment": "production"},
        {"retention": 7},
    ],
)
def test_bad_settings_are_refused(settings: dict) -> None:
    with pytest.raises(ValidationError):
        PolicyConfig.model_validate(settings)


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_committed_files_load(stack: str) -> None:
    config = load_pack_config(CONFIG_DIR / f"{stack}.json", SETTINGS)
    assert config.for_policy("rds-backup-retention").environment == stack
    assert config.for_policy("tunnel-catch-all-last") == PolicyConfig()
    assert config.level("rds-prod-multi-az", "advisory") == "advisory"


def test_levels_from_the_file() -> None:
    doc = {
        "all": "advisory",
        "rds-not-public": "mandatory",
        "rds-prod-multi-az": {"enforcementLevel": "disabled"},
    }
    config = parse_pack_config(doc, SETTINGS)
    assert config.level("rds-not-public", "mandatory") == "mandatory"
    assert config.level("rds-backup-window", "mandatory") == "advisory"
    assert config.level("rds-prod-multi-az", "advisory") == "disabled"
    remediate = parse_pack_config({"rds-not-public": "remediate"}, SETTINGS)
    assert remediate.level("rds-not-public", "mandatory") == "mandatory"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ([], "must be a JSON object of policy names"),
        ({"rds-retention": {}}, "'rds-retention' is not a policy of this pack"),
        (
            {"rds-not-public": {"minRetentionDays": 9}},
            "rds-not-public.minRetentionDays is not a setting of this policy",
        ),
        (
            {"rds-backup-retention": {"minRetentionDays": 0}},
            "rds-backup-retention.minRetentionDays:",
        ),
        (
            {"rds-backup-retention": "strict"},
            "must be one of mandatory, advisory, disabled, remediate",
        ),
        ({"all": {"x": 1}}, "all must be one of"),
        ({"rds-backup-retention": 7}, "must be a level or an object of settings"),
    ],
)
def test_bad_files_are_named(doc: object, expected: str) -> None:
    with pytest.raises(PolicyConfigError) as info:
        parse_pack_config(doc, SETTINGS, source=Path("policy/config/prod.json"))
    assert str(info.value).startswith("policy/config/prod.json")
    assert expected in str(info.value)


def test_unreadable_or_broken_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyConfigError, match="cannot be read"):
        load_pack_config(tmp_path / "missing.json", SETTINGS)
    broken = tmp_path / "prod.json"
    broken.write_text('{"rds-backup-retention": {\n')
    with pytest.raises(PolicyConfigError, match="not valid JSON at line 2"):
        load_pack_config(broken, SETTINGS)
    broken.write_text(json.dumps({"rds-backup-retention": {"environment": "prod"}}))
    assert (
        load_pack_config(broken, SETTINGS).for_policy("rds-backup-retention").environment == "prod"
    )
