"""A record as Markdown: tables that cannot break, values named for what they measure."""

from __future__ import annotations

from pathlib import Path

from drills.record import (
    SEED_COLUMNS,
    RtoKind,
    record_markdown,
    write_record,
)
from tests.drills.record.test_model import make_record, table_rows


def test_markdown_cells_cannot_break_the_table(tmp_path: Path) -> None:
    record = make_record(notes="first | second\nnext line *starred*")
    md_path, _ = write_record(record, tmp_path)
    row = table_rows(md_path.read_text(), "| Date |")[0]
    assert len(row) == len(SEED_COLUMNS)
    assert row[4] == r"first \| second<br>next line \*starred\*"

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

def test_rto_is_labelled_by_what_it_spans() -> None:
    local = record_markdown(make_record())
    aws = record_markdown(make_record(rto_kind=RtoKind.AWS))
    assert table_rows(local, "| Objective |")[0][0] == "RTO (restore → verified on this machine)"
    assert table_rows(aws, "| Objective |")[0][0] == (
        "RTO (drill start → /ready 200 through the tunnel)"
    )
