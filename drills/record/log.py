"""The drill log: `README.md` and its RTO/RPO chart, only ever rebuilt from the JSON records."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from drills.record.chart import ChartPoint, render_rto_rpo_chart
from drills.record.markdown import log_markdown
from drills.record.model import DrillRecord, Result
from drills.record.store import load_entries, replace_atomically
from drills.verify.manifest import Targets
from infra.errors import EnvironmentFault
from recovery.redact import shown

LOG_NAME = "README.md"
CHART_NAME = "rto-rpo.svg"


def chart_points(records: Iterable[DrillRecord]) -> list[ChartPoint]:
    """What the chart plots, oldest drill first; an environment error is no measurement."""
    return [
        ChartPoint(
            started_at=record.started_at,
            rto_hours=_hours(record.rto_seconds),
            rpo_hours=_hours(record.rpo_seconds),
            passed=record.result == Result.PASSED,
            rto_kind=record.rto_kind.value,
        )
        for record in sorted(records, key=lambda r: r.started_at)
        if record.result != Result.ERROR
    ]


def rebuild_log(record_dir: Path) -> Path:
    """Rewrite `<record_dir>/README.md` and its chart from the records; return the README path.

    A directory that cannot take them raises EnvironmentFault naming it (exit 2)."""
    record_dir = Path(record_dir)
    try:
        return _rebuild(record_dir)
    except OSError as err:
        raise EnvironmentFault(
            f"--record-dir {shown(record_dir)}: the drill log could not be written "
            f"({err.strerror or type(err).__name__}); pass a directory you can write to"
        ) from err


def _rebuild(record_dir: Path) -> Path:
    record_dir.mkdir(parents=True, exist_ok=True)
    entries = load_entries(record_dir)
    records = [record for _, record in entries]
    newest = max(records, key=lambda r: r.started_at, default=None)
    targets = newest.targets if newest else Targets()
    points = chart_points(records)
    if points:
        replace_atomically(
            record_dir / CHART_NAME, lambda tmp: render_rto_rpo_chart(points, targets, tmp)
        )
    text = log_markdown(entries, CHART_NAME if points else None)
    readme = record_dir / LOG_NAME
    replace_atomically(readme, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return readme


def _hours(seconds: float | None) -> float | None:
    return seconds / 3600 if seconds is not None else None
