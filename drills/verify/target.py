"""What a verification runs against: the restored database and the facts of its drill."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from recovery.redact import MASK, mask_dsn


@dataclass
class VerifyTarget:
    dsn: str  # the restored database
    backup_point: datetime  # tz-aware UTC: when the backup was taken
    drill_started: datetime  # tz-aware UTC
    restore_errors: list[str] = field(default_factory=list)  # empty: the restore was clean
    restore_errors_total: int | None = None  # when restore_errors was capped
    restore_warnings: list[str] = field(default_factory=list)  # objects not restored, named
    source_dsn: str | None = None  # the live source to compare with
    api_url: str | None = None  # probe /health and /ready here
    api_cmd: str | None = None  # start this with DATABASE_URL=dsn, probe it, stop it
    smoke_cmd: str | None = None  # the team's smoke test, run with BASE_URL once /ready is 200
    # Lets the application check prove /ready turns 503 when the database is down; called
    # after every other check.
    stop_database: Callable[[], None] | None = None
    pg_bindir: Path | None = None  # where pg_amcheck lives (deep tier)

    def __post_init__(self) -> None:
        for name in ("backup_point", "drill_started"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError(f"VerifyTarget.{name} must be timezone-aware")
            setattr(self, name, value.astimezone(UTC))

    def scrub(self, text: str) -> str:
        """`text` without any password of the target's databases, however it was spelt."""
        text = mask_dsn(text)
        for dsn in (self.dsn, self.source_dsn):
            password = _password(dsn)
            if password:
                text = text.replace(password, MASK)
        return text


def achieved_rpo(target: VerifyTarget) -> timedelta:
    """Data the drill would have lost: the time between the backup and the drill's start."""
    return target.drill_started - target.backup_point


def _password(dsn: str | None) -> str | None:
    if not dsn:
        return None
    try:
        return conninfo_to_dict(dsn).get("password") or None
    except Exception:  # an unparsable DSN fails at connect time, with its own message
        return None
