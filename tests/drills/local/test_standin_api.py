"""The stand-in API: /health always 200, /ready 200 only while the database answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from drills.ports import free_port


def _get(port: int, path: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _start(database_url: str | None, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.Popen(
        [sys.executable, "-m", "drills.local.standin_api", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_until_up(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            _get(port, "/health")
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("stand-in API did not start")


@pytest.fixture
def api(fresh_db):
    """Start the stand-in on `dsn`; returns (port, process); stops and collects its output."""
    started: list[subprocess.Popen] = []

    def start(dsn: str) -> tuple[int, subprocess.Popen]:
        port = free_port()
        process = _start(dsn, port)
        started.append(process)
        _wait_until_up(process, port)
        return port, process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def test_ready_while_the_database_answers(api, fresh_db):
    port, _ = api(fresh_db)
    assert _get(port, "/health") == 200
    assert _get(port, "/ready") == 200
    assert _get(port, "/nope") == 404


def test_not_ready_when_the_database_is_down_but_still_healthy(api, fresh_db):
    dead_port = free_port()
    password = psycopg.conninfo.conninfo_to_dict(fresh_db)["password"]
    dsn = fresh_db.replace(f":{psycopg.conninfo.conninfo_to_dict(fresh_db)['port']}/",
                           f":{dead_port}/")
    port, process = api(dsn)
    started = time.monotonic()
    assert _get(port, "/ready") == 503
    assert time.monotonic() - started < 5  # answers within the readiness timeout
    assert _get(port, "/health") == 200
    process.terminate()
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0  # SIGTERM is a clean shutdown
    assert "GET /ready" in err
    assert password not in err and dsn not in err


def test_refuses_to_start_without_database_url():
    process = _start(None, free_port())
    _, err = process.communicate(timeout=15)
    assert process.returncode == 2
    assert "set DATABASE_URL" in err
