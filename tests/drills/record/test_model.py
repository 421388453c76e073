"""The drill record model: derived columns, times, objectives, consistency."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from drills.record import (
    DrillRecord,
    HostInfo,
    Phase,
    Result,
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

def test_importing_records_does_not_import_matplotlib() -> None:
    code = "import sys, drills.record; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
