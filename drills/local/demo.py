"""The demo drill: a sample Prism database in its own ephemeral cluster acts as production.

It is dumped, restored into a second cluster, compared with the source and probed through a
stand-in of the API, so a newcomer sees every check run without any account or backup.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from drills.local.cluster import EphemeralPostgres
from drills.local.sample import build_sample

# Demo records are not audit evidence, so they stay out of docs/audit/restore-drills/.
DEMO_RECORD_DIR = Path("demo-records")
SOURCE_DB = "prism"


@contextmanager
def sample_source(scale: float = 1.0) -> Iterator[str]:
    """A running sample Prism database; yields its DSN and removes the cluster afterwards."""
    with EphemeralPostgres() as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {SOURCE_DB}")
        build_sample(cluster.dsn(SOURCE_DB), scale=scale)
        yield cluster.dsn(SOURCE_DB)


def standin_api_command() -> str:
    """Runs `drills.local.standin_api`, which answers /health and /ready as Prism's API does."""
    return f"{shlex.quote(sys.executable)} -m drills.local.standin_api --port {{port}}"
