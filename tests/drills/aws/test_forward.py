"""The SSM port forward, with a stand-in `aws` CLI that relays like the Session Manager
plugin (tests/drills/aws/fake_aws_cli.py): the DSN it hands out reaches the database, a
target that is not connected and a port that never opens are one-line failures, and the
session always ends with the block."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg
import pytest

from drills.aws.forward import Direct, ForwardError, SsmPortForward, check_forward_tools
from infra.errors import BadInput

FAKE = Path(__file__).with_name("fake_aws_cli.py")


@pytest.fixture
def aws_cli(tmp_path, monkeypatch):
    script = tmp_path / "aws"
    script.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_AWS_PIDFILE", str(tmp_path / "pid"))
    return script


def outputs(cluster, database="postgres"):
    return {
        "apiHostId": "i-0123456789abcdef0",
        "dbAddress": cluster.host,
        "dbPort": cluster.port,
        "dbName": database,
        "dbMasterSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-x",
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: reaped by Popen.wait in the forwarder.
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def forward(cluster, aws_cli, **kwargs):
    return SsmPortForward(
        region="us-east-1",
        credentials=lambda arn: (cluster.user, cluster.password),
        aws_cli=str(aws_cli),
        **kwargs,
    )


def test_the_forward_reaches_the_database_and_ends_with_the_block(pg_cluster, aws_cli, tmp_path):
    fwd = forward(pg_cluster, aws_cli)
    with fwd.open(outputs(pg_cluster)) as dsn:
        assert "host=127.0.0.1" in dsn and f"port={pg_cluster.port}" not in dsn
        assert "sslmode=require" in dsn
        # The stand-in cluster has no TLS; the real RDS one forces it.
        with psycopg.connect(dsn.replace("sslmode=require", "sslmode=disable")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        pid = int((tmp_path / "pid").read_text())
        plugin = int((tmp_path / "pid.plugin").read_text())
        assert _alive(pid) and _alive(plugin)
    # The whole session's group: the plugin too, which outlives an `aws` terminated alone.
    assert not _alive(pid)
    assert not _alive(plugin)


def test_a_target_that_is_not_connected_is_one_line(pg_cluster, aws_cli, monkeypatch):
    monkeypatch.setenv("FAKE_AWS_MODE", "refuse")
    fwd = forward(pg_cluster, aws_cli)
    with (
        pytest.raises(ForwardError, match=r"ended \(exit 254\).*TargetNotConnected"),
        fwd.open(outputs(pg_cluster)),
    ):
        pass


def test_a_port_that_never_opens_times_out_and_the_session_is_ended(
    pg_cluster, aws_cli, monkeypatch, tmp_path
):
    monkeypatch.setenv("FAKE_AWS_MODE", "hang")
    fwd = forward(pg_cluster, aws_cli, ready_timeout=1.0, sleep=lambda s: None)
    with pytest.raises(ForwardError, match="did not open"), fwd.open(outputs(pg_cluster)):
        pass
    assert not _alive(int((tmp_path / "pid").read_text()))


def test_direct_builds_the_dsn_from_the_managed_secret(pg_cluster):
    seen = []

    def credentials(arn):
        seen.append(arn)
        return pg_cluster.user, pg_cluster.password

    direct = Direct(credentials=credentials, sslmode="disable")
    with direct.open(outputs(pg_cluster)) as dsn, psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (pg_cluster.user,)
    assert seen == ["arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-x"]


def test_no_secret_arn_is_a_forward_error(pg_cluster):
    direct = Direct(credentials=lambda arn: ("u", "p"))
    with (
        pytest.raises(ForwardError, match="no dbMasterSecretArn"),
        direct.open({"dbAddress": "h", "dbPort": 5432}),
    ):
        pass


def test_missing_tools_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BadInput, match="aws and session-manager-plugin not found"):
        check_forward_tools()
