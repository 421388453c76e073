from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from drills.errors import BadInput
from drills.record import (
    CHART_NAME,
    LOG_NAME,
    SEED_COLUMNS,
    CorruptRecord,
    DrillRecord,
    HostInfo,
    Phase,
    RecordNotWritten,
    Result,
    RtoKind,
    chart_points,
    default_completed_by,
    load_records,
    rebuild_log,
    record_markdown,
    tool_versions,
    write_record,
)
from drills.verify.model import CheckResult, Status, Tier

SECRET = "Sup3r-S3cret-pw"
STARTED = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)


def make_record(**overrides) -> DrillRecord:
    fields = {
        "started_at": STARTED,
        "environment": "local",
        "backup_source": "prism-2026-04-01.dump",
        "backup_point": STARTED - timedelta(hours=6),
        "result": Result.PASSED,
        "notes": "clean restore",
        "completed_by": "Dana Ops",
        "tier": Tier.STANDARD,
        "rto_seconds": 754.2,
        "phases": [Phase(name="restore", seconds=600.0), Phase(name="verify", seconds=154.2)],
        "checks": [
            CheckResult(name="restore-clean", status=Status.PASS, detail="no errors", seconds=0.01),
            CheckResult(name="tables-present", status=Status.PASS, detail="8 of 8", seconds=0.02),
            CheckResult(
                name="freshness", status=Status.WARN, detail="audit_logs 6 h old", seconds=0.3
            ),
            CheckResult(name="api", status=Status.SKIP, detail="no --api-url", seconds=0.0),
        ],
        "tool_versions": {"pg_restore": "pg_restore (PostgreSQL) 17.4", "python": "3.11.7"},
        "host": HostInfo(hostname="ci-runner", os="Linux 6.8", machine="x86_64", cpus=4),
    }
    fields.update(overrides)
    return DrillRecord(**fields)


