"""Deep tier: pg_amcheck finds on-disk corruption that every other check reads past."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import psycopg

from drills.local.cluster import EphemeralPostgres
from drills.verify import Manifest, Status, Tier, amcheck
from drills.verify.amcheck import JOBS, check_amcheck, find_pg_amcheck
from infra.errors import BadInput
from tests.drills.verify.conftest import run_checks


def test_corrupt_heap_page_fails_amcheck():
    # A cluster of its own: the test writes garbage into a data file and restarts the server.
    with EphemeralPostgres() as cluster:
        dsn = cluster.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)")
            conn.execute("INSERT INTO ledger SELECT g, 'entry ' || g "
                         "FROM generate_series(1, 500) g")
            relpath = conn.execute("SELECT pg_relation_filepath('ledger')").fetchone()[0]
        manifest = Manifest(tables={"ledger": {}}, migrations={"table": None})
        assert run_checks(dsn, manifest, Tier.DEEP)["amcheck"].status == Status.PASS
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")  # reads set hint bits; write those pages out now

        # Point the first page's line pointers past the end of the page. The page is clean,
        # so no checkpoint rewrites it, and the restart empties shared buffers.
        with open(cluster.data_dir / relpath, "r+b") as heap:
            heap.seek(24)  # after the page header
            heap.write(struct.pack("<I", _line_pointer(offset=8400, length=40)) * 8)
        # The restarted server must log to a file: an inherited pipe would never close.
        subprocess.run(
            [str(cluster.bindir / "pg_ctl"), "-D", str(cluster.data_dir), "-m", "fast", "-w",
             "-t", "60", "-l", str(cluster.root / "server.log"), "restart"],
            user="postgres" if os.geteuid() == 0 else None, check=True, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=90,
        )
        results = run_checks(dsn, manifest, Tier.DEEP)
    amcheck = results["amcheck"]
    assert amcheck.status == Status.FAIL
    # Rows are gone, yet counting and fetching by key read straight past the damage.
    assert results["row_counts"].status == Status.PASS
    assert results["spot_checks"].status == Status.PASS
    assert amcheck.detail.startswith("pg_amcheck exit 2: ")
    assert "ledger" in amcheck.detail
    assert ("lacks matching index tuple" in amcheck.detail
            or "ends beyond maximum page offset" in amcheck.detail)
    assert cluster.password not in amcheck.detail


def _line_pointer(offset: int, length: int) -> int:
    """An ItemIdData word: lp_off (15 bits), lp_flags (2 bits, 1 = normal), lp_len (15 bits)."""
    return offset | (1 << 15) | (length << 17)


# -- what the check makes of pg_amcheck's answer ----------------------------------------------
#
# A stand-in pg_amcheck prints what the real one prints. Formats from PostgreSQL's
# src/bin/pg_amcheck/pg_amcheck.c: a heap problem is a relation line ending in ":" and its
# message indented on the next line (captured from pg_amcheck 15 on the corrupt page above);
# a B-tree error is `btree index "db.schema.name":` followed by the server's error message,
# every line of it indented (ERROR, then DETAIL or HINT). The NOTICE and the error without a
# database are the real tool's, captured the same way.

HEAP_PROBLEM = ('heap table "postgres.public.ledger", block 0, offset {n}:\n'
                "    line pointer to page offset 8400 with length 40 ends beyond maximum page "
                "offset 8192\n")
BTREE_PROBLEM = (
    'btree index "postgres.public.ledger_pkey":\n'
    '    ERROR:  heap tuple (0,1) from table "ledger" lacks matching index tuple within index '
    '"ledger_pkey"\n'
    "    HINT:  Retrying verification using the function bt_index_parent_check() might provide "
    "a more specific error.\n")
NOTICE = 'NOTICE:  extension "amcheck" already exists, skipping\n'


def stand_in(tmp_path: Path, code: int, stdout: str = "", stderr: str = "") -> Path:
    """A bin directory whose pg_amcheck answers `stdout`/`stderr` and exits `code`, keeping its
    arguments and the PGPASSWORD it was given."""
    bindir = tmp_path / "bin"
    bindir.mkdir(parents=True)
    (tmp_path / "stdout").write_text(stdout)
    (tmp_path / "stderr").write_text(stderr)
    script = bindir / "pg_amcheck"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{tmp_path}/argv"\n'
        f'printf "%s" "$PGPASSWORD" > "{tmp_path}/pgpassword"\n'
        f'readlink /proc/$$/fd/0 > "{tmp_path}/stdin"\n'
        f'cat "{tmp_path}/stdout"\n'
        f'cat "{tmp_path}/stderr" >&2\n'
        f"exit {code}\n")
    script.chmod(0o755)
    return bindir


def deep(restored, manifest, run, bindir):
    return run(check_amcheck, restored, manifest=manifest, tier=Tier.DEEP, pg_bindir=bindir)


def test_a_clean_database_passes_naming_how_it_was_checked(restored, manifest, run):
    assert run(check_amcheck, restored, manifest=manifest, tier=Tier.DEEP) == (
        Status.PASS,
        f"pg_amcheck (-j {JOBS} --heapallindexed) found no corruption in heap tables or B-tree "
        "indexes")


def test_the_password_reaches_pg_amcheck_by_environment_never_its_arguments(
    restored, manifest, run, tmp_path
):
    bindir = stand_in(tmp_path, 0, stderr=NOTICE)
    assert deep(restored, manifest, run, bindir).status is Status.PASS  # a NOTICE is no problem
    password = psycopg.conninfo.conninfo_to_dict(restored)["password"]
    argv = (tmp_path / "argv").read_text().splitlines()
    assert (tmp_path / "pgpassword").read_text() == password
    assert password not in " ".join(argv)
    assert argv[:3] == [f"--jobs={JOBS}", "--heapallindexed", "--install-missing"]
    target = psycopg.conninfo.conninfo_to_dict(argv[3])
    assert target["dbname"] == psycopg.conninfo.conninfo_to_dict(restored)["dbname"]
    assert "password" not in target


def test_every_problem_is_counted_and_the_first_named_whole(restored, manifest, run, tmp_path):
    answer = "".join(HEAP_PROBLEM.format(n=n) for n in (1, 2)) + BTREE_PROBLEM
    assert deep(restored, manifest, run, stand_in(tmp_path, 2, stdout=answer)) == (
        Status.FAIL,
        'pg_amcheck exit 2: 3 problem(s); first: heap table "postgres.public.ledger", block 0, '
        "offset 1: line pointer to page offset 8400 with length 40 ends beyond maximum page "
        "offset 8192")


def test_an_index_error_is_named_by_its_first_line(restored, manifest, run, tmp_path):
    assert deep(restored, manifest, run, stand_in(tmp_path, 2, stdout=BTREE_PROBLEM)) == (
        Status.FAIL,
        'pg_amcheck exit 2: 1 problem(s); first: btree index "postgres.public.ledger_pkey": '
        'ERROR: heap tuple (0,1) from table "ledger" lacks matching index tuple within index '
        '"ledger_pkey"')


def test_pg_amcheck_failing_says_what_it_said_or_that_it_said_nothing(
    restored, manifest, run, tmp_path
):
    said = 'pg_amcheck: error: no connectable databases to check matching "nosuchdb"\n'
    assert deep(restored, manifest, run, stand_in(tmp_path / "a", 1, stderr=said)) == (
        Status.FAIL, f"pg_amcheck exit 1: 1 problem(s); first: {said.strip()}")
    assert deep(restored, manifest, run, stand_in(tmp_path / "b", 1, stderr=NOTICE)) == (
        Status.FAIL, "pg_amcheck exit 1 without output")
    # Exit 0 with something to say is not a clean bill either.
    warning = "pg_amcheck: warning: skipping database \"template0\": cannot connect\n"
    assert deep(restored, manifest, run, stand_in(tmp_path / "c", 0, stderr=warning)) == (
        Status.FAIL, f"pg_amcheck exit 0: 1 problem(s); first: {warning.strip()}")


def test_the_first_problem_is_cut_to_a_line_and_masked(restored, manifest, run, tmp_path):
    password = psycopg.conninfo.conninfo_to_dict(restored)["password"]
    said = f"pg_amcheck: error: connection failed for password {password} " + "x" * 400 + "\n"
    outcome = deep(restored, manifest, run, stand_in(tmp_path, 1, stderr=said))
    assert outcome.status is Status.FAIL
    first = outcome.detail.removeprefix("pg_amcheck exit 1: 1 problem(s); first: ")
    assert len(first) == 300 and password not in outcome.detail


def test_pg_amcheck_is_looked_for_in_the_bin_directory_then_path_then_the_newest_install(
    tmp_path, monkeypatch
):
    given = stand_in(tmp_path / "given", 0)
    on_path = stand_in(tmp_path / "path", 0)
    newest = stand_in(tmp_path / "newest", 0)
    monkeypatch.setenv("PATH", str(on_path))
    monkeypatch.setattr(amcheck, "default_bindir", lambda: newest)
    assert find_pg_amcheck(given) == str(given / "pg_amcheck")
    assert find_pg_amcheck(tmp_path) == str(on_path / "pg_amcheck")  # no pg_amcheck there
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_pg_amcheck(None) == str(newest / "pg_amcheck")
    monkeypatch.setattr(amcheck, "default_bindir", lambda: tmp_path)
    assert find_pg_amcheck(None) is None


def test_without_pg_amcheck_anywhere_the_deep_check_skips_saying_what_to_install(
    restored, manifest, run, tmp_path, monkeypatch
):
    def no_installation():
        raise BadInput("no PostgreSQL installation found")

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(amcheck, "default_bindir", no_installation)
    assert find_pg_amcheck(None) is None
    assert deep(restored, manifest, run, tmp_path) == (
        Status.SKIP, "pg_amcheck not found: install the PostgreSQL client (15+) or give its bin "
                     "directory")


def test_a_database_reached_without_a_password_is_checked_and_nothing_can_prompt(
    manifest, run, tmp_path, monkeypatch
):
    """Trust, peer or a ~/.pgpass: the DSN holds no password, and pg_amcheck reads its input
    from nowhere, so a missing password fails rather than waits at a prompt."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    bindir = stand_in(tmp_path, 0)
    assert deep("postgresql://drill@127.0.0.1:5432/prism", manifest, run, bindir).status is (
        Status.PASS)
    assert (tmp_path / "pgpassword").read_text() == ""
    assert (tmp_path / "stdin").read_text().strip() == "/dev/null"
