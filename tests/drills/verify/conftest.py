"""Fixtures for the verification suite: a sample Prism database built once, copied per test.

`CREATE DATABASE ... TEMPLATE` copies the built sample in a fraction of a second, so every test
gets its own "restored" database (and, when it compares, its own "source") to break.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from drills.local.cluster import Cluster
from drills.local.sample import build_sample
from drills.verify import CheckResult, Manifest, Status, Tier, VerifyTarget, load_manifest, verify
from drills.verify.context import Context, Outcome

# Fixed clock: the sample's newest audit log is a minute before NOW; the backup follows it.
NOW = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
BACKUP_POINT = NOW + timedelta(minutes=2)
DRILL_STARTED = BACKUP_POINT + timedelta(minutes=10)

TEMPLATE_DB = "verify_sample_template"
_names = itertools.count()


@pytest.fixture(scope="session")
def sample_template(pg_cluster: Cluster) -> Iterator[str]:
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    build_sample(pg_cluster.dsn(TEMPLATE_DB), scale=0.5, now=NOW)
    yield TEMPLATE_DB
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')


@dataclass
class SampleCopies:
    """Makes copies of the sample; each copy is dropped when the test ends."""

    cluster: Cluster
    template: str
    made: list[str]

    def copy(self) -> str:
        name = f"v{next(_names)}"
        with psycopg.connect(self.cluster.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.made.append(name)
        return self.cluster.dsn(name)


@pytest.fixture
def samples(pg_cluster: Cluster, sample_template: str) -> Iterator[SampleCopies]:
    copies = SampleCopies(pg_cluster, sample_template, [])
    yield copies
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        for name in copies.made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def restored(samples: SampleCopies) -> str:
    """DSN of a pristine copy of the sample: the database a drill restored."""
    return samples.copy()


@pytest.fixture
def manifest() -> Manifest:
    return load_manifest()


@pytest.fixture
def run(manifest: Manifest) -> Iterator[Callable[..., Outcome]]:
    """Runs one check against a database; the contexts are closed when the test ends."""
    opened: list[Context] = []

    def run_check(check, dsn: str, *, manifest: Manifest = manifest, tier: Tier = Tier.STANDARD,
                  **target) -> Outcome:
        ctx = Context(make_target(dsn, **target), manifest, tier)
        opened.append(ctx)
        return check(ctx)

    yield run_check
    for ctx in opened:
        ctx.close()


def make_target(dsn: str, **overrides) -> VerifyTarget:
    fields = dict(dsn=dsn, backup_point=BACKUP_POINT, drill_started=DRILL_STARTED,
                  restore_errors=[])
    fields.update(overrides)
    return VerifyTarget(**fields)


def run_sql(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def run_checks(
    dsn: str, manifest: Manifest, tier: Tier = Tier.STANDARD, **overrides
) -> dict[str, CheckResult]:
    return by_name(verify(make_target(dsn, **overrides), manifest, tier))


def failing(results: dict[str, CheckResult]) -> set[str]:
    return {name for name, r in results.items() if r.status == Status.FAIL}


# Checks that skip when the test gives no API or no source, as most tests do.
NO_INPUT_SKIPS = frozenset({"app_health", "app_ready", "degraded_mode", "org_counts"})


def assert_only(results: dict[str, CheckResult], failed: set[str],
                skips: frozenset[str] = NO_INPUT_SKIPS) -> None:
    """Exactly `failed` fail; every other check passes, or skips for lack of input."""
    assert failing(results) == failed, {n: r.detail for n, r in results.items()
                                        if r.status == Status.FAIL}
    for name, result in results.items():
        if name not in failed:
            allowed = (Status.PASS, Status.SKIP) if name in skips else (Status.PASS,)
            assert result.status in allowed, (name, result.status, result.detail)