def table_rows(markdown: str, header_starts: str) -> list[list[str]]:
    """The body rows of the first table whose header starts with `header_starts`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_starts))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def header_cells(markdown: str, header_starts: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(header_starts))
    return [cell.strip() for cell in line.split("|")[1:-1]]


# --- the record itself ---------------------------------------------------------------------


def test_record_derives_the_seed_columns_and_rpo() -> None:
    record = make_record()
    assert record.date.isoformat() == "2026-04-01"
    assert record.backup_point_used == "2026-04-01 03:30:00 UTC (prism-2026-04-01.dump)"
    assert record.rpo_seconds == 6 * 3600
    assert (record.rto_met, record.rpo_met) == (True, True)
    assert record.schema_version == 2


def test_record_normalises_times_to_utc_and_refuses_naive_ones() -> None:
    paris = timezone(timedelta(hours=2))
    record = make_record(started_at=datetime(2026, 4, 2, 1, 0, tzinfo=paris), backup_point=None)
    assert record.started_at == datetime(2026, 4, 1, 23, 0, tzinfo=UTC)
    assert record.date.isoformat() == "2026-04-01"  # the UTC day, not the local one
    assert record.rpo_seconds is None
    assert record.backup_point_used == "prism-2026-04-01.dump (backup time unknown)"
    with pytest.raises(ValidationError, match="timezone"):
        make_record(started_at=datetime(2026, 4, 1, 9, 30))


def test_targets_decide_whether_objectives_were_met() -> None:
    record = make_record(rto_seconds=5 * 3600, backup_point=STARTED - timedelta(hours=30))
    assert (record.rto_met, record.rpo_met) == (False, False)
    assert make_record(rto_seconds=None).rto_met is None


@pytest.mark.parametrize("environment", ["../etc", "a/b", "", ".hidden", "two words"])
def test_environment_must_be_safe_as_a_file_name(environment: str) -> None:
    with pytest.raises(ValidationError):
        make_record(environment=environment)


def test_a_passed_record_cannot_hold_a_failed_check() -> None:
    failing = CheckResult(name="tables-present", status=Status.FAIL, detail="no", seconds=0.1)
    with pytest.raises(ValidationError, match="tables-present"):
        make_record(checks=[failing])
    assert make_record(result=Result.FAILED, checks=[failing]).result == Result.FAILED


# --- writing -------------------------------------------------------------------------------


def test_write_record_writes_markdown_and_json_with_the_seed_columns(tmp_path: Path) -> None:
    md_path, json_path = write_record(make_record(), tmp_path)
    assert (md_path.name, json_path.name) == ("2026-04-01-local.md", "2026-04-01-local.json")

    markdown = md_path.read_text()
    assert header_cells(markdown, "| Date |") == list(SEED_COLUMNS)
    assert table_rows(markdown, "| Date |") == [
        [
            "2026-04-01",
            "2026-04-01 03:30:00 UTC (prism-2026-04-01.dump)",
            "local",
            "passed",
            "clean restore",
            "Dana Ops",
        ]
    ]
    objectives = table_rows(markdown, "| Objective |")
    assert objectives[0][1:] == ["12 min 34 s", "4 h", "yes"]
    assert objectives[1][1:] == ["6 h 00 min", "24 h", "yes"]
    checks = table_rows(markdown, "| Status | Check |")
    assert [row[1] for row in checks] == [
        "restore-clean",
        "tables-present",
        "freshness",
        "api",
    ]
    assert checks[2] == ["warn", "freshness", "0.30", "audit_logs 6 h old"]
    assert ["restore", "10 min 00 s"] in table_rows(markdown, "| Phase |")
    assert ["pg_restore", "pg_restore (PostgreSQL) 17.4"] in table_rows(markdown, "| Tool |")

    data = json.loads(json_path.read_text())
    assert data["schema_version"] == 2
    assert data["started_at"] == "2026-04-01T09:30:00Z"
    assert data["backup_point"] == "2026-04-01T03:30:00Z"
    assert data["environment"] == "local"
    assert data["result"] == "passed"
    assert data["notes"] == "clean restore"
    assert data["completed_by"] == "Dana Ops"
    assert (data["rto_seconds"], data["rpo_seconds"]) == (754.2, 21600.0)
    assert data["targets"] == {"rpo_hours": 24.0, "rto_hours": 4.0}
    assert data["checks"][2] == {
        "name": "freshness",
        "status": "warn",
        "detail": "audit_logs 6 h old",
        "seconds": 0.3,
    }
    assert DrillRecord.model_validate(data) == make_record()


def test_markdown_cells_cannot_break_the_table(tmp_path: Path) -> None:
    record = make_record(notes="first | second\nnext line *starred*")
    md_path, _ = write_record(record, tmp_path)
    row = table_rows(md_path.read_text(), "| Date |")[0]
    assert len(row) == len(SEED_COLUMNS)
    assert row[4] == r"first \| second<br>next line \*starred\*"


def test_write_record_numbers_instead_of_overwriting(tmp_path: Path) -> None:
    first = write_record(make_record(notes="one"), tmp_path)
    second = write_record(make_record(notes="two"), tmp_path)
    # A stray .json without its .md still takes the name.
    (tmp_path / "2026-04-01-local-3.json").write_text("{}")
    third = write_record(make_record(notes="three"), tmp_path)
    assert [p.name for p in (*first, *second, *third)] == [
        "2026-04-01-local.md",
        "2026-04-01-local.json",
        "2026-04-01-local-2.md",
        "2026-04-01-local-2.json",
        "2026-04-01-local-4.md",
        "2026-04-01-local-4.json",
    ]
    assert json.loads(first[1].read_text())["notes"] == "one"
    assert json.loads(second[1].read_text())["notes"] == "two"
    assert (tmp_path / "2026-04-01-local-3.json").read_text() == "{}"
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_concurrent_writers_never_share_a_name(tmp_path: Path) -> None:
    records = [make_record(notes=f"drill {i}") for i in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        written = list(pool.map(lambda r: write_record(r, tmp_path), records))
    md_names = {md.name for md, _ in written}
    assert len(md_names) == len(records)
    notes = {json.loads(js.read_text())["notes"] for _, js in written}
    assert notes == {r.notes for r in records}
    assert len(list(tmp_path.glob("*.md"))) == len(records)
    assert len(list(tmp_path.glob("*.json"))) == len(records)


def test_written_records_are_readable_by_others(tmp_path: Path) -> None:
    md_path, json_path = write_record(make_record(), tmp_path)
    assert md_path.stat().st_mode & 0o777 == 0o644
    assert json_path.stat().st_mode & 0o777 == 0o644


def test_no_password_reaches_a_record(tmp_path: Path) -> None:
    dsn = f"postgresql://prism:{SECRET}@db.internal:5432/prism"
    record = make_record(
        result=Result.FAILED,
        backup_source=f"postgres://replica:{SECRET}@replica.internal/prism",
        notes=f"source {dsn}; fallback host=db password={SECRET} dbname=prism",
        completed_by=f"PGPASSWORD={SECRET}",
        phases=[Phase(name=f"dump {dsn}", seconds=1.0)],
        checks=[
            CheckResult(
                name="restore-clean",
                status=Status.FAIL,
                detail=f"pg_restore: error: connection to {dsn}?password={SECRET} failed",
                seconds=0.1,
            )
        ],
        tool_versions={"source": dsn, "password": SECRET},
        cost_estimate=f"see https://ops:{SECRET}@billing.internal/",
    )
    md_path, json_path = write_record(record, tmp_path)
    for path in (md_path, json_path):
        text = path.read_text()
        assert SECRET not in text, path.name
        assert "db.internal:5432/prism" in text  # host, port and database stay visible
        assert "replica.internal" in text
    assert SECRET not in record_markdown(record)

    readme = rebuild_log(tmp_path)
    assert SECRET not in readme.read_text()
    assert SECRET not in (tmp_path / CHART_NAME).read_text()


def test_record_markdown_reports_unmeasured_values_plainly() -> None:
    markdown = record_markdown(
        make_record(
            backup_point=None, rto_seconds=None, phases=[], checks=[], tool_versions={}, host=None
        )
    )
    objectives = table_rows(markdown, "| Objective |")
    assert objectives[0][1:] == ["—", "4 h", "not measured"]
    assert objectives[1][1:] == ["—", "24 h", "not measured"]
    assert "No checks ran." in markdown
    assert "No phases were timed." in markdown


# --- loading -------------------------------------------------------------------------------


def test_load_records_reads_records_oldest_first_and_ignores_other_files(
    tmp_path: Path,
) -> None:
    later = make_record(started_at=STARTED + timedelta(days=90), notes="later")
    earlier = make_record(notes="earlier")
    write_record(later, tmp_path)
    write_record(earlier, tmp_path)
    (tmp_path / LOG_NAME).write_text("# log\n")
    (tmp_path / "chart-data.json").write_text("[1, 2, 3]")
    (tmp_path / "notes.json").write_text("not json at all")
    assert [r.notes for r in load_records(tmp_path)] == ["earlier", "later"]
    assert load_records(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"schema_version": 1, "started_at": ', "invalid JSON at line 1"),
        ("[]", "expected a JSON object"),
        ('{"schema_version": 1, "environment": "local"}', "started_at: Field required"),
        ('{"schema_version": 7}', "schema version 7 is newer"),
    ],
)
def test_a_corrupt_record_is_an_error_naming_the_file(
    tmp_path: Path, content: str, problem: str
) -> None:
    write_record(make_record(), tmp_path)
    broken = tmp_path / "2026-01-02-staging.json"
    broken.write_text(content)
    with pytest.raises(CorruptRecord) as caught:
        load_records(tmp_path)
    message = str(caught.value)
    assert str(broken) in message
    assert problem in message
    assert "\n" not in message
    assert isinstance(caught.value, BadInput)  # the command line exits 2 on it
    with pytest.raises(CorruptRecord, match=re.escape(str(broken))):
        rebuild_log(tmp_path)


# --- the log -------------------------------------------------------------------------------


def test_rebuild_log_lists_drills_newest_first_with_valid_links(tmp_path: Path) -> None:
    failing = CheckResult(name="org-scoping", status=Status.FAIL, detail="3 orphans", seconds=1)
    drills = [
        make_record(started_at=STARTED - timedelta(days=180), notes="first"),
        make_record(
            started_at=STARTED - timedelta(days=90),
            environment="staging",
            result=Result.FAILED,
            checks=[failing],
            notes="orphans",
        ),
        make_record(started_at=STARTED, notes="latest morning"),
        make_record(started_at=STARTED + timedelta(hours=3), notes="latest afternoon"),
    ]
    for drill in drills:
        write_record(drill, tmp_path)

    readme = rebuild_log(tmp_path)
    assert readme == tmp_path / LOG_NAME
    text = readme.read_text()

    assert header_cells(text, "| Date |") == [*SEED_COLUMNS, "RTO", "RPO", "Record"]
    rows = table_rows(text, "| Date |")
    assert [row[4] for row in rows] == ["latest afternoon", "latest morning", "orphans", "first"]
    assert [row[3] for row in rows] == ["passed", "passed", "failed", "passed"]
    assert rows[2][2] == "staging"
    assert rows[0][6:8] == ["12 min 34 s", "9 h 00 min"]

    links = re.findall(r"\[([^\]]+)\]\(([^)]+)\)", text)
    record_links = [target for _, target in links if target.endswith(".md")]
    assert len(record_links) == len(drills)
    for target in record_links:
        assert (tmp_path / target).is_file(), target
    assert record_links[0] == "2026-04-01-local-2.md"  # the afternoon drill, same day

    assert f"]({CHART_NAME})" in text
    assert (tmp_path / CHART_NAME).read_text().lstrip().startswith("<?xml")
    assert "Last passing drill: 2026-04-01; the next is due by 2026-07-01." in text


def test_rebuild_log_without_records(tmp_path: Path) -> None:
    text = rebuild_log(tmp_path / "restore-drills").read_text()
    assert "No drills have been recorded yet." in text
    assert not (tmp_path / "restore-drills" / CHART_NAME).exists()


def test_rebuild_log_is_stable(tmp_path: Path) -> None:
    write_record(make_record(), tmp_path)
    first = rebuild_log(tmp_path).read_bytes(), (tmp_path / CHART_NAME).read_bytes()
    second = rebuild_log(tmp_path).read_bytes(), (tmp_path / CHART_NAME).read_bytes()
    assert first == second
    assert not list(tmp_path.glob(".*"))


def test_a_record_without_its_markdown_is_listed_without_a_link(tmp_path: Path) -> None:
    md_path, _ = write_record(make_record(), tmp_path)
    md_path.unlink()
    rows = table_rows(rebuild_log(tmp_path).read_text(), "| Date |")
    assert rows[0][-1] == "(no .md)"


# --- who and with what ---------------------------------------------------------------------


def test_default_completed_by_prefers_the_operator_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRISM_DR_OPERATOR", "  Quarterly Drill Bot ")
    assert default_completed_by() == "Quarterly Drill Bot"


def test_default_completed_by_falls_back_to_git_then_the_os_user(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PRISM_DR_OPERATOR", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Git Person\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.chdir(tmp_path)  # outside any repository's own config
    monkeypatch.setenv("USER", "os-person")
    monkeypatch.setenv("LOGNAME", "os-person")
    assert default_completed_by() == "Git Person"

    (home / ".gitconfig").write_text("")
    assert default_completed_by() == "os-person"

    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert default_completed_by() == "os-person"


def test_tool_versions_names_every_tool(tmp_path: Path) -> None:
    versions = tool_versions()
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert versions["prism-infra"]
    assert versions["psycopg"]
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", versions["libpq"])

    # A bindir holding a fake pg_restore proves the bindir is where tools are looked up.
    fake = tmp_path / "pg_restore"
    fake.write_text("#!/bin/sh\necho 'pg_restore (PostgreSQL) 99.1'\n")
    fake.chmod(0o755)
    versions = tool_versions(bindir=tmp_path)
    assert versions["pg_restore"] == "pg_restore (PostgreSQL) 99.1"
    assert "postgres" not in versions  # missing tools are left out, not guessed


def test_tool_versions_finds_the_installed_postgresql() -> None:
    from drills.cluster import find_bindir

    bindir = find_bindir()
    versions = tool_versions(bindir=bindir)
    for tool in ("pg_restore", "pg_dump", "postgres"):
        assert "(PostgreSQL)" in versions[tool]


def test_importing_records_does_not_import_matplotlib() -> None:
    code = "import sys, drills.record; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- schema 2 ------------------------------------------------------------------------------


def test_a_schema_1_record_still_loads_with_the_new_fields_defaulted(tmp_path: Path) -> None:
    # A record as schema version 1 wrote it: no rto_kind, data lag or error.
    old = json.loads(make_record().model_dump_json())
    for key in ("rto_kind", "data_lag_seconds", "error"):
        del old[key]
    old["schema_version"] = 1
    (tmp_path / "2026-04-01-local.json").write_text(json.dumps(old))
    (record,) = load_records(tmp_path)
    assert record.schema_version == 1  # the evidence keeps the version it was written with
    assert record.rto_kind == RtoKind.LOCAL
    assert record.data_lag_seconds is None
    assert "restore → verified on this machine" in rebuild_log(tmp_path).read_text()


def test_an_environment_error_is_a_result_of_its_own(tmp_path: Path) -> None:
    record = make_record(
        result=Result.ERROR,
        error="restore: No space left on device under /tmp",
        rto_seconds=None,
        checks=[],
    )
    md_path, json_path = write_record(record, tmp_path)
    assert json.loads(json_path.read_text())["result"] == "error"
    markdown = md_path.read_text()
    assert table_rows(markdown, "| Date |")[0][3] == "error"
    assert "the backup was not judged" in markdown
    assert "No space left on device" in markdown
    text = rebuild_log(tmp_path).read_text()
    assert "No drill has passed yet" in text  # an error is not a passing drill
    assert not (tmp_path / CHART_NAME).exists()  # nothing was measured: nothing to plot


def test_rto_is_labelled_by_what_it_spans() -> None:
    local = record_markdown(make_record())
    aws = record_markdown(make_record(rto_kind=RtoKind.AWS))
    assert table_rows(local, "| Objective |")[0][0] == "RTO (restore → verified on this machine)"
    assert table_rows(aws, "| Objective |")[0][0] == (
        "RTO (drill start → /ready 200 through the tunnel)"
    )


def test_a_failing_file_system_leaves_neither_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    real_link = os.link
    calls = []

    def link_then_full(src, dst, *args, **kwargs):
        calls.append(dst)
        if str(dst).endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", link_then_full)
    with pytest.raises(RecordNotWritten) as caught:
        write_record(make_record(), tmp_path)
    assert "No space left on device" in str(caught.value)
    assert str(tmp_path) in str(caught.value)
    assert isinstance(caught.value, BadInput)  # exit 2
    assert [Path(c).suffix for c in calls] == [".md", ".json"]
    assert list(tmp_path.iterdir()) == []  # neither file, no temp file


def test_a_full_disk_while_writing_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RecordNotWritten, match="No space left on device"):
        write_record(make_record(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_record_holding_undecodable_path_bytes_is_written(tmp_path: Path) -> None:
    # A backup path with a Latin-1 byte comes into Python as a surrogate escape.
    name = os.fsdecode(b"prism-\xe9t\xe9.dump")
    md_path, json_path = write_record(make_record(backup_source=name), tmp_path)
    assert "prism-\\xe9t\\xe9.dump" in json.loads(json_path.read_text())["backup_source"]
    assert "prism-" in md_path.read_text()


def test_chart_points_are_hours_with_the_rto_kind_and_skip_errors() -> None:
    points = chart_points(
        [
            make_record(started_at=STARTED + timedelta(days=1), rto_kind=RtoKind.AWS),
            make_record(),
            make_record(started_at=STARTED + timedelta(days=2), result=Result.ERROR, checks=[]),
        ]
    )
    assert [p.started_at for p in points] == [STARTED, STARTED + timedelta(days=1)]
    assert [p.rto_kind for p in points] == ["local", "aws"]
    assert points[0].rto_hours == pytest.approx(754.2 / 3600)
    assert points[0].rpo_hours == 6
