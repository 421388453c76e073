"""The drill log's chart: RTO and RPO per drill against the targets.

Drills differ by orders of magnitude: a local drill restores in seconds, an AWS drill in an
hour, targets are hours. The value axis is therefore logarithmic, labelled in durations
(1 s … 1 w), so each drill stays readable against its target; the time axis spans the drills
themselves, not years around a single one. Local and AWS drills time different journeys
(see `drills.record.RtoKind`) and are drawn with different markers.

The SVG is committed beside the log, so it must be byte-identical for the same records
(otherwise every `prism-dr drill log` would produce a spurious diff): a fixed hash salt for
the ids matplotlib generates, no date in the metadata, text as text rather than glyph paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from drills.verify.manifest import Targets

PASSED_COLOR = "#2b7bba"
FAILED_COLOR = "#d62728"
TARGET_COLOR = "#7f7f7f"

# Value axis floor: a measured 0 s (a backup taken at drill start) sits on it.
FLOOR_HOURS = 1 / 3600
_TICKS = [  # (hours, label)
    (1 / 3600, "≤ 1 s"),  # the floor: values under a second, 0 s included, sit on it
    (10 / 3600, "10 s"),
    (1 / 60, "1 min"),
    (10 / 60, "10 min"),
    (1.0, "1 h"),
    (4.0, "4 h"),
    (24.0, "1 d"),
    (24.0 * 7, "1 w"),
    (24.0 * 30, "30 d"),
    (24.0 * 365, "1 y"),
]
_KIND_MARKERS = {"local": "o", "aws": "s"}
_KIND_LABELS = {
    "local": "local drill (restore → verified on this machine)",
    "aws": "AWS drill (start → /ready 200 through the tunnel)",
}
_SINGLE_DRILL_SPAN = timedelta(days=3)  # either side of a lone drill


@dataclass(frozen=True)
class ChartPoint:
    """One drill as the chart sees it: plain values, so the chart knows nothing of records."""

    started_at: datetime
    rto_hours: float | None
    rpo_hours: float | None
    passed: bool
    rto_kind: str = "local"


@dataclass(frozen=True)
class Mark:
    started_at: datetime
    hours: float
    passed: bool
    kind: str


@dataclass(frozen=True)
class Panel:
    """One of the chart's two plots: a measure, its target and its values per drill."""

    key: str  # "rto" or "rpo": prefixes the SVG ids of the panel's elements
    title: str
    target_hours: float
    marks: list[Mark]  # oldest first

    @property
    def value_range(self) -> tuple[float, float]:
        """The value axis: every mark and the target, with room, never below the floor."""
        values = [max(m.hours, FLOOR_HOURS) for m in self.marks] + [self.target_hours]
        return max(min(values) / 3, FLOOR_HOURS / 2), max(values) * 3


def chart_panels(points: Iterable[ChartPoint], targets: Targets) -> list[Panel]:
    """The two plots; drills that did not measure a value are left out of that plot only."""
    points = sorted(points, key=lambda p: p.started_at)
    return [
        Panel(
            key="rto",
            title="RTO per drill (local and AWS drills time different spans)",
            target_hours=targets.rto_hours,
            marks=[
                Mark(p.started_at, p.rto_hours, p.passed, p.rto_kind)
                for p in points
                if p.rto_hours is not None
            ],
        ),
        Panel(
            key="rpo",
            title="RPO per drill: the backup's age at drill start",
            target_hours=targets.rpo_hours,
            marks=[
                Mark(p.started_at, p.rpo_hours, p.passed, p.rto_kind)
                for p in points
                if p.rpo_hours is not None
            ],
        ),
    ]


def time_range(points: Iterable[ChartPoint]) -> tuple[datetime, datetime] | None:
    """The time axis: the drills' span with a margin, or days around a lone drill."""
    times = sorted(p.started_at for p in points)
    if not times:
        return None
    span = times[-1] - times[0]
    margin = max(span * 0.06, _SINGLE_DRILL_SPAN if span == timedelta(0) else timedelta(hours=12))
    return times[0] - margin, times[-1] + margin


