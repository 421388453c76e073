"""Smoke test of the restore benchmark: it runs end to end and reports every figure.

No timing is asserted: the goals are for the full-size run by hand (bench/README.md).
"""

from __future__ import annotations

import json
import os

import pytest

from bench import restore as bench

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    argv = ["--scale", "0.05", "--quick-scale", "0.05", "--out", str(out),
            "--bare-runs", "2", "--drill-runs", "2", "--repeats", "2"]
    assert bench.main(argv) == 0
    return out, json.loads((out / "result.json").read_text())


def test_table_shows_every_goal(tiny_run):
    _, result = tiny_run
    text = bench.table(result)
    for label in ("restore phase / bare", "whole drill / bare", "quick 10x / 1x",
                  "drill process peak RSS"):
        assert label in text


def test_result_has_every_figure(tiny_run):
    out, result = tiny_run
    dump = result["dump"]
    assert dump["bytes"] == os.path.getsize(dump["path"]) > 0
    assert dump["build_seconds"] > 0 and dump["dump_seconds"] > 0
    assert dump["reused"] is False
    assert set(dump["rows"]) >= {"organizations", "audit_logs"}

    bare = result["bare_restore"]
    assert len(bare["runs"]) == 2 and all(s > 0 for s in bare["runs"])
    assert min(bare["runs"]) <= bare["seconds"] <= max(bare["runs"])
    for watch in [*bare["cpu"], *(r["cpu"] for r in result["drill"]["runs"])]:
        assert watch["elapsed_seconds"] > 0
        # A tiny restore ends before the first half-second sample: only the keys are certain.
        assert {"ours_cpu_seconds", "others_cpu_seconds", "steal_cpu_seconds",
                "machine_busy_cpu_seconds"} <= set(watch)

    drill = result["drill"]
    assert len(drill["runs"]) == 2
    assert drill["phases"]["restore"] == pytest.approx(
        sum(r["phases"]["restore"] for r in drill["runs"]) / 2)  # the median of two
    assert drill["result"] == "passed"
    assert set(drill["phases"]) >= {"stand up", "restore", "verify", "teardown"}
    assert drill["wall_seconds"] >= sum(drill["phases"].values())
    assert drill["peak_rss_bytes"] > 0 and drill["tools_peak_rss_bytes"] > 0
    assert {c["name"] for c in drill["checks"]} >= {"org_scoping", "org_counts", "freshness"}
    assert (out / "records").is_dir()

    quick = result["quick_tier"]
    assert quick["10x"]["scale"] == 10 * quick["1x"]["scale"]
    for label in ("1x", "10x", "fresh_restore_full_size"):
        assert len(quick[label]["runs"]) == 2
        assert quick[label]["best"] <= quick[label]["median"]
        assert quick[label]["checks"], label
    assert {c["name"] for c in quick["1x"]["checks"]}.isdisjoint({"org_scoping", "org_counts"})


def test_ratios_are_computed_from_the_figures(tiny_run):
    _, result = tiny_run
    bare = result["bare_restore"]["seconds"]
    drill, quick = result["drill"], result["quick_tier"]
    expected = {
        "restore_phase_vs_bare": drill["phases"]["restore"] / bare,
        "whole_drill_vs_bare": drill["wall_seconds"] / bare,
        "quick_10x_vs_1x": quick["10x"]["median"] / quick["1x"]["median"],
    }
    assert result["ratios"] == pytest.approx(expected, abs=1e-3)
    runs = result["bare_restore"]["runs"]
    strictest = {
        "restore_phase_vs_bare": max(r["phases"]["restore"] for r in drill["runs"]) / min(runs),
        "whole_drill_vs_bare": max(r["wall_seconds"] for r in drill["runs"]) / min(runs),
        "quick_10x_vs_1x": quick["10x"]["best"] / quick["1x"]["best"],
    }
    assert set(result["goals"]) == set(expected)
    for name, goal in result["goals"].items():
        assert goal["ratio"] == result["ratios"][name]
        assert goal["met"] == (goal["ratio"] <= goal["limit"])
        assert goal["strictest_ratio"] == pytest.approx(strictest[name], abs=1e-3)
        assert goal["met_strictest"] == (goal["strictest_ratio"] <= goal["limit"])


def test_reuse_dump_skips_the_build(tiny_run):
    out, first = tiny_run
    mtime = os.path.getmtime(first["dump"]["path"])
    again = bench.make_dump(out, 0.05, reuse=True)
    assert again["reused"] is True
    assert os.path.getmtime(again["path"]) == mtime
    assert {k: v for k, v in again.items() if k != "reused"} == {
        k: v for k, v in first["dump"].items() if k not in ("reused", "at_least_1_gib")}
