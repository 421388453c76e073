"""The local drill end to end on a real PostgreSQL: pass, fail, refuse, and always tear down."""

from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from drills.local import runner
from drills.local.cluster import TEMP_PREFIX
from drills.local.plan import LocalDrillPlan
from drills.record import SEED_COLUMNS, Result
from drills.verify.model import Status, Tier
from infra.errors import BadInput


@pytest.fixture(autouse=True)
def own_tmpdir(monkeypatch):
    """A TMPDIR of each test's own: other test runs on this machine make clusters too.
    World-traversable: under root the postgres OS user runs the server."""
    path = Path(tempfile.mkdtemp(prefix="prism-runner-test-"))
    path.chmod(0o755)
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _leftover_clusters() -> set[str]:
    """Ephemeral cluster dirs on disk, and the dirs of running postgres servers (each holds a
    port): a drill must leave neither behind."""
    temp = tempfile.gettempdir()
    on_disk = set(glob.glob(f"{temp}/{TEMP_PREFIX}*"))
    servers = subprocess.run(["pgrep", "-a", "postgres"], capture_output=True, text=True)
    running = set(re.findall(rf"-D ({re.escape(temp)}/{TEMP_PREFIX}[^/\s]+)/data", servers.stdout))
    return on_disk | {f"running:{path}" for path in running}


def test_clean_backup_passes_and_is_recorded_with_measured_rto_and_rpo(sample_dump, tmp_path):
    before = _leftover_clusters()
    plan = LocalDrillPlan(backup=sample_dump, record_dir=tmp_path / "records", completed_by="ci")

    outcome = runner.run_local_drill(plan)

    assert outcome.passed, [c for c in outcome.record.checks if c.status == Status.FAIL]
    record = outcome.record
    assert record.result == Result.PASSED
    assert 0 < record.rto_seconds < 600
    assert 0 <= record.rpo_seconds < 600  # dumped moments ago
    assert [p.name for p in record.phases] == ["stand up", "restore", "verify", "teardown"]
    md, js = outcome.record_paths
    assert all(column in md.read_text() for column in SEED_COLUMNS)
    assert json.loads(js.read_text())["completed_by"] == "ci"
    assert outcome.log_path.exists()
    assert _leftover_clusters() == before


def test_truncated_backup_is_a_failed_drill_that_is_still_recorded(sample_dump, tmp_path):
    truncated = tmp_path / "truncated.dump"
    data = sample_dump.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    before = _leftover_clusters()

    outcome = runner.run_local_drill(
        LocalDrillPlan(backup=truncated, record_dir=tmp_path / "records", tier=Tier.QUICK)
    )

    assert not outcome.passed
    restore_check = next(c for c in outcome.record.checks if c.name == "restore")
    assert restore_check.status == Status.FAIL
    assert json.loads(outcome.record_paths[1].read_text())["result"] == "failed"
    assert _leftover_clusters() == before


def test_source_comparison_drill_dumps_the_source_first(pg_cluster, sample_dump, tmp_path):
    # sample_dump built the source database `runner_source`
    outcome = runner.run_local_drill(
        LocalDrillPlan(
            source_dsn=pg_cluster.dsn("runner_source"), record_dir=tmp_path, tier=Tier.STANDARD
        )
    )
    assert outcome.passed
    assert outcome.record.phases[0].name == "dump source"
    assert pg_cluster.password not in outcome.record_paths[1].read_text()
    org_counts = next(c for c in outcome.record.checks if c.name == "org_counts")
    assert org_counts.status == Status.PASS
    assert outcome.record.data_lag_seconds == 0  # a fresh dump lacks nothing of its source
    assert "Data lag (newest source row → newest restored row): 0.0 s" in (
        outcome.record_paths[0].read_text()
    )


def test_an_unknown_backup_point_is_never_rpo_0(monkeypatch, sample_dump, tmp_path):
    # An archive whose header gives no creation time.
    real_inspect = runner.preflight.inspect

    def without_time(*args, **kwargs):
        backup = real_inspect(*args, **kwargs)
        backup.created_at = None
        return backup

    monkeypatch.setattr(runner.preflight, "inspect", without_time)
    outcome = runner.run_local_drill(
        LocalDrillPlan(backup=sample_dump, record_dir=tmp_path, tier=Tier.QUICK)
    )
    record = outcome.record
    assert (record.backup_point, record.rpo_seconds, record.rpo_met) == (None, None, None)
    freshness = next(c for c in record.checks if c.name == "freshness")
    assert freshness.status == Status.WARN
    assert "backup point is unknown" in freshness.detail and "--point" in freshness.detail
    assert "RPO 0" not in outcome.record_paths[0].read_text()
    assert outcome.passed  # a warning, not a failure: the data itself restored fine


@pytest.fixture
def plain_dump(pg_cluster, sample_dump, tmp_path) -> Path:
    """A plain SQL dump of the sample (sample_dump built `runner_source`); no creation time."""
    plain = tmp_path / "prism.sql"
    subprocess.run(
        [pg_cluster.tool("pg_dump"), f"--file={plain}", "runner_source"],
        env=pg_cluster.env(),
        check=True,
    )
    return plain


def test_plain_dump_without_a_point_is_refused_before_anything_is_created(plain_dump, tmp_path):
    before = _leftover_clusters()
    records = tmp_path / "records"

    with pytest.raises(BadInput, match="--point"):
        runner.run_local_drill(LocalDrillPlan(backup=plain_dump, record_dir=records))

    assert not records.exists()
    assert _leftover_clusters() == before


