import psycopg
import pytest

from drills.cluster import EphemeralPostgres


def test_cluster_answers_and_is_removed_after_exit():
    with EphemeralPostgres() as cluster:
        with psycopg.connect(cluster.dsn()) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        root = cluster.root
        assert (root / "data" / "postmaster.pid").exists()
    assert not root.exists()


def test_cluster_is_removed_when_the_body_raises():
    try:
        with EphemeralPostgres() as cluster:
            root = cluster.root
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert not root.exists()


def test_cluster_listens_on_loopback_only_and_requires_a_password(pg_cluster, fresh_db):
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
    wrong = fresh_db.replace(f":{pg_cluster.password}@", ":not-the-password@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)
