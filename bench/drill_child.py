"""Runs one local drill in a process of its own and writes its figures as JSON.

`bench.restore` starts this as a subprocess so that `getrusage(RUSAGE_SELF).ru_maxrss` is the
peak memory of the drill alone, not of the benchmark that built the sample beforehand.

    python -m bench.drill_child DUMP RECORD_DIR JOBS TIER RESULT_JSON
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    dump, record_dir, jobs, tier, result_path = argv
    # Imported here so that the import time is not part of the measured drill, as it would
    # not be for a long-running caller; the process-level wall time is measured by the parent.
    from drills.local.plan import LocalDrillPlan
    from drills.local.runner import run_local_drill
    from drills.verify.model import Tier

    plan = LocalDrillPlan(
        backup=Path(dump),
        tier=Tier(tier),
        record_dir=Path(record_dir),
        jobs=int(jobs),
        environment="bench",
        notes="restore benchmark (bench/restore.py)",
    )
    started = time.monotonic()
    outcome = run_local_drill(plan)
    wall = time.monotonic() - started

    record = outcome.record
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    tools_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "wall_seconds": round(wall, 3),
        "result": str(record.result),
        "rto_seconds": record.rto_seconds,
        "phases": {phase.name: phase.seconds for phase in record.phases},
        "checks": [
            {"name": c.name, "status": str(c.status), "seconds": c.seconds, "detail": c.detail}
            for c in record.checks
        ],
        "record": str(outcome.record_paths[1]),
        # ru_maxrss is in KiB on Linux. RUSAGE_CHILDREN is the largest waited-for descendant:
        # pg_restore, initdb, pg_ctl (the server itself daemonises and is not counted).
        "peak_rss_bytes": self_usage.ru_maxrss * 1024,
        "tools_peak_rss_bytes": tools_usage.ru_maxrss * 1024,
    }
    Path(result_path).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
