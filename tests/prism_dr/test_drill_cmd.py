"""`prism-dr drill` as a user runs it: a real process, its exit code, its stdout and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest


def prism_dr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prism_dr", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("prism-dr: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["drill"], "--backup"),
        (["drill", "--backup", "missing.dump"], "missing.dump"),
        (["drill", "--backup", "junk.bin"], "junk.bin"),
        (["drill", "--backup", "x.sql", "--tier", "bogus"], "--tier"),
        (["drill", "--backup", "x.sql", "--point", "yesterday"], "--point"),
        (["drill", "--backup", "x.sql", "--point", "2026-01-01T00:00:00"], "UTC offset"),
        (["drill", "--demo", "--backup", "x.sql"], "--demo"),
        (["drill", "--backup", "x.sql", "--api-url", "localhost:8080"], "--api-url"),
        (["drill", "--backup", "x.sql", "--manifest", "nope.yaml"], "nope.yaml"),
        (["drill", "log", "--record-dir", "no-such-dir"], "no-such-dir"),
        (["no-such-command"], "no-such-command"),
        (["drill", "--backup", "x.sql", "--environment", "staging/us"], "--environment"),
        (["drill", "--backup", "x.sql", "--record-dir", "/proc/records"], "--record-dir"),
        (["drill", "--backup", "x.sql", "--record-dir", "x.sql"], "--record-dir"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, args, names):
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "x.sql").write_text("CREATE TABLE t (id int);\n")
    before = sorted(p.name for p in tmp_path.iterdir())

    result = prism_dr(*args, cwd=tmp_path)

    assert names in _one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_passing_drill_exits_0_and_prints_its_record_as_json(sample_dump, tmp_path):
    result = prism_dr(
        "drill", "--backup", str(sample_dump), "--record-dir", str(tmp_path), "--json",
        "--tier", "quick",
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["result"] == "passed"
    assert Path(record["record_files"][0]).exists()
    assert "restore done" in result.stderr  # progress goes to stderr, never into the JSON


def test_failed_drill_exits_1(sample_dump, tmp_path):
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(sample_dump.read_bytes()[:4096])
    result = prism_dr(
        "drill", "--backup", str(truncated), "--record-dir", str(tmp_path / "r"), "--tier", "quick"
    )
    assert result.returncode == 1, result.stderr
    assert "FAILED" in result.stdout
    assert list((tmp_path / "r").glob("*-local.json"))


def test_drill_log_rebuilds_the_log_from_records(sample_dump, tmp_path):
    prism_dr(
        "drill", "--backup", str(sample_dump), "--record-dir", str(tmp_path), "--tier", "quick"
    )
    (tmp_path / "README.md").unlink()

    result = prism_dr("drill", "log", "--record-dir", str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "| Date |" in (tmp_path / "README.md").read_text().replace("Date  |", "Date |")


def test_help_lists_the_drill_options():
    result = prism_dr("drill", "--help")
    assert result.returncode == 0
    for option in ("--demo", "--backup", "--source-dsn", "--tier", "--record-dir", "--keep"):
        assert option in result.stdout


def _running_clusters() -> str:
    found = subprocess.run(["pgrep", "-af", "prism-drill-pg-"], capture_output=True, text=True)
    return found.stdout


def test_demo_is_the_main_job_and_leaves_only_its_record(pg_cluster, tmp_path):
    clusters_before = _running_clusters()
    result = prism_dr("drill", "--demo", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "PASSED" in result.stdout
    records = sorted(p.name for p in (tmp_path / "demo-records").iterdir())
    assert [n for n in records if n.endswith(".json")] == [records[0]]
    assert records[0].endswith("-demo.json")
    assert {"README.md", "rto-rpo.svg"} <= set(records)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-records"]
    assert _running_clusters() == clusters_before  # the source and the restored cluster


def test_exported_source_dsn_does_not_clash_with_demo(tmp_path):
    env = {**os.environ, "PRISM_DR_SOURCE_DSN": "postgresql://ro@127.0.0.1:1/prism"}
    result = subprocess.run(
        [sys.executable, "-m", "prism_dr", "drill", "--demo", "--tier", "quick", "--json"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "ro@127.0.0.1:1" not in json.loads(result.stdout)["backup_source"]


def test_keep_with_json_says_how_to_reach_and_remove_the_database(sample_dump, tmp_path):
    result = prism_dr(
        "drill", "--backup", str(sample_dump), "--record-dir", str(tmp_path), "--tier", "quick",
        "--keep", "--json",
    )
    assert result.returncode == 0, result.stderr
    kept = json.loads(result.stdout)["kept"]
    try:
        password = Path(kept["password_file"]).read_text().strip()
        assert password not in result.stdout
        # the drill connects as a role of its own (prism_drill_…), not postgres
        with psycopg.connect(kept["dsn"], password=password) as conn:
            assert conn.execute("SELECT count(*) FROM buildings").fetchone()[0] > 0
    finally:
        subprocess.run(kept["stop_command"], shell=True, check=True, capture_output=True)
    assert not Path(kept["password_file"]).exists()
