"""The drill log rebuilt from the records: table, due date, chart points."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from drills.record import (
    CHART_NAME,
    LOG_NAME,
    SEED_COLUMNS,
    Result,
    RtoKind,
    chart_points,
    rebuild_log,
    write_record,
)
from drills.verify.model import CheckResult, Status
from tests.drills.record.test_model import STARTED, header_cells, make_record, table_rows


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
