"""The local drill: check inputs → reap → obtain the backup → stand up → restore → verify →
tear down → record.

Teardown is guaranteed on success, failure, exception, SIGINT, SIGTERM and SIGHUP: every
resource the drill creates is entered into one ExitStack that is closed in a `finally`. Once
started, a drill always ends with its record; a failure of the machine rather than the backup
(disk full, a crash of this tool) is recorded as Result.ERROR.
"""

from __future__ import annotations

import contextlib
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drills.local import owner, preflight
from drills.local.cluster import WORKDIR_PREFIX, Cluster, EphemeralPostgres
from drills.local.lag import DataLag, measure_data_lag
from drills.local.plan import LocalDrillPlan
from drills.local.reaper import Found, reap_local
from drills.local.restore import Backup, RestoreOutcome, dump_source, restore, restore_facts
from drills.observer import DrillObserver, SilentObserver
from drills.record import (
    DrillRecord,
    Phase,
    Result,
    RtoKind,
    default_completed_by,
    host_info,
    rebuild_log,
    tool_versions,
    write_record,
)
from drills.verify import VerifyTarget, verify
from drills.verify.model import CheckResult, Status
from infra.errors import BadInput
from recovery.redact import mask_dsn, printable


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


# Signals that mean "stop now": Ctrl-C, a supervisor's or timeout's SIGTERM, and SIGHUP from a
# closed terminal or SSH session. Each becomes a KeyboardInterrupt so `finally` tears down.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt so that `finally` blocks tear down."""

    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {signum: signal.signal(signum, _raise) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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
    """Run the drill and record it. Bad input raises BadInput before anything is created;
    once started, the drill always ends with its record: passed, failed, or error when the
    machine gave out (then the caller exits 2)."""
    observer = observer or SilentObserver()
    inputs = preflight.check_inputs(plan)
    backup = inputs.backup
    # What earlier drills killed by SIGKILL, OOM or a power cut left behind: only theirs.
    reaped = [item for item in reap_local(yes=True) if item.action == "removed"]

    started_at = datetime.now(UTC)
    phases = _Phases(observer)
    checks: list[CheckResult] = []
    outcome: RestoreOutcome | None = None
    point = plan.point or (backup.created_at if backup else None)
    rto_seconds = None
    lag = None
    error = None
    kept = None
    interrupted: KeyboardInterrupt | None = None

    def on_check(result: CheckResult) -> None:
        if result.name == "freshness" and point is None:
            # Judged against the drill's start, any data would look fresh: "RPO 0 s".
            result = CheckResult(
                name=result.name,
                status=Status.WARN,
                detail="not judged: the backup point is unknown (the archive header gives "
                "none); pass --point ISO-TIME to judge the data's age and the RPO",
                seconds=result.seconds,
            )
        checks.append(result)
        observer.check_finished(result)

    resources = ExitStack()
    try:
        try:
            if backup is None:
                workdir = Path(
                    resources.enter_context(tempfile.TemporaryDirectory(prefix=WORKDIR_PREFIX))
                )
                owner.mark(workdir, "workdir")  # it will hold a full copy of the source
                resources.callback(owner.unregister, workdir)
                with phases.run("dump source"):
                    backup = dump_source(inputs.source_dsn, workdir / "source.dump", inputs.bindir)
                point = plan.point or backup.created_at
            clock = time.monotonic()  # RTO runs from a backup in hand to a verified restore

            ephemeral = EphemeralPostgres(bindir=inputs.bindir)
            with phases.run("stand up"):
                cluster = resources.enter_context(ephemeral)
            with phases.run("restore"):
                outcome = restore(backup, cluster, plan.jobs, manifest=inputs.manifest)
            error = environment_failure(outcome.errors)
            if error is None:
                with phases.run("verify"):
                    target = VerifyTarget(
                        dsn=cluster.dsn(outcome.database),
                        # An archive whose header cannot be read has no known point: the
                        # suite needs one, so the drill's start stands in, and on_check
                        # turns the freshness verdict into a warning; no RPO is recorded.
                        backup_point=point or started_at,
                        drill_started=started_at,
                        restore_errors=outcome.errors,
                        restore_errors_total=outcome.errors_total,
                        restore_warnings=outcome.warnings,
                        source_dsn=inputs.source_dsn,
                        api_url=plan.api_url,
                        api_cmd=plan.api_cmd,
                        smoke_cmd=plan.smoke_cmd,
                        stop_database=None if plan.keep else ephemeral.stop,
                        pg_bindir=inputs.bindir,
                    )
                    verify(target, inputs.manifest, plan.tier, on_check=on_check)
                rto_seconds = round(time.monotonic() - clock, 3)
                if inputs.source_dsn:
                    lag = measure_data_lag(
                        inputs.source_dsn, cluster.dsn(outcome.database), inputs.manifest
                    )
                if plan.keep:
                    kept = _keep(ephemeral, cluster, outcome.database)
        finally:
            with phases.run("teardown"):
                resources.close()
    except KeyboardInterrupt as stop:
        # Stopped on purpose: torn down and not judged, but a drill that ran leaves its record.
        interrupted = stop
        error = f"interrupted by {_stop_signal(stop)} before the drill finished: not judged"
        kept = None
    except Exception as err:  # once started, whatever breaks is the machine's, not the backup's
        error = _one_line(err)
        kept = None

    restore_errors = outcome.errors if outcome else []
    if error:
        result = Result.ERROR
    elif not restore_errors and all(c.status != Status.FAIL for c in checks):
        result = Result.PASSED
    else:
        result = Result.FAILED
    record = DrillRecord(
        started_at=started_at,
        environment=plan.environment,
        backup_source=_describe_source(plan, backup),
        backup_point=point,
        result=result,
        notes=_notes(
            plan, point, error, restore_errors, outcome.ignored if outcome else [], checks,
            reaped, lag,
        ),
        completed_by=plan.completed_by or default_completed_by(),
        tier=plan.tier,
        rto_kind=RtoKind.LOCAL,
        rto_seconds=rto_seconds,
        data_lag_seconds=lag.seconds if lag else None,
        error=error,
        targets=inputs.manifest.targets,
        phases=phases.done,
        checks=checks,
        tool_versions=tool_versions(inputs.bindir),
        cost_estimate="none: local drill on this machine",
        host=host_info(),
        restore_ignored=outcome.ignored if outcome else [],
        **(
            restore_facts(plan.point is not None, backup, inputs.installation, outcome)
            if backup is not None and outcome is not None
            else {}
        ),
    )
    paths = write_record(record, plan.record_dir)
    log_path = rebuild_log(plan.record_dir)
    if interrupted is not None:
        raise interrupted  # the caller exits 130 (or 128 + the signal)
    return DrillOutcome(record, paths, log_path, kept)


def _stop_signal(stop: KeyboardInterrupt) -> str:
    """SIGINT for Ctrl-C; the signal terminate_as_interrupt turned into the interrupt."""
    match = re.fullmatch(r"signal (\d+)", str(stop))
    return signal.Signals(int(match.group(1))).name if match else "SIGINT"


# What a restore error says when the machine, not the backup, gave out.
_ENVIRONMENT_SIGNS = re.compile(
    r"No space left on device|could not extend file|Disk quota exceeded|out of memory"
    r"|Cannot allocate memory|could not fork|Too many open files|could not write to file",
    re.I,
)


def environment_failure(restore_errors: list[str]) -> str | None:
    """The first restore error that is the machine's fault (disk full, no memory), if any."""
    for message in restore_errors:
        if _ENVIRONMENT_SIGNS.search(message):
            return f"restore: {message}"
    return None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, BadInput):
        text = f"{type(err).__name__}: {text}"
    return mask_dsn(printable(text))[:500]


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


