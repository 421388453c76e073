"""Deep tier: pg_amcheck over every heap table and B-tree index of the restored database."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drills.pgbin import default_bindir
from drills.verify.context import Context, Outcome, failed, passed, skipped
from infra.errors import BadInput

JOBS = max(1, min(4, os.cpu_count() or 1))


def find_pg_amcheck(bindir: Path | None) -> str | None:
    if bindir is not None and (bindir / "pg_amcheck").exists():
        return str(bindir / "pg_amcheck")
    on_path = shutil.which("pg_amcheck")
    if on_path:
        return on_path
    try:
        candidate = default_bindir() / "pg_amcheck"
    except BadInput:
        return None
    return str(candidate) if candidate.exists() else None


def check_amcheck(ctx: Context) -> Outcome:
    binary = find_pg_amcheck(ctx.target.pg_bindir)
    if binary is None:
        return skipped("pg_amcheck not found: install the PostgreSQL client (15+) or give its "
                       "bin directory")
    params = conninfo_to_dict(ctx.target.dsn)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password  # never on a command line, where ps would show it
    argv = [
        binary, f"--jobs={JOBS}",
        "--heapallindexed",  # every heap tuple must be found in each B-tree index
        "--install-missing",  # the amcheck extension, into pg_catalog
        make_conninfo(**params),
    ]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                            stdin=subprocess.DEVNULL)
    # --install-missing notices that amcheck is already there; they report nothing wrong.
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if line.strip() and not line.startswith("NOTICE:")]
    flags = f"-j {JOBS} --heapallindexed"
    if result.returncode == 0 and not lines:
        return passed(f"pg_amcheck ({flags}) found no corruption in heap tables or B-tree "
                      "indexes")
    problems = _problems(lines)
    if not problems:
        return failed(f"pg_amcheck exit {result.returncode} without output")
    first = ctx.one_line(problems[0])[:300]
    return failed(f"pg_amcheck exit {result.returncode}: {len(problems)} problem(s); first: "
                  f"{first}")


def _problems(lines: list[str]) -> list[str]:
    """One entry per reported problem: a relation line and its indented explanation."""
    problems: list[str] = []
    for line in lines:
        if line[:1].isspace() and problems:
            if problems[-1].endswith(":"):
                problems[-1] = f"{problems[-1]} {' '.join(line.split())}"
        else:
            problems.append(" ".join(line.split()))
    return problems
