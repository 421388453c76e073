"""Writing and reading records: both files or neither, never overwritten, secrets masked."""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from drills.record import (
    CHART_NAME,
    LOG_NAME,
    SEED_COLUMNS,
    CorruptRecord,
    DrillRecord,
    Phase,
    RecordNotWritten,
    Result,
    RtoKind,
    load_records,
    rebuild_log,
    record_markdown,
    write_record,
)
from drills.verify.model import CheckResult, Status
from infra.errors import BadInput
from tests.drills.record.test_model import SECRET, STARTED, header_cells, make_record, table_rows


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