def render_rto_rpo_chart(points: Iterable[ChartPoint], targets: Targets, path: Path) -> Path:
    """Write the chart as SVG to `path` and return it."""
    # Imported here: matplotlib takes about a second to import and only `drill log` needs it.
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    path = Path(path)
    points = list(points)
    panels = chart_panels(points, targets)
    kinds = sorted({p.rto_kind for p in points} | {"local"})
    with matplotlib.rc_context(_DETERMINISTIC_SVG):
        # A bare Figure draws through its own canvas: no pyplot, no global backend to switch.
        figure = Figure(figsize=(8, 6.5), layout="constrained")
        axes = figure.subplots(nrows=len(panels), sharex=True)
        span = time_range(points)
        for ax, panel in zip(axes, panels, strict=True):
            _draw_panel(ax, panel, span)
        axes[-1].set_xlabel("drill start (UTC)")
        figure.suptitle("Restore drills: RTO and RPO against the targets (log scale)")
        # One legend for both panels, with every entry even when no drill has failed yet.
        handles = [Line2D([], [], color=TARGET_COLOR, linestyle="--", label="target")]
        handles += [
            Line2D([], [], **_marker_style(True, kind), linestyle="", label=_KIND_LABELS[kind])
            for kind in kinds
            if kind in _KIND_LABELS
        ]
        handles.append(
            Line2D([], [], **_marker_style(False, "local"), linestyle="", label="failed drill")
        )
        figure.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False,
                      fontsize="small")
        figure.savefig(path, format="svg", metadata={"Date": None})
    return path


_DETERMINISTIC_SVG = {
    "svg.hashsalt": "prism-drill-log",
    "svg.fonttype": "none",
    "timezone": "UTC",
}


def _draw_panel(ax, panel: Panel, span: tuple[datetime, datetime] | None) -> None:
    import matplotlib.dates as mdates
    from matplotlib.ticker import NullLocator

    label = panel.key.upper()
    ax.set_title(panel.title, loc="left", fontsize="medium")
    ax.set_yscale("log")
    low, high = panel.value_range
    ax.set_ylim(low, high)
    ticks = [(h, text) for h, text in _TICKS if low <= h <= high]
    ax.set_yticks([h for h, _ in ticks], [text for _, text in ticks])
    ax.yaxis.set_minor_locator(NullLocator())  # the labelled durations are the only ticks
    ax.axhline(
        panel.target_hours,
        color=TARGET_COLOR,
        linestyle="--",
        linewidth=1.2,
        gid=f"{panel.key}-target",
    )
    ax.annotate(
        f"{label} target {panel.target_hours:g} h",
        xy=(1, panel.target_hours),
        xycoords=("axes fraction", "data"),
        xytext=(-4, 3),
        textcoords="offset points",
        ha="right",
        va="bottom",
        color=TARGET_COLOR,
        fontsize="small",
        gid=f"{panel.key}-target-label",
    )
    if panel.marks:
        for kind in sorted({m.kind for m in panel.marks}):
            # A trend per kind: a local drill's seconds say nothing about an AWS drill's hour.
            same = [m for m in panel.marks if m.kind == kind]
            ax.plot(
                [m.started_at for m in same],
                [max(m.hours, FLOOR_HOURS) for m in same],
                color=PASSED_COLOR,
                linewidth=0.8,
                alpha=0.4,
                linestyle="-" if kind == "local" else ":",
                gid=f"{panel.key}-trend" + ("" if kind == "local" else f"-{kind}"),
            )
        for passed in (True, False):
            for kind in sorted({m.kind for m in panel.marks}):
                chosen = [m for m in panel.marks if m.passed == passed and m.kind == kind]
                if not chosen:
                    continue
                outcome = "passed" if passed else "failed"
                ax.plot(
                    [m.started_at for m in chosen],
                    [max(m.hours, FLOOR_HOURS) for m in chosen],
                    linestyle="",
                    zorder=3,
                    gid=f"{panel.key}-{outcome}" + ("" if kind == "local" else f"-{kind}"),
                    **_marker_style(passed, kind),
                )
    else:
        ax.text(
            0.5,
            0.5,
            f"no drill measured the {label}",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color=TARGET_COLOR,
        )
    if span is not None:
        ax.set_xlim(*span)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(axis="y", alpha=0.3)


def _marker_style(passed: bool, kind: str) -> dict:
    if not passed:
        return {"marker": "X", "markersize": 9, "color": FAILED_COLOR}
    return {"marker": _KIND_MARKERS.get(kind, "D"), "markersize": 6, "color": PASSED_COLOR}
