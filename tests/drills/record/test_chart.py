from __future__ import annotations

import math
import re
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest

from drills.record.chart import (
    FLOOR_HOURS,
    ChartPoint,
    chart_panels,
    render_rto_rpo_chart,
    time_range,
)
from drills.verify.manifest import Targets

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
TARGETS = Targets()


def drill(
    days: int,
    rto_minutes: float | None,
    rpo_hours: float | None,
    passed: bool = True,
    kind: str = "local",
) -> ChartPoint:
    return ChartPoint(
        started_at=START + timedelta(days=days),
        rto_hours=rto_minutes / 60 if rto_minutes is not None else None,
        rpo_hours=rpo_hours,
        passed=passed,
        rto_kind=kind,
    )


@pytest.fixture
def records() -> list[ChartPoint]:
    # Deliberately out of order: the chart sorts by drill start. Seconds-long local drills
    # and hour-long AWS drills side by side, as the log holds them.
    return [
        drill(182, 25, 30, passed=False),
        drill(0, 2 / 60, 5),  # a 2-second local drill
        drill(91, 75, 20, kind="aws"),
        drill(273, None, 3),
    ]


def svg_ids(path: Path) -> set[str]:
    tree = ElementTree.parse(path)
    return {el.get("id") for el in tree.iter() if el.get("id")}


def svg_texts(path: Path) -> list[str]:
    tree = ElementTree.parse(path)
    return ["".join(el.itertext()) for el in tree.iter(f"{SVG}text")]


def marker_ys(tree: ElementTree.ElementTree, gid: str) -> list[float]:
    group = next(el for el in tree.iter() if el.get("id") == gid)
    return sorted(float(u.get("y")) for u in group.iter(f"{SVG}use"))


def test_panels_carry_the_targets_and_skip_unmeasured_values(records: list[ChartPoint]) -> None:
    rto, rpo = chart_panels(records, TARGETS)
    assert (rto.key, rto.target_hours) == ("rto", 4)
    assert (rpo.key, rpo.target_hours) == ("rpo", 24)
    assert len(rto.marks) == 3  # the last drill measured no RTO
    assert [m.hours for m in rpo.marks] == [5, 20, 30, 3]  # oldest first
    assert [m.passed for m in rpo.marks] == [True, True, False, True]
    assert [m.kind for m in rto.marks] == ["local", "aws", "local"]


def test_panels_take_the_targets_given(records: list[ChartPoint]) -> None:
    rto, rpo = chart_panels(records, Targets(rpo_hours=1, rto_hours=0.5))
    assert (rto.target_hours, rpo.target_hours) == (0.5, 1)


def test_the_value_axis_holds_seconds_and_hours_and_the_target(
    records: list[ChartPoint],
) -> None:
    rto, _ = chart_panels(records, TARGETS)
    low, high = rto.value_range
    assert low < 2 / 3600 and high > 4  # the 2 s drill and the 4 h target both inside
    assert high / low < 1e6  # fitted, not open-ended
    zero = chart_panels([drill(0, 1, 0)], TARGETS)[1]
    assert zero.value_range[0] < FLOOR_HOURS  # 0 s sits on the floor, inside the axis


def test_the_time_axis_spans_the_drills_not_years() -> None:
    lone = time_range([drill(0, 1, 1)])
    assert lone == (START - timedelta(days=3), START + timedelta(days=3))
    first, last = time_range([drill(0, 1, 1), drill(100, 1, 1)])
    assert START - timedelta(days=7) < first < START
    assert START + timedelta(days=100) < last < START + timedelta(days=107)
    assert time_range([]) is None


def test_render_writes_an_svg_with_targets_kinds_and_failed_drills_marked(
    tmp_path: Path, records: list[ChartPoint]
) -> None:
    path = render_rto_rpo_chart(records, TARGETS, tmp_path / "rto-rpo.svg")
    assert path == tmp_path / "rto-rpo.svg"
    ids = svg_ids(path)
    for panel in ("rto", "rpo"):
        assert f"{panel}-target" in ids
        assert f"{panel}-passed" in ids
        assert f"{panel}-passed-aws" in ids  # AWS drills drawn apart from local ones
        assert f"{panel}-failed" in ids  # the failed drill has its own, distinct markers
    texts = svg_texts(path)
    assert "RTO target 4 h" in texts
    assert "RPO target 24 h" in texts
    assert {"≤ 1 s", "1 min", "1 h", "4 h", "1 d"} <= set(texts)  # durations, not hours
    assert "local drill (restore → verified on this machine)" in texts
    assert "AWS drill (start → /ready 200 through the tunnel)" in texts
    assert "failed drill" in texts


def test_positions_follow_a_log_scale(tmp_path: Path) -> None:
    # RTOs of 1 min and 1 h: the 4 h target sits log(4)/log(60) of that distance above 1 h.
    path = render_rto_rpo_chart([drill(0, 1, 2), drill(30, 60, 12)], TARGETS, tmp_path / "c.svg")
    tree = ElementTree.parse(path)
    group = next(el for el in tree.iter() if el.get("id") == "rto-target")
    ys = {
        float(y) for y in re.findall(r"[ML] [\d.]+ ([\d.]+)", group.find(f".//{SVG}path").get("d"))
    }
    assert len(ys) == 1
    target_y = ys.pop()
    one_hour, one_minute = marker_ys(tree, "rto-passed")  # pixels grow downwards
    expected = one_hour - (one_minute - one_hour) * math.log(4) / math.log(60)
    assert target_y == pytest.approx(expected, abs=0.5)


def test_render_is_byte_identical_for_the_same_records(
    tmp_path: Path, records: list[ChartPoint]
) -> None:
    first = render_rto_rpo_chart(records, TARGETS, tmp_path / "first.svg").read_bytes()
    second_path = render_rto_rpo_chart(list(reversed(records)), TARGETS, tmp_path / "second.svg")
    assert first == second_path.read_bytes()
    assert b"<dc:date>" not in first
    different = render_rto_rpo_chart(records[:2], TARGETS, tmp_path / "third.svg").read_bytes()
    assert different != first


@pytest.mark.parametrize("count", [0, 1])
def test_render_copes_with_no_or_one_drill(tmp_path: Path, count: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = render_rto_rpo_chart([drill(0, 5, 0)][:count], TARGETS, tmp_path / "c.svg")
    ids = svg_ids(path)
    assert {"rto-target", "rpo-target"} <= ids
    assert ("rto-passed" in ids) == (count == 1)
    assert ("rpo-passed" in ids) == (count == 1)  # an RPO of 0 s is drawn, on the floor
