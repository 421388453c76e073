"""AWS drill benchmark, simulated: the orchestration's own cost and the RTO it records.

The fake engine (tests/fakes/engine.py) runs the real drill program under Pulumi's mocks and
reports provider durations on a simulated clock (RDS restore 1,200 s, EC2 host 120 s,
Cloudflare tunnel 30 s); the "restored DB" is a sample Prism database in an ephemeral
PostgreSQL and the "host" the stand-in API on it. Everything else is the real drill: the
wait for /ready through the "hostname", the verification suite, the record, the teardown.

The runner reads the engine's clock (simulated provider time plus real time). Goals: the
recorded RTO is that clock's reading at the first /ready 200, seen by the bench's own probe,
minus the drill's start (issue #17: the clock, not a formula); orchestration (the drill's
wall time minus the checks and the /ready wait) <= 60 s. Reported, never asserted.

    python -m bench.aws_drill [--runs 3] [--scale 1] [--tier standard] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drills.aws.plan import AwsDrillPlan, DrillSettings, stack_config
from drills.aws.runner import run_aws_drill
from drills.local.cluster import EphemeralPostgres
from drills.local.sample import build_sample
from drills.verify.model import Tier
from drills.verify.smoke import probe
from recovery.aws import resolve_target
from recovery.points import Point, Source
from tests.drills.aws.runner_support import StandinStack, access_for, http_url
from tests.fakes.cloud import MemoryCloud
from tests.fakes.engine import DEFAULT_DURATIONS, FakeStackEngine

ORCHESTRATION_GOAL_SECONDS = 60.0
SECRETS = {"CLERK_SECRET_KEY": "bench", "CLERK_PUBLISHABLE_KEY": "bench", "REDIS_URL": "bench"}


def bench_plan(record_dir: Path, tier: Tier) -> AwsDrillPlan:
    """A prod drill plan as the AWS checks would resolve it (no AWS here)."""
    target = resolve_target("prod", None)
    now = datetime.now(UTC)
    run_id = now.strftime("%Y%m%d-%H%M%S")
    cfg = stack_config(target)
    return AwsDrillPlan(
        run_id=run_id,
        stack="prod",
        target=target,
        point=Point.parse("latest"),
        source=Source(
            region=target.region,
            source_identifier=target.db_instance,
            earliest=now - timedelta(days=30),
            latest=now - timedelta(minutes=5),
            description=f"{target.db_instance} point-in-time backups (simulated)",
        ),
        home_region=target.region,
        region=target.region,
        started_at=now,
        expires_at=now + timedelta(hours=6),
        actor="bench",
        tier=tier,
        settings=DrillSettings(),
        cfg=cfg,
        network=None,
        hostname=f"drill-{run_id}.example.com",
        record_dir=record_dir,
    )


def one_run(cluster: Any, database: str, record_dir: Path, tier: Tier) -> dict[str, Any]:
    plan = bench_plan(record_dir, tier)
    local = StandinStack(cluster, database)
    tunnel = plan.cfg.tunnel
    cloud = MemoryCloud(
        account_id=tunnel.account_id,
        zone_id=tunnel.zone_id,
        zone_name=tunnel.hostname.partition(".")[2],
    )
    engine = FakeStackEngine(local=local, cloud=cloud)
    first_ready: list[float] = []

    def get(url: str) -> int | None:
        status = probe(url)
        if status == 200 and not first_ready:
            first_ready.append(engine.clock())
        return status

    started = time.monotonic()
    clock_start = engine.clock()
    outcome = run_aws_drill(
        plan,
        engine,
        secrets=SECRETS,
        access=access_for(cluster, local),
        base_url=http_url,
        get=get,
        ready_interval=0.1,
        destroy_backoff=0,
        clock=engine.clock,
        started=clock_start,
        tunnels=cloud.cloudflare,
    )
    wall = time.monotonic() - started
    phases = {p.name: p.seconds for p in outcome.record.phases}
    ready = phases.get("/ready through the hostname", 0.0)
    verified = phases.get("verified", 0.0)
    provisioning = max(
        DEFAULT_DURATIONS["aws:rds/instance:Instance"],
        DEFAULT_DURATIONS["aws:ec2/instance:Instance"] + DEFAULT_DURATIONS["cloudflare:"],
    )
    return {
        "result": outcome.record.result.value,
        "recorded_rto_seconds": outcome.record.rto_seconds,
        "clock_rto_seconds": round(first_ready[0] - clock_start, 3) if first_ready else None,
        "simulated_provisioning_seconds": provisioning,
        "ready_wait_seconds": ready,
        "verification_seconds": verified,
        "drill_wall_seconds": round(wall, 3),
        "orchestration_seconds": round(wall - ready - verified, 3),
        "left_behind": engine.left(),
        "phases": phases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--tier", type=Tier, default=Tier.STANDARD)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    with EphemeralPostgres() as cluster, tempfile.TemporaryDirectory() as tmp:
        build_sample(cluster.dsn(), scale=args.scale)
        for i in range(args.runs):
            runs.append(one_run(cluster, "postgres", Path(tmp) / f"records-{i}", args.tier))
            print(
                f"run {i + 1}: {json.dumps(runs[-1]['orchestration_seconds'])} s", file=sys.stderr
            )
    orchestration = [r["orchestration_seconds"] for r in runs]
    result = {
        "runs": runs,
        "scale": args.scale,
        "tier": args.tier.value,
        "simulated": {k: v for k, v in DEFAULT_DURATIONS.items()},
        "rto_is_the_clocks": all(
            r["clock_rto_seconds"] is not None
            and abs((r["recorded_rto_seconds"] or 0) - r["clock_rto_seconds"]) < 0.5
            for r in runs
        ),
        "orchestration_median_seconds": statistics.median(orchestration),
        "orchestration_max_seconds": max(orchestration),
        "orchestration_goal_seconds": ORCHESTRATION_GOAL_SECONDS,
        "orchestration_goal_met": max(orchestration) <= ORCHESTRATION_GOAL_SECONDS,
        "nothing_left": all(not r["left_behind"] for r in runs),
    }
    path = args.out / "aws-drill-result.json"
    path.write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


def table(result: dict[str, Any]) -> str:
    first = result["runs"][0]
    lines = [
        f"AWS drill (simulated), {len(result['runs'])} runs, tier {result['tier']}",
        f"  recorded RTO (run 1)     {first['recorded_rto_seconds']:.1f} s "
        f"(the clock at the first /ready 200: {first['clock_rto_seconds']:.1f} s)",
        f"  RTO is the clock's       {result['rto_is_the_clocks']}",
        f"  orchestration median     {result['orchestration_median_seconds']:.1f} s",
        f"  orchestration max        {result['orchestration_max_seconds']:.1f} s "
        f"(goal <= {result['orchestration_goal_seconds']:.0f} s: "
        f"{'met' if result['orchestration_goal_met'] else 'NOT met'})",
        f"  nothing left behind      {result['nothing_left']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
