"""Deep tier: pg_amcheck finds on-disk corruption that every other check reads past."""

from __future__ import annotations

import os
import struct
import subprocess

import psycopg

from drills.local.cluster import EphemeralPostgres
from drills.verify import Manifest, Status, Tier
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
