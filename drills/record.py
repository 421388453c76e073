"""Drill records and the drill log in docs/audit/restore-drills/.

Every drill leaves two files: `<date>-<environment>[-n].md` for people and `.json` for tools.
They carry the seed's log columns (backup-restore-dr.txt §6: Date, Backup point used,
Environment, Result, Notes, Completed by) plus RTO, RPO, each check and the tool versions.
The log (README.md) is only ever rebuilt from the JSON records, so they are the source of truth.

Records are committed to the repository: everything is scrubbed of passwords before it is
written, whatever the caller put into it.
"""

from __future__ import annotations

import calendar
import contextlib
import getpass
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from drills.chart import render_rto_rpo_chart
from drills.errors import BadInput
from drills.redact import scrub
from drills.verify.manifest import Targets  # the same objectives the checks judge against
from drills.verify.model import CheckResult, Status, Tier

SCHEMA_VERSION = 1
DEFAULT_RECORD_DIR = Path("docs/audit/restore-drills")
LOG_NAME = "README.md"
CHART_NAME = "rto-rpo.svg"
OPERATOR_ENV = "PRISM_DR_OPERATOR"

SEED_COLUMNS = ("Date", "Backup point used", "Environment", "Result", "Notes", "Completed by")

# The environment becomes part of a file name: nothing that could leave the record directory.
ENVIRONMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_RECORD_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}-[A-Za-z0-9][A-Za-z0-9._-]*\.json$")


