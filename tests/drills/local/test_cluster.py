import psycopg
import pytest

from drills.local.cluster import EphemeralPostgres


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


def test_a_long_tmpdir_does_not_break_the_cluster():
    # A Unix socket path may hold 107 bytes; under this TMPDIR it would need about 150.
    import shutil
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp(prefix="prism-long-tmpdir-"))
    long_dir = base / ("x" * 60) / ("y" * 40)
    long_dir.mkdir(parents=True)
    for path in (base, base / ("x" * 60), long_dir):
        path.chmod(0o755)  # the postgres OS user runs the server when tests run as root
    try:
        with EphemeralPostgres(parent_dir=str(long_dir)) as cluster:
            assert len(str(cluster.root / ".s.PGSQL.65535")) > 107
            with psycopg.connect(cluster.dsn()) as conn:
                assert conn.execute("show unix_socket_directories").fetchone() == ("",)
        assert list(long_dir.iterdir()) == []
    finally:
        shutil.rmtree(base)


def test_a_cluster_is_marked_with_its_owner_while_it_runs(monkeypatch, tmp_path):
    import os

    from drills.local import owner

    monkeypatch.setenv(owner.STATE_DIR_ENV, str(tmp_path))
    with EphemeralPostgres() as cluster:
        marker = owner.read_marker(cluster.root)
        assert (marker.tool, marker.kind, marker.kept) == ("prism-dr", "cluster", False)
        assert marker.owner == owner.current_owner() and marker.owner.pid == os.getpid()
        assert owner.registered_paths() == [cluster.root]
        # The server carries the tag, so the reaper can tell it is this drill's.
        pid = int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])
        assert owner.process_tag(pid) == marker.owner_tag
    assert owner.registered_paths() == []
