"""`prism-dr drill` as a user runs it: a real process, its exit code, its stdout and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
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


def _running_clusters(tmpdir: Path) -> str:
    found = subprocess.run(["pgrep", "-af", str(tmpdir)], capture_output=True, text=True)
    return "\n".join(line for line in found.stdout.splitlines() if "pgrep" not in line)


def test_demo_is_the_main_job_and_leaves_only_its_record(pg_cluster, tmp_path):
    # A TMPDIR of its own, traversable by the postgres OS user: other runs make clusters too.
    tmpdir = Path(tempfile.mkdtemp(prefix="prism-demo-test-"))
    tmpdir.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "prism_dr", "drill", "--demo"],
        capture_output=True, text=True, cwd=work, timeout=300,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )

    assert result.returncode == 0, result.stderr
    assert "PASSED" in result.stdout
    records = sorted(p.name for p in (work / "demo-records").iterdir())
    assert [n for n in records if n.endswith(".json")] == [records[0]]
    assert records[0].endswith("-demo.json")
    assert {"README.md", "rto-rpo.svg"} <= set(records)
    assert sorted(p.name for p in work.iterdir()) == ["demo-records"]
    assert _running_clusters(tmpdir) == ""  # the source and the restored cluster
    assert list(tmpdir.iterdir()) == []
    tmpdir.rmdir()


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


def test_no_token_or_key_reaches_any_output(sample_dump, tmp_path, capsys, monkeypatch):
    """Secrets in the API command's output, in its arguments and in --notes: masked on
    stdout, stderr, the .md, the .json and the log (run in-process, as the console script)."""
    from prism_dr.app import main
    from tests.recovery.test_redact import AWS_ACCESS_KEY, CLERK_KEY, TUNNEL_TOKEN

    api_token = "t0k3n-Of-The-Api"
    api_cmd = (  # the drill records the last line the API printed before it exited
        f"echo TUNNEL_TOKEN={TUNNEL_TOKEN}; echo starting --api-token {api_token}; "
        f"echo CLERK_SECRET_KEY={CLERK_KEY} {TUNNEL_TOKEN}; exit 3"
    )
    notes = f"rotated {AWS_ACCESS_KEY}; Authorization: Bearer {api_token}"
    records = tmp_path / "records"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as caught:
        main([
            "drill", "--backup", str(sample_dump), "--record-dir", str(records),
            "--tier", "quick", "--api-cmd", api_cmd, "--notes", notes,
        ])
    out, err = capsys.readouterr()
    assert caught.value.code == 1  # the API never answered: a failed drill
    with pytest.raises(SystemExit):
        main(["drill", "--backup", str(sample_dump), "--record-dir", str(records),
              "--tier", "quick", "--api-cmd", api_cmd, "--notes", notes, "--json"])
    json_out, json_err = capsys.readouterr()

    written = "".join(p.read_text() for p in records.iterdir() if p.suffix in (".md", ".json"))
    assert "CLERK_SECRET_KEY=***" in written  # the output is there, its secrets are not
    for secret in (CLERK_KEY, TUNNEL_TOKEN, api_token, AWS_ACCESS_KEY):
        for where, text in (("stdout", out + json_out), ("stderr", err + json_err),
                            ("records", written)):
            assert secret not in text, (secret, where)


def test_a_backup_whose_name_is_not_utf8_is_drilled_and_recorded(
    sample_dump, tmp_path, capsys, monkeypatch
):
    from prism_dr.app import main

    backup = tmp_path / os.fsdecode(b"caf\xe9.dump")  # Latin-1, as an old system names it
    backup.write_bytes(sample_dump.read_bytes())
    records = tmp_path / "records"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as caught:
        main(["drill", "--backup", str(backup), "--record-dir", str(records), "--tier", "quick"])
    _, err = capsys.readouterr()
    assert caught.value.code == 0, err
    (record,) = records.glob("*-local.json")
    assert json.loads(record.read_text())["backup_source"].startswith("caf\\xe9.dump")


def test_progress_lines_wait_for_the_outcome():
    """Phase and check lines are printed once the drill has an outcome, so an exit-2 error
    after them stays the only line; closed without flushing, nothing is printed."""
    import io

    from rich.console import Console

    from drills.verify.model import CheckResult, Status
    from prism_dr.drill_cmd import ConsoleObserver

    buffer = io.StringIO()
    observer = ConsoleObserver(Console(file=buffer, width=100))
    observer.phase_started("restore")
    observer.phase_finished("restore", 1.25)
    observer.check_finished(
        CheckResult(name="freshness", status=Status.WARN,
                    detail="see postgresql://u:pw@h/db", seconds=0.5)
    )
    assert buffer.getvalue() == ""
    observer.close()
    assert buffer.getvalue() == ""  # an error now would be the only line

    observer.flush()
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "restore done in 1.2 s"
    assert "warn freshness" in lines[1] and "u:***@h" in lines[1]
