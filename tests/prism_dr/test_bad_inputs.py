"""Bad input to `prism-dr drill`, as a new user types it: exit 2, one line on stderr naming
the input and the fix, no traceback, and nothing created — no record, no cluster, no temp dir.

The command runs in-process (`prism_dr.app.main`), which is what the console script calls."""

from __future__ import annotations

import contextlib
import glob
import gzip
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from drills.local.cluster import TEMP_PREFIX
from prism_dr.app import main


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    out, err = capsys.readouterr()
    return caught.value.code, out, err


def one_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("prism-dr: error: ")
    return lines[0]


def cluster_dirs() -> set[str]:
    """What a drill leaves in TMPDIR when it does not clean up: its own TMPDIR per test."""
    return set(glob.glob(os.path.join(tempfile.gettempdir(), f"{TEMP_PREFIX}*"))) | set(
        glob.glob(os.path.join(tempfile.gettempdir(), "prism-drill-*"))
    )


@pytest.fixture
def own_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TMPDIR of this test's own (other test runs on the machine create clusters too),
    traversable by the postgres OS user that runs the cluster under root."""
    path = Path(tempfile.mkdtemp(prefix="prism-bad-inputs-"))
    path.chmod(0o755)
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    yield path
    leftovers = sorted(p.name for p in path.iterdir())
    shutil.rmtree(path, ignore_errors=True)
    assert leftovers == []


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_tmpdir: Path) -> Path:
    """A current directory holding a few inputs; PRISM_DR_* settings of the caller removed."""
    for name in list(os.environ):
        if name.startswith("PRISM_DR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.sql").write_text("CREATE TABLE t (id int);\n")
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.dump").write_bytes(b"")
    (tmp_path / "dumpdir").mkdir()
    (tmp_path / "bad.yaml").write_text("tables: [unclosed\n")
    # A gzip header and trailer with a body that is not deflate data.
    good = gzip.compress(b"-- PostgreSQL database cluster dump\n" * 100)
    (tmp_path / "corrupt.backup.gz").write_bytes(good[:10] + b"\xff" * 64 + good[-8:])
    (tmp_path / "cut.sql.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "custom-in-gzip.dump.gz").write_bytes(gzip.compress(b"PGDMP\x01\x0e\x00" * 64))
    os.mkfifo(tmp_path / "fifo.dump")
    return tmp_path


LONG = "d" * 5000
DEEP = "/".join(["d" * 200] * 25)  # every name legal, the whole path too long

CASES = [
    # (arguments, text the line must hold)
    (["drill"], "--backup"),
    (["drill", "--backup", "missing.dump"], "missing.dump"),
    (["drill", "--backup", "junk.bin"], "junk.bin"),
    (["drill", "--backup", "empty.dump"], "empty"),
    (["drill", "--backup", "dumpdir"], "toc.dat"),
    (["drill", "--backup", "fifo.dump"], "FIFO"),
    (["drill", "--backup", "/dev/null"], "character device"),
    (["drill", "--backup", "corrupt.backup.gz"], "corrupt.backup.gz"),
    (["drill", "--backup", "cut.sql.gz"], "cut.sql.gz"),
    (["drill", "--backup", "custom-in-gzip.dump.gz"], "gunzip"),
    (["drill", "--backup", LONG], "255"),
    (["drill", "--backup", DEEP], "4,095"),
    (["drill", "--backup", "x.sql/inside.dump"], "not a directory"),
    (["drill", "--backup", "new\nline.dump"], "new\\nline.dump"),
    (["drill", "--backup", os.fsdecode(b"caf\xe9.dump")], "caf\\xe9.dump"),
    (["drill", "--backup", "x.sql"], "--point"),
    (["drill", "--backup", "x.sql", "--tier", "bogus"], "--tier"),
    (["drill", "--backup", "x.sql", "--point", "yesterday"], "--point"),
    (["drill", "--backup", "x.sql", "--point", ""], "--point"),
    (["drill", "--backup", "x.sql", "--point", "2026-01-01T00:00:00"], "UTC offset"),
    (["drill", "--backup", "x.sql", "--point", "0001-01-01T00:30:00+01:00"], "out of range"),
    (["drill", "--backup", "x.sql", "--point", "9999-12-31T23:30:00-01:00"], "out of range"),
    (["drill", "--backup", "x.sql", "--point", "1970-01-01T00:00:00Z"], "before PostgreSQL"),
    (["drill", "--backup", "x.sql", "--point", "2999-01-01T00:00:00Z"], "future"),
    (["drill", "--demo", "--backup", "x.sql"], "--demo"),
    (["drill", "--demo", "--source-dsn", "postgresql://u@h/db"], "--demo"),
    (["drill", "--backup", "x.sql", "--api-url", "localhost:8080"], "--api-url"),
    (["drill", "--backup", "x.sql", "--api-url", "http://[::1"], "--api-url"),
    (["drill", "--backup", "x.sql", "--api-url", "http://127.0.0.1:99999"], "out of range"),
    (["drill", "--backup", "x.sql", "--api-url", "http://127.0.0.1:http"], "--api-url"),
    (["drill", "--backup", "x.sql", "--api-url", "http://"], "no host"),
    (["drill", "--backup", "x.sql", "--api-url", "ftp://127.0.0.1/"], "http(s)"),
    (["drill", "--backup", "x.sql", "--api-url", "http://127.0.0.1:0/"], "port 0"),
    (
        ["drill", "--backup", "x.sql", "--api-url", "http://h", "--api-cmd", "serve"],
        "--api-cmd",
    ),
    (["drill", "--backup", "x.sql", "--api-cmd", "  "], "--api-cmd"),
    (["drill", "--backup", "x.sql", "--manifest", "nope.yaml"], "nope.yaml"),
    (["drill", "--backup", "x.sql", "--manifest", "bad.yaml"], "bad.yaml"),
    (["drill", "--backup", "x.sql", "--manifest", "dumpdir"], "dumpdir"),
    (["drill", "--backup", "x.sql", "--environment", "staging/us"], "--environment"),
    (["drill", "--backup", "x.sql", "--environment", ""], "--environment"),
    (["drill", "--backup", "x.sql", "--environment", "e" * 65], "--environment"),
    (["drill", "--backup", "x.sql", "--record-dir", "/proc/records"], "--record-dir"),
    (["drill", "--backup", "x.sql", "--record-dir", "x.sql"], "--record-dir"),
    (["drill", "--backup", "x.sql", "--record-dir", "x.sql/sub"], "--record-dir"),
    (["drill", "--backup", "x.sql", "--record-dir", LONG], "255"),
    (["drill", "--backup", "x.sql", "--record-dir", DEEP], "4,095"),
    (["drill", "--backup", "x.sql", "--record-dir", "/sys/records"], "--record-dir"),
    (["drill", "--backup", "x.sql", "--jobs", "0"], "--jobs"),
    (["drill", "--backup", "x.sql", "--jobs", "many"], "--jobs"),
    (["drill", "--backup", "x.sql", "--no-such-flag"], "--no-such-flag"),
    (["drill", "log", "--record-dir", "no-such-dir"], "no-such-dir"),
    (["drill", "log", "--record-dir", "/sys"], "could not be written"),
    (["drill", "log", "--record-dir", "x.sql"], "x.sql"),
    (["no-such-command"], "no-such-command"),
    (["drill", "reap", "--local", "--older-than", "soon"], "--older-than"),
    (["drill", "reap", "--local", "--older-than", "0h"], "longer than zero"),
    (["drill", "reap", "--local", "--older-than", "6h later"], "--older-than"),
    (["drill", "reap", "--local", "--older-than", "99999999999d"], "too long"),
    (["drill", "reap", "--local", "--region", "eu-west-1"], "--region"),
    (["drill", "reap", "--local", "--skip-stack", "drill-1"], "--skip-stack"),
]


@pytest.mark.parametrize(("argv", "names"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(workdir, capsys, argv, names):
    before = sorted(p.name for p in workdir.iterdir())
    clusters = cluster_dirs()

    code, out, err = run(argv, capsys)

    line = one_line(code, err)
    assert names in line
    assert out == ""
    assert sorted(p.name for p in workdir.iterdir()) == before
    assert cluster_dirs() == clusters


def test_a_corrupt_record_makes_drill_log_exit_2_naming_it(workdir, capsys):
    records = workdir / "records"
    records.mkdir()
    (records / "2026-01-02-local.json").write_text('{"schema_version": 1, "started_at": ')
    code, _, err = run(["drill", "log", "--record-dir", str(records)], capsys)
    assert "2026-01-02-local.json" in one_line(code, err)
    assert sorted(p.name for p in records.iterdir()) == ["2026-01-02-local.json"]


# --- the machine gives out once the drill has started ---------------------------------------


def test_an_environment_failure_mid_drill_is_recorded_as_an_error_and_exits_2(
    workdir, capsys, monkeypatch, sample_dump
):
    import errno

    from drills.local import runner

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner, "verify", disk_full)
    clusters = cluster_dirs()
    records = workdir / "records"

    code, _, err = run(
        ["drill", "--backup", str(sample_dump), "--record-dir", str(records)], capsys
    )

    line = one_line(code, err)  # no progress line before it
    assert "No space left on device" in line
    assert "environment error" in line
    (json_path,) = records.glob("*-local.json")
    assert str(json_path) in line
    assert '"result": "error"' in json_path.read_text()
    assert cluster_dirs() == clusters


def test_a_full_record_dir_leaves_neither_record_file(workdir, capsys, monkeypatch, sample_dump):
    import errno

    real_link = os.link

    def json_does_not_fit(src, dst, *args, **kwargs):
        if str(dst).endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", json_does_not_fit)
    records = workdir / "records"

    code, _, err = run(
        ["drill", "--backup", str(sample_dump), "--record-dir", str(records), "--tier", "quick"],
        capsys,
    )

    line = one_line(code, err)
    assert "--record-dir" in line and "No space left on device" in line
    assert list(records.iterdir()) == []


# --- an unusable comparison source (item 12) -----------------------------------------------

SOURCE_SECRET = "s3cret-Source-pw"


def _closed_port() -> int:
    from drills.ports import free_port

    return free_port()  # bound and released: nothing listens there


@pytest.mark.parametrize(
    ("dsn", "names"),
    [
        (lambda c: f"postgresql://prism:{SOURCE_SECRET}@127.0.0.1:{_closed_port()}/prism",
         "Connection refused"),
        (lambda c: f"postgresql://postgres:{SOURCE_SECRET}@127.0.0.1:{c.port}/postgres",
         "password authentication failed"),
        (lambda c: c.dsn("no_such_database"), "no_such_database"),
        (lambda c: f"postgresql://prism:{SOURCE_SECRET}@127.0.0.1:99999/prism", "port"),
        (lambda c: f"postgresql://prism:{SOURCE_SECRET}@[::1", "not a valid connection string"),
        (lambda c: f"host=127.0.0.1 password='{SOURCE_SECRET}", "not a valid connection string"),
        (lambda c: "not a dsn", "not a valid connection string"),
    ],
    ids=["closed-port", "wrong-password", "no-database", "port-99999", "bad-uri", "bad-quote",
         "not-a-dsn"],
)
@pytest.mark.parametrize("with_backup", [True, False], ids=["next-to-backup", "alone"])
def test_an_unusable_source_is_refused_before_anything_is_created(
    workdir, capsys, pg_cluster, sample_dump, dsn, names, with_backup
):
    source = dsn(pg_cluster)
    argv = ["drill", "--source-dsn", source, "--record-dir", "records"]
    if with_backup:
        argv += ["--backup", str(sample_dump)]
    before = sorted(p.name for p in workdir.iterdir())
    clusters = cluster_dirs()

    code, out, err = run(argv, capsys)

    line = one_line(code, err)
    assert "--source-dsn" in line
    assert names in line
    assert SOURCE_SECRET not in err + out
    assert pg_cluster.password not in err + out
    assert sorted(p.name for p in workdir.iterdir()) == before
    assert cluster_dirs() == clusters


def test_a_really_full_tmpdir_mid_restore_is_an_environment_error(tmp_path):
    """A tmpfs as TMPDIR, filled up while the restore runs: pg_restore/psql fail for want of
    space, which is the machine's fault, not the backup's."""
    import subprocess
    import sys
    import time

    fs = Path(tempfile.mkdtemp(prefix="prism-full-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256m,mode=0755", "tmpfs", str(fs)],
        capture_output=True, text=True,
    )
    if mounted.returncode != 0:
        fs.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): the simulated "
                    "full-disk tests above cover the same path")
    script = tmp_path / "big.sql"
    script.write_text(
        "-- PostgreSQL database dump\n"
        "CREATE TABLE t (id int, body text);\n"
        "SELECT pg_sleep(3);\n"  # the test fills the disk meanwhile
        "INSERT INTO t SELECT g, repeat('x', 500) FROM generate_series(1, 200000) g;\n"
        "-- PostgreSQL database dump complete\n"
    )
    records = tmp_path / "records"
    proc = subprocess.Popen(
        [sys.executable, "-m", "prism_dr", "drill", "--backup", str(script),
         "--point", "2026-01-01T00:00:00Z", "--record-dir", str(records)],
        env={**os.environ, "TMPDIR": str(fs), "PRISM_DR_STATE_DIR": str(tmp_path / "s")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _psql_of(proc.pid):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with open(fs / "filler", "wb", buffering=0) as filler:  # fill it to the last block
            chunk = b"\0" * (1 << 20)
            with contextlib.suppress(OSError):
                while True:
                    filler.write(chunk)
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 4096)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # a failed test: stop the drill the way a terminal would
            proc.terminate()
            proc.communicate(timeout=60)
        (fs / "filler").unlink(missing_ok=True)
        leftovers = sorted(p.name for p in fs.iterdir())
        subprocess.run(["umount", "--lazy", str(fs)], check=True)
        fs.rmdir()

    line = one_line(proc.returncode, err)
    assert "No space left on device" in line and "environment error" in line
    (record,) = records.glob("*-local.json")
    assert '"result": "error"' in record.read_text()
    assert leftovers == []  # the cluster was torn down all the same


def _psql_of(drill_pid: int) -> bool:
    from drills.local.owner import OWNER_ENV

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "psql":
                continue
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"{OWNER_ENV}={drill_pid}:".encode() in environ:
            return True
    return False
