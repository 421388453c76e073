"""The application on top of the restored database: /health, /ready, and degraded mode.

With an API command, the drill starts the API itself with DATABASE_URL pointing at the
restored database, and can then prove the seed's degraded-mode contract: once the database is
stopped, /health stays 200 while /ready turns 503.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from drills.ports import free_port
from drills.verify.context import Outcome, failed, passed, skipped
from drills.verify.target import VerifyTarget

START_TIMEOUT_SECONDS = 20.0
READY_TIMEOUT_SECONDS = 10.0
DEGRADE_TIMEOUT_SECONDS = 15.0
POLL_SECONDS = 0.25
REQUEST_TIMEOUT_SECONDS = 3.0
STOP_GRACE_SECONDS = 5.0

APP_CHECKS = ("app_health", "app_ready", "degraded_mode")

# What the drill's own environment may hold and the API under test must not inherit: the
# production source's DSN, libpq's connection variables (PGHOST, PGPASSWORD, ...), and a
# DATABASE_URL other than the restored database's.
WITHHELD_ENV = ("PRISM_DR_SOURCE_DSN", "DATABASE_URL")
WITHHELD_ENV_PREFIXES = ("PG",)


class Api:
    """The API under test: a given URL, or a command this object starts and always stops."""

    def __init__(self, target: VerifyTarget):
        self.target = target
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log = None
        self.healthy = False
        self.ready_ok = False

    @property
    def configured(self) -> bool:
        return bool(self.target.api_url or self.target.api_cmd)

    @property
    def base_url(self) -> str:
        url = self.target.api_url or "http://127.0.0.1:{port}"
        return url.replace("{port}", str(self.port)).rstrip("/")

    # -- checks ----------------------------------------------------------------------------
    def health(self) -> Outcome:
        if not self.configured:
            return skipped("no API URL or API command given")
        if self.target.api_cmd:
            problem = self._start()
            if problem:
                return failed(problem)
            self.healthy = True
            return passed(f"/health 200 from the started API ({self._where()})")
        status, body = self._wait_for("/health", lambda s: s == 200, READY_TIMEOUT_SECONDS)
        if status != 200:
            return failed(f"/health {self._said(status, body)} at {self._where()}")
        self.healthy = True
        return passed(f"/health 200 at {self._where()}")

    def ready(self) -> Outcome:
        if not self.configured:
            return skipped("no API URL or API command given")
        if not self.healthy:
            return failed("the API never answered /health, so it cannot be ready")
        # An API may answer /health before its first database connection completes.
        status, body = self._wait_for("/ready", lambda s: s == 200, READY_TIMEOUT_SECONDS)
        if not self.target.api_cmd:
            # Any API may answer at a URL: nothing ties it to the restored database.
            if status != 200:
                return failed(f"/ready {self._said(status, body)} within "
                              f"{READY_TIMEOUT_SECONDS:g}s at {self._where()}")
            self.ready_ok = True
            return passed(f"/ready 200 from {self._where()} (an API you started: this does not "
                          "prove it uses the restored database)")
        if status != 200:
            return failed(f"/ready {self._said(status, body)} within "
                          f"{READY_TIMEOUT_SECONDS:g}s: the API cannot use the restored database")
        self.ready_ok = True
        # The drill started it with DATABASE_URL set to the restored database and no other.
        return passed("/ready 200: the API reaches the restored database")

    def degraded(self, stop_database: Callable[[], None] | None) -> Outcome:
        if not self.target.api_cmd:
            return skipped("needs an API command the drill starts (--api-cmd)")
        if stop_database is None:
            return skipped("the drill gave no way to stop the database")
        if not self.ready_ok:
            return skipped("/ready never returned 200, so a 503 would prove nothing")
        try:
            stop_database()
        except Exception as err:  # the drill's callback, not a database defect
            return failed(f"stopping the database failed: {self.target.scrub(str(err))[:200]}")
        started = time.monotonic()
        health_failures: list[str] = []

        def degraded_now(status: int | None) -> bool:
            health, body = _get(self.base_url + "/health")
            if health != 200:
                health_failures.append(self._said(health, body))
            return status == 503

        status, body = self._wait_for("/ready", degraded_now, DEGRADE_TIMEOUT_SECONDS)
        waited = time.monotonic() - started
        if health_failures:
            return failed(f"/health {health_failures[0]} once the database stopped; it must "
                          "stay 200")
        if status != 503:
            return failed(f"/ready {self._said(status, body)} {waited:.0f}s after the database "
                          "stopped; expected 503")
        return passed(f"database stopped: /ready 503 after {waited:.1f}s, /health stayed 200")

    # -- the process -----------------------------------------------------------------------
    def _start(self) -> str | None:
        """Start the command and wait for /health 200; a reason when that does not happen."""
        self.port = free_port()
        command = self.target.api_cmd.replace("{port}", str(self.port))
        env = {**api_environment(os.environ), "DATABASE_URL": self.target.dsn,
               "PORT": str(self.port)}
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this call; close() shuts it
        # Its own process group, so stopping it also stops whatever the shell started.
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", command], env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        status, body = None, "no answer"
        while time.monotonic() < deadline:
            status, body = _get(self.base_url + "/health")
            if status == 200:
                return None
            if self.process.poll() is not None:
                return (f"the API command exited with code {self.process.returncode} before "
                        f"/health answered: {self._last_output()}")
            time.sleep(POLL_SECONDS)
        return (f"no /health 200 from the API command within {START_TIMEOUT_SECONDS:g}s "
                f"(last: {self._said(status, body)})")

    def close(self) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after a grace period.

        Returns only once no process of the group is left running, so the port is free.
        """
        process, self.process = self.process, None
        if process is not None:
            for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                if _wait_for_group_exit(process, wait):
                    break
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------
    def _wait_for(
        self, path: str, done: Callable[[int | None], bool], timeout: float
    ) -> tuple[int | None, str]:
        deadline = time.monotonic() + timeout
        while True:
            status, body = _get(self.base_url + path)
            if done(status) or time.monotonic() >= deadline:
                return status, body
            time.sleep(POLL_SECONDS)

    def _where(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def _said(self, status: int | None, body: str) -> str:
        if status is None:
            return f"unreachable ({self.target.scrub(body)[:120]})"
        return f"returned {status}"

    def _last_output(self) -> str:
        if self._log is None:
            return "no output"
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return self.target.scrub(lines[-1])[:200] if lines else "no output"


def api_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The drill's environment without what could lead the API to another database."""
    return {name: value for name, value in environ.items()
            if name not in WITHHELD_ENV and not name.startswith(WITHHELD_ENV_PREFIXES)}


def _get(url: str) -> tuple[int | None, str]:
    """Status and a little of the body, or (None, reason) when nothing answered."""
    host = urlsplit(url).hostname or ""
    # A loopback API must not be sent through an HTTP proxy from the environment.
    handlers = [urllib.request.ProxyHandler({})] if host in ("127.0.0.1", "localhost", "::1") \
        else []
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"User-Agent": "prism-drill-verify"})
    try:
        with opener.open(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            return response.status, response.read(300).decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read(300).decode(errors="replace")
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return None, str(reason)


def _wait_for_group_exit(process: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        process.poll()  # reap the shell, or it lingers as a zombie
        if not _group_running(process.pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _group_running(pgid: int) -> bool:
    """Whether any process of the group is alive; zombies (exited, unreaped) are not."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # After the command name in parentheses: state, ppid, pgrp, ...
        state, _, group = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(group) == pgid and state not in ("Z", "X"):
            return True
    return False