def test_plain_dump_with_a_point_measures_rpo_from_it(plain_dump, tmp_path):
    point = datetime.now(UTC) - timedelta(hours=2)
    outcome = runner.run_local_drill(
        LocalDrillPlan(backup=plain_dump, point=point, record_dir=tmp_path, tier=Tier.QUICK)
    )
    assert 2 * 3600 <= outcome.record.rpo_seconds < 2 * 3600 + 600


def test_an_exception_mid_drill_tears_down_and_is_recorded_as_an_error(
    monkeypatch, sample_dump, tmp_path
):
    def explode(*args, **kwargs):
        raise RuntimeError("verification crashed")

    monkeypatch.setattr(runner, "verify", explode)
    before = _leftover_clusters()

    outcome = runner.run_local_drill(LocalDrillPlan(backup=sample_dump, record_dir=tmp_path / "r"))

    assert _leftover_clusters() == before
    assert outcome.record.result == Result.ERROR
    assert outcome.record.error == "RuntimeError: verification crashed"
    assert outcome.record.rto_seconds is None  # nothing was verified: no RTO to claim
    assert json.loads(outcome.record_paths[1].read_text())["result"] == "error"
    assert outcome.record.phases[-1].name == "teardown"


def test_a_full_disk_during_the_restore_is_an_environment_error(
    monkeypatch, sample_dump, tmp_path
):
    # What pg_restore reports when the cluster's disk fills up mid-restore.
    full = 'could not extend file "base/16384/16402": No space left on device'
    real_restore = runner.restore

    def restore_on_a_full_disk(*args, **kwargs):
        outcome = real_restore(*args, **kwargs)
        outcome.errors.append(f"error returned by PQputCopyData: ERROR:  {full}")
        return outcome

    monkeypatch.setattr(runner, "restore", restore_on_a_full_disk)
    outcome = runner.run_local_drill(
        LocalDrillPlan(backup=sample_dump, record_dir=tmp_path, tier=Tier.QUICK)
    )
    assert outcome.record.result == Result.ERROR
    assert "No space left on device" in outcome.record.error
    assert "the backup was not judged" in outcome.record.notes


def test_keep_leaves_the_restored_database_running_until_its_stop_command(sample_dump, tmp_path):
    outcome = runner.run_local_drill(
        LocalDrillPlan(backup=sample_dump, record_dir=tmp_path, keep=True, tier=Tier.QUICK)
    )
    kept = outcome.kept
    try:
        password = kept.password_file.read_text().strip()
        # the drill connects as a role of its own (prism_drill_…), not postgres
        with psycopg.connect(kept.dsn_without_password, password=password) as conn:
            assert conn.execute("SELECT count(*) FROM organizations").fetchone()[0] > 0
        assert oct(kept.password_file.stat().st_mode & 0o777) == "0o600"
    finally:
        subprocess.run(kept.stop_command, shell=True, check=True, capture_output=True)
    assert not kept.data_dir.exists()


def test_supabase_errors_ignored_by_the_allow_list_are_listed_in_the_record(tmp_path):
    from tests.drills.local.test_restore import PLATFORM_EXTENSION, _supabase_backup

    backup = _supabase_backup(tmp_path, PLATFORM_EXTENSION)
    outcome = runner.run_local_drill(
        LocalDrillPlan(
            backup=backup, point=datetime.now(UTC), record_dir=tmp_path / "r", tier=Tier.QUICK
        )
    )
    ignored = outcome.record.restore_ignored
    assert any("pg_graphql" in line for line in ignored)
    assert "pg_graphql" in outcome.record_paths[0].read_text()
    assert json.loads(outcome.record_paths[1].read_text())["restore_ignored"] == ignored


@pytest.mark.parametrize(("exit_code", "status"), [(0, Status.PASS), (3, Status.FAIL)])
def test_the_smoke_command_is_judged_against_the_started_api(
    sample_dump, tmp_path, exit_code, status
):
    import sys

    from drills.local.demo import standin_api_command

    # The smoke test sees the API the drill started on the restored database, via BASE_URL.
    probe = (
        "import os,sys,urllib.request as u; "
        "assert u.urlopen(os.environ['BASE_URL'] + '/ready').status == 200; "
        f"sys.exit({exit_code})"
    )
    plan = LocalDrillPlan(
        backup=sample_dump,
        record_dir=tmp_path / "records",
        tier=Tier.QUICK,
        api_cmd=standin_api_command(),
        smoke_cmd=f'{sys.executable} -c "{probe}"',
    )
    outcome = runner.run_local_drill(plan)
    smoke = next(c for c in outcome.record.checks if c.name == "smoke_cmd")
    assert smoke.status == status and smoke.detail.startswith(f"exit {exit_code}")
    assert outcome.record.result == (Result.PASSED if exit_code == 0 else Result.FAILED)


def test_a_smoke_command_without_an_api_is_refused(sample_dump, tmp_path):
    plan = LocalDrillPlan(backup=sample_dump, record_dir=tmp_path / "records", smoke_cmd="true")
    with pytest.raises(BadInput, match="--smoke-cmd needs an API to test"):
        runner.run_local_drill(plan)
    assert not (tmp_path / "records").exists()
