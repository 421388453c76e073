"""The drill log's chart: RTO and RPO per drill, in hours, against the targets.

The SVG is committed beside the log, so it must be byte-identical for the same records
(otherwise every `prism-dr drill log` would produce a spurious diff): a fixed hash salt for
the ids matplotlib generates, no date in the metadata, text as text rather than glyph paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drills.verify.manifest import Targets

PASSED_COLOR = "#2b7bba"
FAILED_COLOR = "#d62728"
TARGET_COLOR = "#7f7f7f"

_DETERMINISTIC_SVG = {
    "svg.hashsalt": "prism-drill-log",
    "svg.fonttype": "none",
    "timezone": "UTC",
}


@dataclass(frozen=True)
class ChartPoint:
    """One drill as the chart sees it: plain values, so the chart knows nothing of records."""

    started_at: datetime
    rto_hours: float | None
    rpo_hours: float | None
    passed: bool
    rto_kind: str = "local"


@dataclass(frozen=True)
class Panel:
    """One of the chart's two plots: a measure, its target and its values per drill."""

    key: str  # "rto" or "rpo": prefixes the SVG ids of the panel's elements
    title: str
    target_hours: float
    points: list[tuple[datetime, float, bool]]  # (drill start, hours, passed)


def chart_panels(points: Iterable[ChartPoint], targets: Targets) -> list[Panel]:
    """The two plots; drills that did not measure a value are left out of that plot only."""
    points = sorted(points, key=lambda p: p.started_at)
    rto_target, rpo_target = targets.rto_hours, targets.rpo_hours
    return [
        Panel(
            key="rto",
            title="RTO: restore start → verified",
            target_hours=rto_target,
            points=[
                (p.started_at, p.rto_hours, p.passed) for p in points if p.rto_hours is not None
            ],
        ),
        Panel(
            key="rpo",
            title="RPO: backup point → drill start",
            target_hours=rpo_target,
            points=[
                (p.started_at, p.rpo_hours, p.passed) for p in points if p.rpo_hours is not None
            ],
        ),
    ]


def render_rto_rpo_chart(points: Iterable[ChartPoint], targets: Targets, path: Path) -> Path:
    """Write the chart as SVG to `path` and return it."""
    # Imported here: matplotlib takes about a second to import and only `drill log` needs it.
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    path = Path(path)
    panels = chart_panels(points, targets)
    with matplotlib.rc_context(_DETERMINISTIC_SVG):
        # A bare Figure draws through its own canvas: no pyplot, no global backend to switch.
        figure = Figure(figsize=(8, 6), layout="constrained")
        axes = figure.subplots(nrows=len(panels), sharex=True)
        for ax, panel in zip(axes, panels, strict=True):
            _draw_panel(ax, panel)
        axes[-1].set_xlabel("drill start (UTC)")
        figure.suptitle("Restore drills: RTO and RPO against the targets")
        # One legend for both panels, with every entry even when no drill has failed yet.
        figure.legend(
            handles=[
                Line2D([], [], color=TARGET_COLOR, linestyle="--", label="target"),
                Line2D([], [], **_marker_style(passed=True), linestyle="", label="passed drill"),
                Line2D([], [], **_marker_style(passed=False), linestyle="", label="failed drill"),
            ],
            loc="outside lower center",
            ncols=3,
            frameon=False,
        )
        figure.savefig(path, format="svg", metadata={"Date": None})
    return path


def _draw_panel(ax, panel: Panel) -> None:
    import matplotlib.dates as mdates

    label = panel.key.upper()
    ax.set_title(panel.title, loc="left", fontsize="medium")
    ax.set_ylabel("hours")
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
    if panel.points:
        times = [t for t, _, _ in panel.points]
        hours = [h for _, h, _ in panel.points]
        ax.plot(
            times, hours, color=PASSED_COLOR, linewidth=0.8, alpha=0.5, gid=f"{panel.key}-trend"
        )
        for passed in (True, False):
            chosen = [(t, h) for t, h, ok in panel.points if ok == passed]
            if chosen:
                ax.plot(
                    [t for t, _ in chosen],
                    [h for _, h in chosen],
                    linestyle="",
                    zorder=3,
                    gid=f"{panel.key}-{'passed' if passed else 'failed'}",
                    **_marker_style(passed),
                )
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
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
    values = [h for _, h, _ in panel.points]
    ax.set_ylim(min([0.0, *values]), max([panel.target_hours, *values]) * 1.15)
    ax.grid(axis="y", alpha=0.3)


def _marker_style(passed: bool) -> dict:
    if passed:
        return {"marker": "o", "markersize": 6, "color": PASSED_COLOR}
    return {"marker": "X", "markersize": 9, "color": FAILED_COLOR}