def _describe_source(plan: LocalDrillPlan, backup: Backup | None) -> str:
    if plan.backup and backup:
        return f"{plan.backup.name} ({backup.format}{', gzip' if backup.gzipped else ''})"
    return f"pg_dump of {mask_dsn(plan.source_dsn.get_secret_value())}"


def _notes(
    plan: LocalDrillPlan,
    point: datetime | None,
    error: str | None,
    errors: list[str],
    ignored: list[str],
    checks: list[CheckResult],
    reaped: list[Found],
    lag: DataLag | None,
) -> str:
    parts = [plan.notes] if plan.notes else []
    if error:
        parts.append(f"environment error, the backup was not judged: {error}")
    if point is None:
        parts.append("backup point unknown: the archive header is unreadable")
    if errors:
        parts.append(f"restore errors: {len(errors)} (first: {errors[0]}; all in the record)")
    if ignored:
        parts.append(f"{len(ignored)} known-harmless restore errors ignored")
    failed = [c.name for c in checks if c.status == Status.FAIL]
    if failed:
        parts.append("failed checks: " + ", ".join(failed))
    summary = "; ".join(parts) if error else "; ".join(parts) or "all checks passed"
    if lag is not None and lag.seconds is None:
        summary += f"; {lag.detail}"
    if reaped:
        pids = ", ".join(sorted({str(item.owner_pid) for item in reaped}))
        summary += f"; first reaped {len(reaped)} directories left by killed drills (pids {pids})"
    return summary
