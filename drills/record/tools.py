"""Who ran a drill, on what machine, with which tool versions: facts gathered for the record."""

from __future__ import annotations

import contextlib
import getpass
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from drills.record.model import HostInfo

OPERATOR_ENV = "PRISM_DR_OPERATOR"


def default_completed_by() -> str:
    """Who ran the drill: $PRISM_DR_OPERATOR, else `git config user.name`, else the OS user."""
    operator = os.environ.get(OPERATOR_ENV, "").strip()
    if operator:
        return operator
    try:
        git = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=5
        )
        name = git.stdout.strip() if git.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        name = ""
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry, as in some containers
        return "unknown"


def tool_versions(bindir: Path | None = None) -> dict[str, str]:
    """Versions of everything that took part in the drill.

    PostgreSQL tools are looked up in `bindir` when given (the server's bin directory, as
    Debian keeps it off PATH), else on PATH; tools that cannot be found are left out.
    """
    import psycopg

    versions = {
        "prism-infra": _package_version("prism-infra"),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "libpq": _libpq_version(psycopg.pq.version()),
    }
    for tool in ("pg_restore", "pg_dump", "postgres"):
        version = _tool_version(tool, bindir)
        if version:
            versions[tool] = version
    return versions


def host_info() -> HostInfo:
    return HostInfo(
        hostname=platform.node(),
        os=f"{platform.system()} {platform.release()}",
        machine=platform.machine(),
        cpus=os.cpu_count(),
    )


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _libpq_version(number: int) -> str:
    # libpq encodes 17.4 as 170004, and 9.6.24 as 90624.
    if number >= 100000:
        return f"{number // 10000}.{number % 10000}"
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def _tool_version(tool: str, bindir: Path | None) -> str | None:
    path = str(Path(bindir) / tool) if bindir is not None else shutil.which(tool)
    if not path or not Path(path).is_file():
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        first_line = out.stdout.strip().splitlines()[:1]
        if out.returncode == 0 and first_line:
            return first_line[0]
    return None
