"""Shared fixtures: a real PostgreSQL cluster per test session, a fresh database per test,
and a dump of the sample Prism database."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest

from drills.local.cluster import Cluster, EphemeralPostgres
from drills.local.sample import build_sample
from prism_dr.plan_cmd import EAGER_IMPORTS_ENV

_db_names = itertools.count()

# `prism-dr plan` run in this process (CliRunner) imports the provider SDKs as they are, so the
# suite's own imports never depend on test order; tests/infra/test_slim_import.py proves the
# slim import the command uses by default gives the same plan.
os.environ.setdefault(EAGER_IMPORTS_ENV, "1")

# CI runs this suite with CI=true (and GitHub with GITHUB_ACTIONS=true), which turns on what
# the commands do only in CI (recovery/engine.py refuses a file:// state backend there). The
# suite runs as on a workstation; a test of the CI behaviour sets these itself.
for _ci_variable in ("CI", "GITHUB_ACTIONS"):
    os.environ.pop(_ci_variable, None)


def pytest_sessionstart(session) -> None:
    # A CI timeout or `timeout` sends SIGTERM; as an interrupt, fixtures still stop clusters.
    def _interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(scope="session")
def pg_cluster() -> Cluster:
    with EphemeralPostgres() as cluster:
        yield cluster


@pytest.fixture
def fresh_db(pg_cluster: Cluster) -> str:
    """An empty database of its own; yields its DSN and drops it afterwards."""
    name = f"t{next(_db_names)}"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_cluster.dsn(name)
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sample_dump(pg_cluster: Cluster, tmp_path_factory) -> Path:
    """A custom-format dump of a small sample Prism database (kept in `runner_source`)."""
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE runner_source")
    build_sample(pg_cluster.dsn("runner_source"), scale=0.5)
    path = tmp_path_factory.mktemp("dumps") / "prism.dump"
    subprocess.run(
        [pg_cluster.tool("pg_dump"), "-Fc", f"--file={path}", "runner_source"],
        env={**pg_cluster.env(), "TZ": "UTC"},
        check=True,
    )
    return path
