"""Shared fixtures: a real PostgreSQL cluster per test session, a fresh database per test."""

from __future__ import annotations

import itertools

import psycopg
import pytest

from drills.cluster import Cluster, EphemeralPostgres

_db_names = itertools.count()


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
