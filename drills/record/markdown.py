"""Records and the drill log as Markdown: the half of the evidence people read."""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime
from pathlib import Path

from drills.record.model import SEED_COLUMNS, DrillRecord, Result, RtoKind, redacted
from drills.verify.manifest import Targets
from drills.verify.model import Status


def _restore_sections(record: DrillRecord) -> list[str]:
    """What the restore used and what it could not restore: errors, warnings, skipped data."""
    lines = ["", "## Restore", ""]
    if record.point_source:
        lines.append(f"- Backup point from: {_md(record.point_source)}")
    if record.backup_versions is not None:
        made = record.backup_versions
        lines.append(f"- Backup made from PostgreSQL {_md(made.server or 'unknown')} by pg_dump "
                     f"{_md(made.dumper or 'unknown')}")
    if record.restored_with is not None:
        used = record.restored_with
        lines.append(f"- Restored with PostgreSQL {_md(used.version)} ({_md(used.source)}: "
                     f"{_md(used.bindir)})")
    if record.database:
        lines.append(f"- Database checked: {_md(record.database)}")
    if record.missing_extensions:
        lines.append("- Extensions the backup creates that this PostgreSQL lacks: "
                     + _md(", ".join(record.missing_extensions)))
    sections = [
        (f"Blocking restore errors ({record.restore_errors_total})", record.restore_errors),
        ("Application objects not restored (warnings)", record.restore_warnings),
        ("Data not restored: tables of missing platform extensions",
         record.restore_ignored_copies),
        ("Restore errors ignored: traced to a missing platform extension",
         record.restore_ignored),
    ]
    for title, items in sections:
        if items:
            lines += ["", f"### {title}", ""]
            lines += [f"- {_md(item)}" for item in items]
    shown = len(record.restore_errors)
    if record.restore_errors_total > shown:
        lines.append(f"- … and {record.restore_errors_total - shown} more")
    return lines


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 0:
        return f"-{format_duration(-seconds)}"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def record_markdown(record: DrillRecord) -> str:
    """The human half of a record, scrubbed of secrets like everything written."""
    record = redacted(record)
    lines = [
        f"# Restore drill {record.date.isoformat()}: {record.environment}",
        "",
        _table_head(SEED_COLUMNS),
        _row(_seed_cells(record)),
        "",
    ]
    if record.result == Result.ERROR:
        lines += [
            "**The environment failed during the drill; the backup was not judged.**",
            f"Error: {_md(record.error or 'not recorded')}",
            "",
        ]
    lines += [
        "## Objectives",
        "",
        _table_head(("Objective", "Achieved", "Target", "Met")),
        _row(
            (
                f"RTO ({record.rto_kind.label})",
                format_duration(record.rto_seconds),
                _hours(record.targets.rto_hours),
                _met(record.rto_met),
            )
        ),
        _row(
            (
                "RPO (backup age at drill start)",
                format_duration(record.rpo_seconds),
                _hours(record.targets.rpo_hours),
                _met(record.rpo_met),
            )
        ),
        "",
    ]
    if record.data_lag_seconds is not None:
        lines += [
            "- Data lag (newest source row → newest restored row): "
            f"{format_duration(record.data_lag_seconds)}",
        ]
    lines += [
        f"- Tier: {record.tier.value}",
        f"- Started: {record.started_at:%Y-%m-%d %H:%M:%S} UTC",
        f"- Backup source: {_md(record.backup_source)}",
        f"- Backup point: {_point(record.backup_point)}",
        f"- Cost estimate: {_md(record.cost_estimate or 'none (local drill)')}",
    ]
    if record.host is not None:
        host = record.host
        cpus = f", {host.cpus} CPUs" if host.cpus else ""
        lines.append(f"- Host: {_md(host.hostname)} ({_md(host.os)}, {_md(host.machine)}{cpus})")
    lines += [
        f"- Record format: schema version {record.schema_version}; the .json beside this file "
        "holds the same record",
        "",
        "## Phases",
        "",
    ]
    if record.phases:
        lines.append(_table_head(("Phase", "Duration")))
        lines += [_row((phase.name, format_duration(phase.seconds))) for phase in record.phases]
        total = sum(phase.seconds for phase in record.phases)
        lines.append(_row(("total", format_duration(total))))
    else:
        lines.append("No phases were timed.")
    lines += ["", "## Checks", ""]
    if record.checks:
        counts = {status: 0 for status in Status}
        for check in record.checks:
            counts[check.status] += 1
        lines.append(", ".join(f"{counts[s]} {s.value}" for s in Status) + ".")
        lines.append("")
        lines.append(_table_head(("Status", "Check", "Seconds", "Detail")))
        lines += [
            _row(
                (_status(check.status), check.name, f"{check.seconds:.2f}", check.detail),
                raw_columns=(0,),
            )
            for check in record.checks
        ]
    else:
        lines.append("No checks ran.")
    lines += _restore_sections(record)
    lines += ["", "## Tool versions", ""]
    if record.tool_versions:
        lines.append(_table_head(("Tool", "Version")))
        lines += [_row(item) for item in sorted(record.tool_versions.items())]
    else:
        lines.append("Not recorded.")
    return "\n".join(lines) + "\n"


