"""Fixtures for drill tests: a dump of the sample Prism database."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from drills.sample import build_sample

SOURCE_DB = "runner_source"


@pytest.fixture(scope="session")
def sample_dump(pg_cluster, tmp_path_factory) -> Path:
    """A custom-format dump of a small sample Prism database (in `runner_source`), taken now."""
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {SOURCE_DB}")
    build_sample(pg_cluster.dsn(SOURCE_DB), scale=0.5)
    path = tmp_path_factory.mktemp("dumps") / "prism.dump"
    subprocess.run(
        [pg_cluster.tool("pg_dump"), "-Fc", f"--file={path}", SOURCE_DB],
        env={**pg_cluster.env(), "TZ": "UTC"},
        check=True,
    )
    return path
