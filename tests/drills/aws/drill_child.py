"""Runs one AWS drill in a child process for the signal tests: the fake engine mirrors its
state to a file and blocks inside `up` (every create pending) until a signal arrives.

    python -m tests.drills.aws.drill_child PLAN_PICKLE STATE_FILE READY_FILE
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

from drills.aws.forward import Direct
from drills.aws.runner import run_aws_drill
from tests.fakes.engine import FakeStackEngine


def main() -> int:
    plan_file, state_file, ready_file = (Path(a) for a in sys.argv[1:4])
    plan = pickle.loads(plan_file.read_bytes())

    def block() -> None:
        ready_file.touch()
        time.sleep(60)  # the signal arrives here, while every create is pending

    engine = FakeStackEngine(offline=False, state_file=state_file, during_up=block)
    outcome = run_aws_drill(
        plan,
        engine,
        secrets={},
        access=Direct(credentials=lambda arn: ("u", "p")),
        destroy_backoff=0,
    )
    print(outcome.record_paths[1])
    return 128 + outcome.interrupted if outcome.interrupted else (0 if outcome.passed else 1)


if __name__ == "__main__":
    sys.exit(main())