class Result(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


class Phase(BaseModel):
    name: str
    seconds: float = Field(ge=0)


class HostInfo(BaseModel):
    hostname: str
    os: str
    machine: str
    cpus: int | None = None


class CorruptRecord(BadInput):
    """A file named like a drill record that cannot be read as one."""


class DrillRecord(BaseModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    started_at: AwareDatetime
    environment: str = Field(pattern=ENVIRONMENT_PATTERN)
    backup_source: str
    backup_point: AwareDatetime | None = None
    result: Result
    notes: str = ""
    completed_by: str
    tier: Tier
    # Restore start (backup in hand, before the database is stood up) → restore verified:
    # the spec's "restore from backup to serving traffic".
    rto_seconds: float | None = Field(default=None, ge=0)
    # Backup point → drill start: the data a restore from this backup would lose. Filled in
    # from the two times when not given.
    rpo_seconds: float | None = None
    targets: Targets = Field(default_factory=Targets)
    phases: list[Phase] = Field(default_factory=list)
    checks: list[CheckResult] = Field(default_factory=list)
    tool_versions: dict[str, str] = Field(default_factory=dict)
    cost_estimate: str | None = None
    host: HostInfo | None = None
    # Restore errors tolerated by the Supabase allow-list, each with its reason: an auditor
    # must see what was ignored, not only how many.
    restore_ignored: list[str] = Field(default_factory=list)

    @field_validator("started_at", "backup_point")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> DrillRecord:
        if self.rpo_seconds is None and self.backup_point is not None:
            # A source dumped by the drill itself has its point just after the start.
            lost = (self.started_at - self.backup_point).total_seconds()
            self.rpo_seconds = round(max(0.0, lost), 3)
        failed = [c.name for c in self.checks if c.status == Status.FAIL]
        if self.result == Result.PASSED and failed:
            raise ValueError(f"result is 'passed' but these checks failed: {', '.join(failed)}")
        return self

    @property
    def date(self) -> date:
        """The log's Date: the UTC day the drill started."""
        return self.started_at.date()

    @property
    def backup_point_used(self) -> str:
        """The log's "Backup point used": when the backup was taken, and which backup."""
        if self.backup_point is None:
            return f"{self.backup_source} (backup time unknown)"
        return f"{self.backup_point:%Y-%m-%d %H:%M:%S} UTC ({self.backup_source})"

    @property
    def rto_met(self) -> bool | None:
        if self.rto_seconds is None:
            return None
        return self.rto_seconds <= self.targets.rto_hours * 3600

    @property
    def rpo_met(self) -> bool | None:
        if self.rpo_seconds is None:
            return None
        return self.rpo_seconds <= self.targets.rpo_hours * 3600


def redacted(record: DrillRecord) -> DrillRecord:
    """`record` with every string scrubbed of passwords."""
    return DrillRecord.model_validate(scrub(record.model_dump(mode="json")))


def write_record(record: DrillRecord, record_dir: Path) -> tuple[Path, Path]:
    """Write `<date>-<environment>[-n].md` and `.json` into `record_dir`; return both paths.

    Never overwrites: when either name is taken the next free number is used. Each file is
    published complete and exclusively (a hard link of a finished temp file), so concurrent
    drills cannot claim the same name and readers never see half a record.
    """
    safe = redacted(record)
    markdown = record_markdown(safe)
    payload = safe.model_dump_json(indent=2) + "\n"
    record_dir = Path(record_dir)
    record_dir.mkdir(parents=True, exist_ok=True)
    base = f"{safe.date.isoformat()}-{safe.environment}"
    for n in itertools.count(1):
        stem = base if n == 1 else f"{base}-{n}"
        md_path, json_path = record_dir / f"{stem}.md", record_dir / f"{stem}.json"
        if md_path.exists() or json_path.exists():
            continue
        # The .md is claimed first by every writer, so losing the race for it is the common
        # case; a stray .json without its .md only costs a number.
        if not _publish_exclusive(md_path, markdown):
            continue
        if _publish_exclusive(json_path, payload):
            return md_path, json_path
        md_path.unlink()
    raise AssertionError("unreachable")


def load_records(record_dir: Path) -> list[DrillRecord]:
    """Every drill record in `record_dir`, oldest first.

    Only JSON files named like records are read; a record file that cannot be parsed raises
    CorruptRecord naming the file rather than being skipped, since a silently missing drill
    would falsify the log.
    """
    return [record for _, record in _load_entries(Path(record_dir))]


def rebuild_log(record_dir: Path) -> Path:
    """Rewrite `<record_dir>/README.md` and its chart from the records; return the README path."""
    record_dir = Path(record_dir)
    record_dir.mkdir(parents=True, exist_ok=True)
    entries = _load_entries(record_dir)
    records = [record for _, record in entries]
    if records:
        _replace_atomically(record_dir / CHART_NAME, lambda tmp: render_rto_rpo_chart(records, tmp))
    text = _log_markdown(entries)
    readme = record_dir / LOG_NAME
    _replace_atomically(readme, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return readme


def default_completed_by() -> str:
    """Who ran the drill: $PRISM_DR_OPERATOR, else `git config user.name`, else the OS user."""
    operator = os.environ.get(OPERATOR_ENV, "").strip()
    if operator:
        return operator
    try:
        git = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=5
        )
        name = git.stdout.strip() if git.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        name = ""
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry, as in some containers
        return "unknown"


def tool_versions(bindir: Path | None = None) -> dict[str, str]:
    """Versions of everything that took part in the drill.

    PostgreSQL tools are looked up in `bindir` when given (the server's bin directory, as
    Debian keeps it off PATH), else on PATH; tools that cannot be found are left out.
    """
    import psycopg

    versions = {
        "prism-infra": _package_version("prism-infra"),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "libpq": _libpq_version(psycopg.pq.version()),
    }
    for tool in ("pg_restore", "pg_dump", "postgres"):
        version = _tool_version(tool, bindir)
        if version:
            versions[tool] = version
    return versions


def host_info() -> HostInfo:
    return HostInfo(
        hostname=platform.node(),
        os=f"{platform.system()} {platform.release()}",
        machine=platform.machine(),
        cpus=os.cpu_count(),
    )


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
    """The human half of a record, scrubbed of passwords like everything written."""
    record = redacted(record)
    lines = [
        f"# Restore drill {record.date.isoformat()}: {record.environment}",
        "",
        _table_head(SEED_COLUMNS),
        _row(_seed_cells(record)),
        "",
        "## Objectives",
        "",
        _table_head(("Objective", "Achieved", "Target", "Met")),
        _row(
            (
                "RTO (restore start → verified)",
                format_duration(record.rto_seconds),
                _hours(record.targets.rto_hours),
                _met(record.rto_met),
            )
        ),
        _row(
            (
                "RPO (backup point → drill start)",
                format_duration(record.rpo_seconds),
                _hours(record.targets.rpo_hours),
                _met(record.rpo_met),
            )
        ),
        "",
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
    if record.restore_ignored:
        lines += ["", "## Restore errors ignored (known-harmless allow-list)", ""]
        lines += [f"- {_md(message)}" for message in record.restore_ignored]
    lines += ["", "## Tool versions", ""]
    if record.tool_versions:
        lines.append(_table_head(("Tool", "Version")))
        lines += [_row(item) for item in sorted(record.tool_versions.items())]
    else:
        lines.append("Not recorded.")
    return "\n".join(lines) + "\n"


def _load_entries(record_dir: Path) -> list[tuple[Path, DrillRecord]]:
    if not record_dir.is_dir():
        return []
    entries = [
        (path, _read_record(path))
        for path in sorted(record_dir.iterdir())
        if _RECORD_FILE.match(path.name) and path.is_file()
    ]
    return sorted(entries, key=lambda entry: (entry[1].started_at, entry[0].name))


def _read_record(path: Path) -> DrillRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise CorruptRecord(f"{path}: corrupt drill record, not UTF-8 text ({e.reason})") from e
    except json.JSONDecodeError as e:
        raise CorruptRecord(
            f"{path}: corrupt drill record, invalid JSON at line {e.lineno} column {e.colno}: "
            f"{e.msg}"
        ) from e
    if not isinstance(data, dict):
        raise CorruptRecord(f"{path}: corrupt drill record, expected a JSON object")
    version = data.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise CorruptRecord(
            f"{path}: drill record schema version {version} is newer than this prism-infra "
            f"reads ({SCHEMA_VERSION}); upgrade prism-infra"
        )
    try:
        return DrillRecord.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise CorruptRecord(f"{path}: corrupt drill record, {where}: {first['msg']}{more}") from e


def _log_markdown(entries: list[tuple[Path, DrillRecord]]) -> str:
    newest_first = sorted(
        entries, key=lambda entry: (entry[1].started_at, entry[0].name), reverse=True
    )
    targets = newest_first[0][1].targets if newest_first else Targets()
    lines = [
        "# Restore drill log",
        "",
        "A restore drill proves a backup can actually be restored and used; one is due at "
        "least quarterly (backup-restore-dr.txt §6). Each drill writes a record into this "
        "directory: `<date>-<environment>.md` to read and `.json` for tools. This page is "
        "rebuilt from the JSON records by `prism-dr drill log`; do not edit it by hand.",
        "",
        f"Targets: RPO {_hours(targets.rpo_hours)}, RTO {_hours(targets.rto_hours)}. "
        "RTO is restore start → restored database verified; RPO is backup point → drill start.",
        "",
    ]
    if not newest_first:
        lines += ["No drills have been recorded yet.", ""]
        return "\n".join(lines)
    lines += [_due_line([record for _, record in newest_first]), ""]
    lines += [f"![RTO and RPO per drill against the targets]({CHART_NAME})", ""]
    lines.append(_table_head((*SEED_COLUMNS, "RTO", "RPO", "Record")))
    for path, record in newest_first:
        safe = redacted(record)  # records may have been edited by hand since they were written
        md_name = path.with_suffix(".md").name
        link = f"[{md_name}]({md_name})" if path.with_suffix(".md").is_file() else "(no .md)"
        lines.append(
            _row(
                (
                    *_seed_cells(safe),
                    format_duration(safe.rto_seconds),
                    format_duration(safe.rpo_seconds),
                    link,
                ),
                raw_columns=(8,),
            )
        )
    return "\n".join(lines) + "\n"


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


_PUBLISHED_MODE = 0o644
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


def _publish_exclusive(path: Path, content: str) -> bool:
    """Create `path` holding `content` unless it exists; False when it already did."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, _PUBLISHED_MODE)  # the link shares the temp file's private 0600 mode
        with os.fdopen(fd, "w", encoding="utf-8") as tmp_file:
            tmp_file.write(content)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:
            # A file system without hard links: exclusive create, briefly visible while written.
            try:
                with path.open("x", encoding="utf-8") as out:
                    out.write(content)
            except FileExistsError:
                return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Produce `path` through `write(tmp_path)` and swap it in whole."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(_PUBLISHED_MODE)  # mkstemp's 0600 would make the published file private
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _libpq_version(number: int) -> str:
    # libpq encodes 17.4 as 170004, and 9.6.24 as 90624.
    if number >= 100000:
        return f"{number // 10000}.{number % 10000}"
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def _tool_version(tool: str, bindir: Path | None) -> str | None:
    path = str(Path(bindir) / tool) if bindir is not None else shutil.which(tool)
    if not path or not Path(path).is_file():
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        first_line = out.stdout.strip().splitlines()[:1]
        if out.returncode == 0 and first_line:
            return first_line[0]
    return None
