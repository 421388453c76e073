from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest

from drills.chart import ChartPoint, chart_panels, render_rto_rpo_chart
from drills.verify.manifest import Targets

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
TARGETS = Targets()


def drill(days: int, rto_minutes: float | None, rpo_hours: float | None, passed: bool = True):
    return ChartPoint(
        started_at=START + timedelta(days=days),
        rto_hours=rto_minutes / 60 if rto_minutes is not None else None,
        rpo_hours=rpo_hours,
        passed=passed,
    )


@pytest.fixture
def records() -> list[ChartPoint]:
    # Deliberately out of order: the chart sorts by drill start.
    return [
        drill(182, 25, 30, passed=False),
        drill(0, 12, 5),
        drill(91, 18, 20),
        drill(273, None, 3),
    ]


def svg_ids(path: Path) -> set[str]:
    tree = ElementTree.parse(path)
    return {el.get("id") for el in tree.iter() if el.get("id")}


def svg_texts(path: Path) -> list[str]:
    tree = ElementTree.parse(path)
    return ["".join(el.itertext()) for el in tree.iter(f"{SVG}text")]


def test_panels_carry_the_targets_and_skip_unmeasured_values(
    records: list[ChartPoint],
) -> None:
    rto, rpo = chart_panels(records, TARGETS)
    assert (rto.key, rto.target_hours) == ("rto", 4)
    assert (rpo.key, rpo.target_hours) == ("rpo", 24)
    assert len(rto.points) == 3  # the last drill measured no RTO
    assert len(rpo.points) == 4
    assert [passed for _, _, passed in rpo.points] == [True, True, False, True]
    assert [hours for _, hours, _ in rpo.points] == [5, 20, 30, 3]  # oldest first


def test_panels_take_the_targets_given(records: list[ChartPoint]) -> None:
    rto, rpo = chart_panels(records, Targets(rpo_hours=1, rto_hours=0.5))
    assert (rto.target_hours, rpo.target_hours) == (0.5, 1)


def test_render_writes_an_svg_with_target_lines_and_failed_drills_marked(
    tmp_path: Path, records: list[ChartPoint]
) -> None:
    path = render_rto_rpo_chart(records, TARGETS, tmp_path / "rto-rpo.svg")
    assert path == tmp_path / "rto-rpo.svg"
    ids = svg_ids(path)
    for panel in ("rto", "rpo"):
        assert f"{panel}-target" in ids
        assert f"{panel}-passed" in ids
        assert f"{panel}-failed" in ids  # the failed drill has its own, distinct markers
    texts = svg_texts(path)
    assert "RTO target 4 h" in texts
    assert "RPO target 24 h" in texts
    assert {"target", "passed drill", "failed drill"} <= set(texts)


def test_target_lines_sit_at_the_target_values(tmp_path: Path) -> None:
    # Two drills at 2 h and 12 h of RPO: the 24 h target line must be above both, twice as far
    # from the axis as the 12 h point (pixels grow downwards in SVG).
    path = render_rto_rpo_chart([drill(0, 60, 2), drill(30, 120, 12)], TARGETS, tmp_path / "c.svg")
    tree = ElementTree.parse(path)
    group = next(el for el in tree.iter() if el.get("id") == "rpo-target")
    ys = {
        float(y) for y in re.findall(r"[ML] [\d.]+ ([\d.]+)", group.find(f".//{SVG}path").get("d"))
    }
    assert len(ys) == 1
    target_y = ys.pop()
    marker_group = next(el for el in tree.iter() if el.get("id") == "rpo-passed")
    marker_ys = sorted(float(u.get("y")) for u in marker_group.iter(f"{SVG}use"))
    assert len(marker_ys) == 2
    point_12h, point_2h = marker_ys
    axis_y = point_2h + (point_2h - point_12h) * 2 / 10  # extrapolate to 0 h from 2 h and 12 h
    assert target_y == pytest.approx(axis_y - 2 * (axis_y - point_12h), abs=0.5)


def test_render_is_byte_identical_for_the_same_records(
    tmp_path: Path, records: list[ChartPoint]
) -> None:
    first = render_rto_rpo_chart(records, TARGETS, tmp_path / "first.svg").read_bytes()
    second_path = render_rto_rpo_chart(list(reversed(records)), TARGETS, tmp_path / "second.svg")
    second = second_path.read_bytes()
    assert first == second
    assert b"<dc:date>" not in first
    different = render_rto_rpo_chart(records[:2], TARGETS, tmp_path / "third.svg").read_bytes()
    assert different != first


@pytest.mark.parametrize("count", [0, 1])
def test_render_copes_with_no_or_one_drill(tmp_path: Path, count: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = render_rto_rpo_chart([drill(0, 5, 1)][:count], TARGETS, tmp_path / "c.svg")
    ids = svg_ids(path)
    assert {"rto-target", "rpo-target"} <= ids
    assert ("rto-passed" in ids) == (count == 1)
