"""Records of pre-migration snapshots in docs/audit/snapshots/ (spec §5: "Record the snapshot
ID/timestamp").

Each confirmed snapshot leaves `<created date>-<snapshot id>.json`, the source of truth, and
the log `README.md` is rebuilt from all of them: one Markdown table line per snapshot,
newest first. CI commits both with the migration. Strings are scrubbed of passwords
(`recovery.redact`) before anything is written, whatever the caller passed.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ValidationError, field_validator

from infra.errors import BadInput
from recovery.redact import scrub

DEFAULT_SNAPSHOT_RECORD_DIR = Path("docs/audit/snapshots")
LOG_NAME = "README.md"
SCHEMA_VERSION = 1


class SnapshotRecord(BaseModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    snapshot_id: str
    snapshot_arn: str | None = None
    db_instance: str
    stack: str | None = None
    region: str
    migration: str
    created_at: AwareDatetime  # RDS's SnapshotCreateTime: the data is as of this moment
    confirmed_at: AwareDatetime  # when the waiter saw it `available`
    retain_until: AwareDatetime | None = None
    created_by: str
    engine_version: str | None = None
    allocated_storage_gb: int | None = None
    encrypted: bool | None = None

    @field_validator("created_at", "confirmed_at", "retain_until")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None


def check_record_dir(record_dir: Path) -> None:
    """Refuse, before any snapshot is taken and without creating anything, a record
    directory that could not be written: it or its nearest existing parent must be writable."""
    here = Path(record_dir).absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir() or not os.access(here, os.W_OK | os.X_OK):
        raise BadInput(f"--record-dir {record_dir} cannot be written ({here} is not writable)")


def record_path(record: SnapshotRecord, record_dir: Path) -> Path:
    return Path(record_dir) / f"{record.created_at.date().isoformat()}-{record.snapshot_id}.json"


def write_record(record: SnapshotRecord, record_dir: Path) -> tuple[Path, Path]:
    """Write the record's JSON (never overwriting another) and rebuild the log; both paths."""
    safe = SnapshotRecord.model_validate(scrub(record.model_dump(mode="json")))
    record_dir = Path(record_dir)
    record_dir.mkdir(parents=True, exist_ok=True)
    path = record_path(safe, record_dir)
    # Snapshot ids are unique per account and region, and so is this name: "x" refuses to
    # overwrite a record of the same snapshot rather than lose it.
    try:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(safe.model_dump_json(indent=2) + "\n")
    except FileExistsError:
        raise BadInput(f"{path} already exists: snapshot {safe.snapshot_id} is recorded") from None
    return path, rebuild_log(record_dir)


def load_records(record_dir: Path) -> list[SnapshotRecord]:
    """Every snapshot record, oldest first; a corrupt one is an error naming the file."""
    records = []
    for path in sorted(Path(record_dir).glob("*.json")):
        try:
            records.append(SnapshotRecord.model_validate(json.loads(path.read_text("utf-8"))))
        except (ValueError, ValidationError) as error:
            first = str(error).strip().splitlines()[0]
            raise BadInput(f"{path}: corrupt snapshot record ({first}); fix or remove it") from None
    return sorted(records, key=lambda r: (r.created_at, r.snapshot_id))


def rebuild_log(record_dir: Path) -> Path:
    records = load_records(record_dir)
    lines = [
        "# Pre-migration snapshots",
        "",
        "One line per manual snapshot taken by `prism-dr snapshot create` before a production",
        "migration (spec §5), newest first. Rebuilt from the JSON records beside this file.",
        "",
        "| Created (UTC) | Snapshot ID | Database | Migration | Retain until | Created by |",
        "|---|---|---|---|---|---|",
    ]
    for r in reversed(records):
        cells = [
            _stamp(r.created_at),
            f"`{r.snapshot_id}`",
            r.db_instance + (f" ({r.stack})" if r.stack else ""),
            r.migration,
            _stamp(r.retain_until) if r.retain_until else "—",
            r.created_by,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    readme = Path(record_dir) / LOG_NAME
    fd, tmp = tempfile.mkstemp(dir=record_dir, prefix=".README.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(tmp, readme)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return readme


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
