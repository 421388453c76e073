"""Runs one AWS drill in a child process for the signal tests: the fake engine mirrors its
state to a file and holds `up` (every create pending) until the drill interrupts it.

    python -m tests.drills.aws.drill_child PLAN_PICKLE STATE_FILE READY_FILE [outlast]

With `outlast` the in-flight creates outlive the graceful cancel (an RDS restore does): the
drill then terminates the engine, which orphans them, and only the sweep removes them. The
resources live on the moto server the parent points the environment at.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import boto3

from drills.aws import reaper
from drills.aws.forward import Direct
from drills.aws.reaper import CloudflareScope, drill_sweep
from drills.aws.runner import run_aws_drill
from tests.fakes.cloud import MotoCloud
from tests.fakes.engine import FakeStackEngine


def main() -> int:
    plan_file, state_file, ready_file = (Path(a) for a in sys.argv[1:4])
    outlast = sys.argv[4:] == ["outlast"]
    plan = pickle.loads(plan_file.read_bytes())
    reaper.INSTANCE_WAIT = reaper.DB_WAIT = {"Delay": 0, "MaxAttempts": 5}
    cloud = MotoCloud()
    engine = FakeStackEngine(
        offline=False,
        state_file=state_file,
        cloud=cloud,
        hold_up=True,
        during_up=ready_file.touch,  # the signal arrives while every create is pending
        cancel_outlasts=30 if outlast else 0,
    )
    clients = lambda service, region: boto3.client(service, region_name=region)  # noqa: E731
    scope = CloudflareScope(cloud.account_id, cloud.zone_id, plan.hostname)
    outcome = run_aws_drill(
        plan,
        engine,
        secrets={},
        access=Direct(credentials=lambda arn: ("u", "p")),
        destroy_backoff=0,
        tunnels=cloud.cloudflare,
        sweep=drill_sweep([plan.region], clients, cloud.cloudflare, scope),
        cancel_wait=0.3,
    )
    print(outcome.record_paths[1])
    return 128 + outcome.interrupted if outcome.interrupted else (0 if outcome.passed else 1)


if __name__ == "__main__":
    sys.exit(main())
