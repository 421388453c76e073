"""An ephemeral PostgreSQL cluster: initdb + pg_ctl in a temp dir on a free 127.0.0.1 port.

Always stopped and removed on exit, whatever the exit. When run as root (CI does), the server
runs as the `postgres` OS user because initdb refuses root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from drills.local import owner
from drills.pgbin import default_bindir
from drills.ports import free_port
from infra.errors import BadInput

TEMP_PREFIX = "prism-drill-pg-"
WORKDIR_PREFIX = "prism-drill-"  # other drill temp dirs (a fresh dump of a source)

# A throwaway restore target needs no crash safety; these make restores several times faster.
FAST_DISPOSABLE_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "maintenance_work_mem": "256MB",
    "autovacuum": "off",
}


def find_bindir() -> Path:
    """The newest PostgreSQL installation's bin directory (see drills.pgbin for the sources)."""
    return default_bindir()


def pg_tool(bindir: Path, name: str) -> str:
    """A PostgreSQL client tool from the server's bin dir, else whatever PATH finds."""
    path = bindir / name
    return str(path) if path.exists() else name


@dataclass
class Cluster:
    """Connection facts for a running ephemeral cluster."""

    bindir: Path
    root: Path
    port: int
    password: str = field(repr=False)
    user: str = "postgres"
    host: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def dsn(self, dbname: str = "postgres", with_password: bool = True) -> str:
        credentials = f"{self.user}:{self.password}" if with_password else self.user
        return f"postgresql://{credentials}@{self.host}:{self.port}/{dbname}?sslmode=disable"

    def env(self) -> dict[str, str]:
        """Environment for libpq client tools (pg_restore, psql, pg_amcheck)."""
        env = dict(os.environ)
        env.update(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGUSER=self.user,
            PGPASSWORD=self.password,
            PGSSLMODE="disable",
        )
        return env

    def tool(self, name: str) -> str:
        return pg_tool(self.bindir, name)


class EphemeralPostgres:
    """Context manager yielding a running `Cluster`; stops and deletes it on any exit."""

    def __init__(
        self,
        settings: dict[str, str] | None = None,
        parent_dir: str | None = None,
        bindir: Path | None = None,
    ):
        self.bindir = bindir  # None: the newest installation found
        self.settings = {**FAST_DISPOSABLE_SETTINGS, **(settings or {})}
        self.parent_dir = parent_dir
        self.cluster: Cluster | None = None
        self._root: Path | None = None
        self._run_as: str | None = None
        self._detached = False

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        bindir = self.bindir or find_bindir()
        self._root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.parent_dir))
        try:
            # Findable before anything runs in it: a drill killed from here on leaves a
            # cluster `prism-dr drill reap --local` recognises as its own.
            owner.mark(self._root, "cluster")
            self._prepare_owner()
            password = secrets.token_urlsafe(24)
            self._initdb(bindir, password)
            self.cluster = self._start(bindir, password)
            return self.cluster
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and remove the directory.

        SIGINT, SIGTERM and SIGHUP wait until this is done, so a second Ctrl-C cannot strand a
        server.
        """
        if self._root is None or self._detached:
            return
        blocked = signal.pthread_sigmask(
            signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        )
        try:
            self.stop()
            shutil.rmtree(self._root, ignore_errors=True)
            owner.unregister(self._root)
            self._root = None
            self.cluster = None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def stop(self) -> None:
        """Stop the server but keep its files (the degraded-mode check needs a DB that is down)."""
        if self._root is None:
            return
        data = self._root / "data"
        if not (data / "postmaster.pid").exists():
            return
        bindir = self.cluster.bindir if self.cluster else (self.bindir or find_bindir())
        for mode in ("fast", "immediate"):
            result = self._run(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "30", "stop"],
                check=False,
            )
            if result.returncode == 0 or not (data / "postmaster.pid").exists():
                break
        self._kill_leftover(data)

    def detach(self) -> None:
        """Leave the cluster running past `close()` (--keep); see `stop_command()`."""
        self._detached = True
        if self._root is not None:
            owner.mark_kept(self._root)

    def stop_command(self) -> str:
        assert self._root is not None and self.cluster is not None
        as_user = f"runuser -u {self._run_as} -- " if self._run_as else ""
        pg_ctl = shlex.quote(str(self.cluster.bindir / "pg_ctl"))
        data = shlex.quote(str(self._root / "data"))
        return f"{as_user}{pg_ctl} -D {data} stop && rm -rf {shlex.quote(str(self._root))}"

    # -- steps -----------------------------------------------------------------------------
    def _prepare_owner(self) -> None:
        assert self._root is not None
        if os.geteuid() != 0:
            return
        try:
            postgres_user = pwd.getpwnam("postgres")
        except KeyError as err:
            raise BadInput(
                "running as root needs the 'postgres' OS user to own the ephemeral cluster: "
                "install the Debian package 'postgresql' or run as a non-root user"
            ) from err
        os.chown(self._root, postgres_user.pw_uid, postgres_user.pw_gid)
        self._run_as = "postgres"
        if self._run(["test", "-w", str(self._root)], check=False).returncode != 0:
            raise BadInput(
                f"the postgres OS user cannot reach {self._root.parent}: set TMPDIR to a "
                "directory every user can traverse (e.g. /tmp)"
            )

    def _initdb(self, bindir: Path, password: str) -> None:
        assert self._root is not None
        pwfile = self._root / "pwfile"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if self._run_as:
            run_as = pwd.getpwnam(self._run_as)
            os.chown(pwfile, run_as.pw_uid, run_as.pw_gid)
        try:
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D", str(self._root / "data"),
                    "-U", "postgres",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _start(self, bindir: Path, password: str) -> Cluster:
        assert self._root is not None
        last_error = ""
        for _ in range(5):  # a free port can be taken between probing and binding
            port = free_port()
            options = [
                f"-p {port}",
                "-c listen_addresses=127.0.0.1",
                # TCP only: a Unix socket path under a long TMPDIR passes the kernel's 107-byte
                # limit, and every client here connects to 127.0.0.1 anyway.
                "-c unix_socket_directories=''",
                *(f"-c {key}={value}" for key, value in self.settings.items()),
            ]
            result = self._run(
                [
                    str(bindir / "pg_ctl"),
                    "-D", str(self._root / "data"),
                    "-l", str(self._root / "server.log"),
                    "-o", " ".join(options),
                    "-w", "-t", "60",
                    "start",
                ],
                check=False,
            )
            if result.returncode == 0:
                return Cluster(bindir=bindir, root=self._root, port=port, password=password)
            last_error = self._server_log_tail()
        raise BadInput(
            f"the ephemeral PostgreSQL did not start ({last_error}); check free disk space "
            f"and memory under {self._root.parent}"
        )

    # -- helpers ---------------------------------------------------------------------------
    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        # A new session keeps a terminal's Ctrl-C away from the server: this class stops it.
        result = subprocess.run(
            argv,
            user=self._run_as,
            cwd=self._root,
            capture_output=True,
            text=True,
            start_new_session=True,
        )
        if check and result.returncode != 0:
            # Failures here are the machine's (permissions, disk, binaries), not the backup's.
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise BadInput(
                f"{Path(argv[0]).name} failed ({last}); check TMPDIR ({self._root.parent}) is "
                "writable, with free space"
            )
        return result

    def _server_log_tail(self) -> str:
        assert self._root is not None
        log = self._root / "server.log"
        if not log.exists():
            return "no server log"
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])

    @staticmethod
    def _kill_leftover(data: Path) -> None:
        pidfile = data / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(pidfile.read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
