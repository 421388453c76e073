"""`prism-dr plan --stack prod`, cold: a new process each run (compiled bytecode cached, as
after any first run), median of --runs. Goal (issue 6): <= 3 s wall on 2 cores.

Besides wall time, each run's CPU time (user + sys of the child) and the 1-minute load
average are recorded: on a shared machine, wall time above CPU time is waiting for a core,
not work. The floor is also measured: a process that only imports the two provider SDKs the
stack program needs (pulumi_aws's modules in use and pulumi_cloudflare).

    python -m bench.plan [--runs 3] [--stack prod] [--out bench/out/plan.json]
                         [--baseline DIR]

--baseline DIR runs the same command from another checkout (e.g. `git archive <commit>`
unpacked), alternating with this one, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prism_dr.plan_cmd import EAGER_IMPORTS_ENV

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 3.0
_PROVIDERS = (
    "import pulumi_aws, pulumi_cloudflare, pulumi_random\n"
    "from pulumi_aws import cloudwatch, ec2, iam, kms, rds, sns, ssm, vpc\n"
)


def _timed(argv: list[str], root: Path = ROOT, *, eager: bool = False) -> dict[str, float]:
    load = os.getloadavg()[0]
    env = {k: v for k, v in os.environ.items() if k != EAGER_IMPORTS_ENV}
    env["PYTHONPATH"] = str(root)
    if eager:
        env[EAGER_IMPORTS_ENV] = "1"
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {stderr.strip()}")
    return {
        "wall": round(wall, 3),
        "cpu": round(usage.ru_utime + usage.ru_stime, 3),
        "load1": round(load, 2),
    }


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "runs": runs,
        "median_wall": statistics.median(r["wall"] for r in runs),
        "median_cpu": statistics.median(r["cpu"] for r in runs),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "plan.json")
    parser.add_argument("--baseline", type=Path, help="another checkout to time alternately")
    args = parser.parse_args(argv)

    plan = [sys.executable, "-m", "prism_dr", "plan", "--stack", args.stack]
    ours, eager, theirs = [], [], []
    for _ in range(args.runs):
        ours.append(_timed(plan))
        eager.append(_timed(plan, eager=True))
        if args.baseline:
            theirs.append(_timed(plan, args.baseline.resolve()))
    result = {
        "command": f"prism-dr plan --stack {args.stack}",
        "cores": os.cpu_count(),
        "goal_wall_seconds": GOAL_SECONDS,
        "plan": _summary(ours),
        "plan_eager_imports": _summary(eager),
        **({"baseline": {"dir": str(args.baseline), **_summary(theirs)}} if theirs else {}),
        "provider_imports": _summary(
            [_timed([sys.executable, "-c", _PROVIDERS]) for _ in range(args.runs)]
        ),
    }
    result["goal_met"] = result["plan"]["median_wall"] <= GOAL_SECONDS
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