def log_markdown(entries: list[tuple[Path, DrillRecord]], chart_name: str | None) -> str:
    """The drill log page: one row per record (JSON path, record), newest first."""
    newest_first = sorted(
        entries, key=lambda entry: (entry[1].started_at, entry[0].name), reverse=True
    )
    targets = newest_first[0][1].targets if newest_first else Targets()
    kinds = sorted({record.rto_kind for _, record in entries} or {RtoKind.LOCAL})
    rto_meaning = "; ".join(f"{kind.value} drills: {kind.label}" for kind in kinds)
    lines = [
        "# Restore drill log",
        "",
        "A restore drill proves a backup can actually be restored and used; one is due at "
        "least quarterly (backup-restore-dr.txt §6). Each drill writes a record into this "
        "directory: `<date>-<environment>.md` to read and `.json` for tools. This page is "
        "rebuilt from the JSON records by `prism-dr drill log`; do not edit it by hand.",
        "",
        f"Targets: RPO {_hours(targets.rpo_hours)}, RTO {_hours(targets.rto_hours)}. "
        f"RTO is {rto_meaning}. RPO is the backup's age at drill start.",
        "",
    ]
    if not newest_first:
        lines += ["No drills have been recorded yet.", ""]
        return "\n".join(lines)
    lines += [_due_line([record for _, record in newest_first]), ""]
    if chart_name:
        lines += [f"![RTO and RPO per drill against the targets]({chart_name})", ""]
    lines.append(_table_head((*SEED_COLUMNS, "RTO", "RPO", "Record")))
    for path, record in newest_first:
        safe = redacted(record)  # records may have been edited by hand since they were written
        md_name = path.with_suffix(".md").name
        link = f"[{md_name}]({md_name})" if path.with_suffix(".md").is_file() else "(no .md)"
        lines.append(
            _row(
                (
                    *_seed_cells(safe),
                    _rto_cell(safe),
                    format_duration(safe.rpo_seconds),
                    link,
                ),
                raw_columns=(8,),
            )
        )
    return "\n".join(lines) + "\n"


def _rto_cell(record: DrillRecord) -> str:
    duration = format_duration(record.rto_seconds)
    if record.rto_seconds is None or record.rto_kind == RtoKind.LOCAL:
        return duration
    return f"{duration} ({record.rto_kind.value})"


def _due_line(newest_first: list[DrillRecord]) -> str:
    last_pass = next((r for r in newest_first if r.result == Result.PASSED), None)
    if last_pass is None:
        return "No drill has passed yet: one is due now."
    due = _add_months(last_pass.date, 3)
    return f"Last passing drill: {last_pass.date.isoformat()}; the next is due by {due}."


def _add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


def _seed_cells(record: DrillRecord) -> tuple[str, ...]:
    return (
        record.date.isoformat(),
        record.backup_point_used,
        record.environment,
        record.result.value,
        record.notes or "—",
        record.completed_by,
    )


def _table_head(columns: tuple[str, ...]) -> str:
    return "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)


def _row(cells: tuple[str, ...], raw_columns: tuple[int, ...] = ()) -> str:
    """A table row; cells are escaped except those this module formatted itself."""
    return (
        "| "
        + " | ".join(cell if i in raw_columns else _md(cell) for i, cell in enumerate(cells))
        + " |"
    )


_MD_SPECIAL = re.compile(r"([\\`*|<>\[\]])")


def _md(text: str) -> str:
    """`text` safe inside a Markdown table cell: literal, on one line."""
    escaped = _MD_SPECIAL.sub(r"\\\1", text.strip())
    return "<br>".join(escaped.splitlines())


def _status(status: Status) -> str:
    return f"**{status.value}**" if status == Status.FAIL else status.value


def _met(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not measured"}[met]


def _hours(hours: float) -> str:
    return f"{hours:g} h"


def _point(point: datetime | None) -> str:
    return f"{point:%Y-%m-%d %H:%M:%S} UTC" if point is not None else "unknown"
