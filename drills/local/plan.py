"""What a local drill restores and how: validated before anything is created."""

from __future__ import annotations

import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from drills.record import DEFAULT_RECORD_DIR, ENVIRONMENT_PATTERN
from drills.verify.model import Tier
from infra.errors import BadInput

EARLIEST_POINT = datetime(1996, 7, 8, tzinfo=UTC)  # PostgreSQL's first release


class LocalDrillPlan(BaseModel):
    """A drill of a logical backup (a file, or a fresh dump of a live source) on this machine."""

    model_config = ConfigDict(frozen=True)

    backup: Path | None = None
    source_dsn: SecretStr | None = None  # compare with it; dump it first when no backup is given
    point: datetime | None = None  # overrides the backup's own creation time
    environment: str = "local"
    tier: Tier = Tier.STANDARD
    manifest: Path | None = None
    record_dir: Path = DEFAULT_RECORD_DIR
    keep: bool = False
    jobs: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)
    api_url: str | None = None
    api_cmd: str | None = None
    smoke_cmd: str | None = None  # run with BASE_URL = the API's URL; its exit code is a check
    completed_by: str | None = None
    notes: str = ""
    pg_bindir: Path | None = None  # --pg-bindir; None: PRISM_DR_PG_BINDIR or discovered


def parse_point(text: str | None) -> datetime | None:
    """`--point`: an ISO 8601 time with its UTC offset, not in the future."""
    if text is None:
        return None
    try:
        point = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise BadInput(
            f"--point {text!r} is not an ISO 8601 time; use e.g. 2026-11-23T02:00:00Z"
        ) from err
    if point.tzinfo is None:
        raise BadInput(
            f"--point {text!r} has no UTC offset; add one, e.g. {text}Z for UTC"
        )
    try:  # the offset can push year 1 or 9999 out of datetime's range
        point = point.astimezone(UTC)
    except OverflowError as err:
        raise BadInput(
            f"--point {text!r} is out of range; give the time the backup was taken"
        ) from err
    if point > datetime.now(UTC):
        raise BadInput(f"--point {text!r} is in the future; give the time the backup was taken")
    if point < EARLIEST_POINT:
        raise BadInput(
            f"--point {text!r} is before PostgreSQL existed; give the time the backup was taken"
        )
    return point


def check_plan(plan: LocalDrillPlan) -> None:
    """Refuse a plan that cannot run, before any cluster or file is created."""
    if not re.match(ENVIRONMENT_PATTERN, plan.environment):
        raise BadInput(
            f"--environment {plan.environment!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(it names the record file); e.g. staging"
        )
    if plan.backup is None and plan.source_dsn is None:
        raise BadInput("nothing to drill: pass --backup FILE, --source-dsn DSN, or --demo")
    if plan.api_url and plan.api_cmd:
        raise BadInput("--api-url and --api-cmd both given; pass one (the command is probed)")
    if plan.smoke_cmd is not None and not (plan.api_url or plan.api_cmd):
        raise BadInput(
            "--smoke-cmd needs an API to test: pass --api-cmd (the drill starts it on the "
            "restored database) or --api-url"
        )
    if plan.smoke_cmd is not None and not plan.smoke_cmd.strip():
        raise BadInput("--smoke-cmd is empty; pass the command that runs your smoke test")
    if plan.api_url and not plan.api_url.startswith(("http://", "https://")):
        raise BadInput(f"--api-url {plan.api_url!r} is not an http(s) URL; e.g. http://127.0.0.1:8080")
    _check_record_dir(plan.record_dir)


def _check_record_dir(record_dir: Path) -> None:
    """The record is written after the drill: a directory that cannot take it must fail now."""
    if record_dir.exists() and not record_dir.is_dir():
        raise BadInput(f"--record-dir {record_dir} is a file; pass a directory")
    existing = record_dir.absolute()
    while not existing.exists():
        existing = existing.parent
    try:  # a real probe: permission bits say nothing to root or about read-only mounts
        os.rmdir(tempfile.mkdtemp(prefix=".prism-dr-probe-", dir=existing))
    except OSError as err:
        raise BadInput(
            f"--record-dir {record_dir}: cannot create it under {existing} ({err.strerror}); "
            "pass a directory you can write to"
        ) from err
