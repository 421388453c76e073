"""The manifest: the shipped Prism default, overlays, and one-line errors naming the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from drills.verify import Manifest, load_manifest
from drills.verify.manifest import default_manifest_path, parse_duration
from infra.errors import BadInput

PRISM_TABLES = ["organizations", "memberships", "buildings", "comps", "tims", "reports",
                "exports", "audit_logs"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return path


def test_default_manifest_expects_prisms_tables_and_the_seeds_targets():
    manifest = load_manifest()
    assert list(manifest.tables) == PRISM_TABLES
    assert all(spec.min_rows == 1 for spec in manifest.tables.values())
    assert manifest.targets.rpo_hours == 24 and manifest.targets.rto_hours == 4
    assert manifest.freshness.table == "audit_logs"
    assert manifest.freshness.max_staleness == timedelta(hours=24)
    assert manifest.migrations.table == "schema_migrations"
    assert manifest.org.table == "organizations"
    assert default_manifest_path().name == "prism-manifest.yaml"


def test_a_user_manifest_overlays_the_default(tmp_path):
    path = write(tmp_path, """
targets: {rpo_hours: 12}
freshness: {max_staleness: 90m}
tables:
  exports: null          # no longer expected
  comps: {min_rows: 500}
  leases: {}             # expected, non-empty
""")
    manifest = load_manifest(path)
    assert manifest.targets.rpo_hours == 12
    assert manifest.targets.rto_hours == 4  # kept from the default
    assert manifest.freshness.max_staleness == timedelta(minutes=90)
    assert manifest.freshness.table == "audit_logs"
    assert "exports" not in manifest.tables
    assert manifest.tables["comps"].min_rows == 500
    assert manifest.tables["leases"].min_rows == 1
    assert "buildings" in manifest.tables


def test_a_list_of_tables_replaces_the_expected_set(tmp_path):
    manifest = load_manifest(write(tmp_path, "tables: [accounts, invoices]\n"))
    assert list(manifest.tables) == ["accounts", "invoices"]


def test_an_empty_manifest_is_the_default(tmp_path):
    assert load_manifest(write(tmp_path, "")) == load_manifest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("freshnes: {table: audit_logs}\n",
         "unknown key 'freshnes'; known keys here: schemas, tables, org"),
        ("tables:\n  comps: {min_row: 3}\n",
         "unknown key 'tables.comps.min_row'; known keys here: min_rows"),
        ("freshness: {max_staleness: soon}\n",
         "freshness.max_staleness: 'soon' is not a duration; use e.g. 30m, 6h, 1d"),
        ("targets: {rpo_hours: 0}\n", "targets.rpo_hours: Input should be greater than 0"),
        ("tables:\n  comps: {min_rows: -1}\n", "tables.comps.min_rows: Input should be greater"),
        ("spot_checks: {rows_per_table: many}\n", "spot_checks.rows_per_table: Input should be"),
        ("tables: [a\n", "is not valid YAML at line 2"),
        ("- tables\n", "the top level must be a mapping"),
    ],
)
def test_bad_manifest_raises_bad_input_naming_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(BadInput) as caught:
        load_manifest(path)
    error = str(caught.value)
    assert message in error
    assert error.startswith(f"manifest {path}")
    assert "\n" not in error


def test_missing_manifest_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match=r"manifest .*nope.yaml not found"):
        load_manifest(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", timedelta(minutes=30)), ("6h", timedelta(hours=6)), ("1d", timedelta(days=1)),
     ("1h30m", timedelta(minutes=90)), (3600, timedelta(hours=1)), ("45", timedelta(seconds=45))],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


def test_models_can_be_built_in_code_without_a_file():
    manifest = Manifest(tables={"t": {"min_rows": 2}}, freshness={"max_staleness": "2h"})
    assert manifest.tables["t"].min_rows == 2
    assert manifest.freshness.max_staleness == timedelta(hours=2)


def test_replace_states_a_table_set_outright(tmp_path):
    path = write(tmp_path, """
replace: [tables, freshness]
tables:
  users: {}
  orders: {min_rows: 10}
freshness: {table: orders}
database: shop
""")
    manifest = load_manifest(path)
    assert list(manifest.tables) == ["users", "orders"]
    assert manifest.tables["orders"].min_rows == 10
    assert manifest.freshness.table == "orders"
    assert manifest.freshness.max_staleness == timedelta(hours=24)  # the model's default
    assert manifest.database == "shop"
    assert manifest.targets.rpo_hours == 24  # not replaced: still Prism's


@pytest.mark.parametrize(("text", "message"), [
    ("replace: [tabels]\n", "replace: unknown key 'tabels'; known keys:"),
    ("replace: {tables: true}\n", "replace must be a list of keys"),
])
def test_a_bad_replace_is_bad_input_naming_it(tmp_path, text, message):
    with pytest.raises(BadInput, match=message):
        load_manifest(write(tmp_path, text))
