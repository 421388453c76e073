"""Which checks a tier runs, in what order, and how each becomes a timed CheckResult."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from drills.verify.amcheck import check_amcheck
from drills.verify.app import APP_CHECKS, Api
from drills.verify.context import TIER_RANK, Context, Outcome, Unreachable, failed
from drills.verify.data import check_org_counts, check_row_counts, check_spot_checks
from drills.verify.freshness import check_freshness
from drills.verify.integrity import (
    check_constraints,
    check_indexes,
    check_org_scoping,
    check_sequences,
)
from drills.verify.manifest import Manifest
from drills.verify.model import CheckResult, Status, Tier
from drills.verify.schema import check_migrations, check_restore, check_tables
from drills.verify.smoke import run_smoke_cmd
from drills.verify.target import VerifyTarget


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Context], Outcome]
    tier: Tier  # the lowest tier that runs it


# Quick checks read the catalog or a bounded number of rows; standard ones read whole tables.
DATABASE_CHECKS = (
    Check("restore", check_restore, Tier.QUICK),
    Check("tables", check_tables, Tier.QUICK),
    Check("migrations", check_migrations, Tier.QUICK),
    Check("indexes", check_indexes, Tier.QUICK),
    Check("constraints", check_constraints, Tier.QUICK),
    Check("sequences", check_sequences, Tier.QUICK),
    Check("row_counts", check_row_counts, Tier.QUICK),
    Check("spot_checks", check_spot_checks, Tier.QUICK),
    Check("org_scoping", check_org_scoping, Tier.STANDARD),
    Check("org_counts", check_org_counts, Tier.STANDARD),
    Check("freshness", check_freshness, Tier.QUICK),
    Check("amcheck", check_amcheck, Tier.DEEP),
)


def planned_checks(tier: Tier | str) -> list[str]:
    """Names of the checks `verify` reports for `tier`, in order (for progress displays)."""
    tier = Tier(tier)
    names = [c.name for c in DATABASE_CHECKS if TIER_RANK[c.tier] <= TIER_RANK[tier]]
    return names + list(APP_CHECKS)


def verify(
    target: VerifyTarget,
    manifest: Manifest,
    tier: Tier | str,
    on_check: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run the tier's checks against the target; a defect is a FAIL result, never an exception.

    The application checks come last because the degraded-mode check stops the database.
    """
    tier = Tier(tier)
    results: list[CheckResult] = []

    def emit(name: str, run: Callable[[], Outcome]) -> None:
        started = time.perf_counter()
        outcome = run()
        result = CheckResult(
            name=name, status=outcome.status, detail=target.scrub(outcome.detail),
            seconds=round(time.perf_counter() - started, 3),
        )
        results.append(result)
        if on_check is not None:
            on_check(result)

    ctx = Context(target=target, manifest=manifest, tier=tier)
    try:
        for check in DATABASE_CHECKS:
            if TIER_RANK[check.tier] <= TIER_RANK[tier]:
                emit(check.name, functools.partial(_run_guarded, check, ctx))
    finally:
        ctx.close()  # before the degraded-mode check stops the database under it

    with Api(target) as api:
        emit("app_health", api.health)
        emit("app_ready", api.ready)
        if target.smoke_cmd:  # while the API and its database are up
            result = (
                run_smoke_cmd(target.smoke_cmd, api.base_url, scrub=target.scrub)
                if api.ready_ok
                else CheckResult(
                    name="smoke_cmd",
                    status=Status.FAIL,
                    detail="not run: the API never answered /ready 200",
                    seconds=0.0,
                )
            )
            results.append(result)
            if on_check is not None:
                on_check(result)
        emit("degraded_mode", functools.partial(api.degraded, target.stop_database))
    return results


def _run_guarded(check: Check, ctx: Context) -> Outcome:
    """The check's outcome; database errors become failures, programming errors propagate."""
    try:
        return check.run(ctx)
    except Unreachable as err:
        return failed(str(err))
    except psycopg.Error as err:
        return failed(f"query failed: {ctx.one_line(err)}")
