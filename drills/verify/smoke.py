"""The API as a user meets it, through its public hostname: `/ready` answering 200 (spec §4.2
steps 5-6), and the team's own smoke test (§4.1 "smoke test key API endpoints", §4.2 "run k6
smoke gate") run with BASE_URL set. Knows nothing of AWS or Pulumi: it takes a URL.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from drills.verify.model import CheckResult, Status
from recovery.redact import mask_dsn

OUTPUT_KEPT_CHARS = 2000


def probe(url: str, timeout: float = 10.0) -> int | None:
    """The HTTP status of GET url; None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


def wait_ready(
    base_url: str,
    *,
    timeout: float,
    interval: float = 10.0,
    get: Callable[[str], int | None] = probe,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CheckResult:
    """Poll `<base_url>/ready` until 200: the host booted, reached the restored database, and
    the tunnel serves it. The new host keeps retrying while the database restores."""
    url = base_url.rstrip("/") + "/ready"
    started = clock()
    last: int | None = None
    while True:
        last = get(url)
        seconds = round(clock() - started, 3)
        if last == 200:
            return CheckResult(
                name="ready_via_hostname",
                status=Status.PASS,
                detail=f"{url} answered 200 after {seconds:.0f} s",
                seconds=seconds,
            )
        if seconds >= timeout:
            return CheckResult(
                name="ready_via_hostname",
                status=Status.FAIL,
                detail=f"{url} answered {last or 'nothing'} for {timeout:.0f} s",
                seconds=seconds,
            )
        sleep(interval)


def run_smoke_cmd(
    command: str,
    base_url: str,
    *,
    timeout: float = 900.0,
    scrub: Callable[[str], str] = mask_dsn,
) -> CheckResult:
    """Run the team's smoke test with BASE_URL; its exit code is the check, its output (masked,
    trimmed to the end) the detail."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PRISM_DR_SOURCE_DSN")}
    env["BASE_URL"] = base_url.rstrip("/")
    started = time.monotonic()
    try:
        done = subprocess.run(
            shlex.split(command),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return CheckResult(
            name="smoke_cmd",
            status=Status.FAIL,
            detail=f"--smoke-cmd: {shlex.split(command)[0]} not found",
            seconds=0.0,
        )
    except subprocess.TimeoutExpired:
        return CheckResult(
            name="smoke_cmd",
            status=Status.FAIL,
            detail=f"--smoke-cmd did not finish within {timeout:.0f} s",
            seconds=round(time.monotonic() - started, 3),
        )
    output = scrub((done.stdout + done.stderr).decode(errors="replace")).strip()
    tail = output[-OUTPUT_KEPT_CHARS:]
    return CheckResult(
        name="smoke_cmd",
        status=Status.PASS if done.returncode == 0 else Status.FAIL,
        detail=f"exit {done.returncode}" + (f"; output: {tail}" if tail else ""),
        seconds=round(time.monotonic() - started, 3),
    )
