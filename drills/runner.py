"""The local drill: obtain the backup → stand up → restore → verify → tear down → record.

Teardown is guaranteed on success, failure, exception, SIGINT and SIGTERM: every resource the
drill creates is entered into one ExitStack that is closed in a `finally`.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from drills.cluster import Cluster, EphemeralPostgres
from drills.errors import BadInput
from drills.local import (
    Backup,
    choose_installation,
    dump_source,
    inspect_backup,
    restore,
    restore_facts,
)
from drills.plan import LocalDrillPlan, check_plan
from drills.record import (
    DrillRecord,
    Phase,
    Result,
    default_completed_by,
    host_info,
    rebuild_log,
    tool_versions,
    write_record,
)
from drills.redact import mask_dsn
from drills.verify import VerifyTarget, load_manifest, verify
from drills.verify.model import CheckResult, Status


class DrillObserver(Protocol):
    """What the command line shows while a drill runs."""

    def phase_started(self, name: str) -> None: ...
    def phase_finished(self, name: str, seconds: float) -> None: ...
    def check_finished(self, result: CheckResult) -> None: ...


class SilentObserver:
    def phase_started(self, name: str) -> None:
        pass

    def phase_finished(self, name: str, seconds: float) -> None:
        pass

    def check_finished(self, result: CheckResult) -> None:
        pass


@dataclass
class KeptCluster:
    """With --keep: the restored cluster left running, and how to reach and remove it."""

    dsn_without_password: str
    password_file: Path
    data_dir: Path
    stop_command: str


@dataclass
class DrillOutcome:
    record: DrillRecord
    record_paths: tuple[Path, Path]
    log_path: Path
    kept: KeptCluster | None = None

    @property
    def passed(self) -> bool:
        return self.record.result == Result.PASSED


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so that `finally` blocks tear everything down."""

    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Phases:
    def __init__(self, observer: DrillObserver):
        self.observer = observer
        self.done: list[Phase] = []

    @contextlib.contextmanager
    def run(self, name: str) -> Iterator[None]:
        self.observer.phase_started(name)
        started = time.monotonic()
        try:
            yield
        finally:
            seconds = time.monotonic() - started
            self.done.append(Phase(name=name, seconds=round(seconds, 3)))
            self.observer.phase_finished(name, seconds)


def run_local_drill(plan: LocalDrillPlan, observer: DrillObserver | None = None) -> DrillOutcome:
    observer = observer or SilentObserver()
    check_plan(plan)
    manifest = load_manifest(plan.manifest)
    backup = inspect_backup(plan.backup) if plan.backup else None
    if backup and not backup.is_archive and plan.point is None and backup.created_at is None:
        raise BadInput(
            f"--backup {plan.backup}: a plain SQL dump records no creation time; pass "
            "--point ISO-TIME (when the dump was taken)"
        )
    source_dsn = plan.source_dsn.get_secret_value() if plan.source_dsn else None
    installation = choose_installation(backup, source_dsn, plan.pg_bindir)
    bindir = installation.bindir

    started_at = datetime.now(UTC)
    phases = _Phases(observer)
    resources = ExitStack()
    kept = None
    try:
        if backup is None:
            workdir = Path(
                resources.enter_context(tempfile.TemporaryDirectory(prefix="prism-drill-"))
            )
            with phases.run("dump source"):
                backup = dump_source(source_dsn, workdir / "source.dump", bindir)
        point = plan.point or backup.created_at
        clock = time.monotonic()  # RTO runs from a backup in hand to a verified restore

        ephemeral = EphemeralPostgres(bindir=bindir)
        with phases.run("stand up"):
            cluster = resources.enter_context(ephemeral)
        with phases.run("restore"):
            outcome = restore(backup, cluster, plan.jobs, manifest=manifest)
        with phases.run("verify"):
            target = VerifyTarget(
                dsn=cluster.dsn(outcome.database),
                # An archive whose header cannot be read has no known point: freshness is then
                # judged against the drill's start, and the record leaves the point and RPO out.
                backup_point=point or started_at,
                drill_started=started_at,
                restore_errors=outcome.errors,
                restore_errors_total=outcome.errors_total,
                restore_warnings=outcome.warnings,
                source_dsn=source_dsn,
                api_url=plan.api_url,
                api_cmd=plan.api_cmd,
                stop_database=None if plan.keep else ephemeral.stop,
                pg_bindir=bindir,
            )
            checks = verify(target, manifest, plan.tier, on_check=observer.check_finished)
        rto_seconds = time.monotonic() - clock
        if plan.keep:
            kept = _keep(ephemeral, cluster, outcome.database)
    finally:
        with phases.run("teardown"):
            resources.close()

    passed = not outcome.errors and all(c.status != Status.FAIL for c in checks)
    record = DrillRecord(
        started_at=started_at,
        environment=plan.environment,
        backup_source=_describe_source(plan, backup),
        backup_point=point,
        result=Result.PASSED if passed else Result.FAILED,
        notes=_notes(plan, point, outcome.errors, outcome.ignored, checks),
        completed_by=plan.completed_by or default_completed_by(),
        tier=plan.tier,
        rto_seconds=round(rto_seconds, 3),
        targets=manifest.targets,
        phases=phases.done,
        checks=checks,
        tool_versions=tool_versions(bindir),
        cost_estimate="none: local drill on this machine",
        host=host_info(),
        restore_ignored=outcome.ignored,
        **restore_facts(plan.point is not None, backup, installation, outcome),
    )
    paths = write_record(record, plan.record_dir)
    log_path = rebuild_log(plan.record_dir)
    return DrillOutcome(record, paths, log_path, kept)


def _keep(ephemeral: EphemeralPostgres, cluster: Cluster, database: str) -> KeptCluster:
    """Detach the cluster from teardown and leave the password where only its owner reads it."""
    ephemeral.detach()
    password_file = cluster.root / "password"
    password_file.write_text(cluster.password + "\n")
    password_file.chmod(0o600)
    return KeptCluster(
        dsn_without_password=cluster.dsn(database, with_password=False),
        password_file=password_file,
        data_dir=cluster.data_dir,
        stop_command=ephemeral.stop_command(),
    )


def _describe_source(plan: LocalDrillPlan, backup: Backup) -> str:
    if plan.backup:
        return f"{plan.backup.name} ({backup.format}{', gzip' if backup.gzipped else ''})"
    return f"pg_dump of {mask_dsn(plan.source_dsn.get_secret_value())}"


def _notes(
    plan: LocalDrillPlan,
    point: datetime | None,
    errors: list[str],
    ignored: list[str],
    checks: list[CheckResult],
) -> str:
    parts = [plan.notes] if plan.notes else []
    if point is None:
        parts.append("backup point unknown: the archive header is unreadable")
    if errors:
        parts.append(f"restore errors: {len(errors)} (first: {errors[0]}; all in the record)")
    if ignored:
        parts.append(f"{len(ignored)} known-harmless restore errors ignored")
    failed = [c.name for c in checks if c.status == Status.FAIL]
    if failed:
        parts.append("failed checks: " + ", ".join(failed))
    return "; ".join(parts) or "all checks passed"
