"""/ready through the hostname, and the team's smoke command with BASE_URL."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from drills.ports import free_port
from drills.verify import smoke
from drills.verify.model import Status
from drills.verify.smoke import OUTPUT_KEPT_CHARS, probe, run_smoke_cmd, wait_ready


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_ready_after_the_host_boots():
    answers = iter([None, 502, 503, 200])
    clock = Clock()
    seen = []

    def get(url):
        seen.append(url)
        return next(answers)

    result = wait_ready(
        "https://drill-1.prismhub.io/",
        timeout=600,
        interval=10,
        get=get,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.status == Status.PASS
    assert seen == ["https://drill-1.prismhub.io/ready"] * 4
    assert result.seconds == 30


def test_never_ready_fails_naming_the_last_answer():
    clock = Clock()
    result = wait_ready(
        "https://h", timeout=60, interval=10, get=lambda u: 503, clock=clock, sleep=clock.sleep
    )
    assert result.status == Status.FAIL
    assert result.detail == "https://h/ready answered 503 for 60 s"
    nothing = wait_ready(
        "https://h", timeout=5, interval=10, get=lambda u: None, clock=clock, sleep=clock.sleep
    )
    assert "answered nothing" in nothing.detail


def test_the_smoke_command_gets_base_url_and_its_exit_code_is_the_check(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2secret@db/prism")
    script = (
        "import os,sys; print('BASE', os.environ['BASE_URL']); "
        "print('DB', os.environ.get('DATABASE_URL')); "
        "print('leak postgresql://admin:s3cretpw@10.0.0.5:5432/prism'); sys.exit(int(sys.argv[1]))"
    )
    ok = run_smoke_cmd(f'{sys.executable} -c "{script}" 0', "https://drill-1.prismhub.io/")
    assert ok.status == Status.PASS
    assert "BASE https://drill-1.prismhub.io" in ok.detail
    assert "DB None" in ok.detail  # the restored DB's URL is not handed to the smoke test
    assert "s3cretpw" not in ok.detail
    bad = run_smoke_cmd(f'{sys.executable} -c "{script}" 3', "https://h")
    assert bad.status == Status.FAIL and bad.detail.startswith("exit 3")


def test_a_missing_or_hanging_smoke_command_fails():
    missing = run_smoke_cmd("k6-not-installed run smoke.js", "https://h")
    assert missing.status == Status.FAIL and "not found" in missing.detail
    slow = run_smoke_cmd(
        f"{sys.executable} -c 'import time; time.sleep(5)'", "https://h", timeout=0.5
    )
    assert slow.status == Status.FAIL and "did not finish" in slow.detail


def test_the_wait_ends_at_its_timeout_not_a_poll_later_and_a_200_then_still_counts():
    polls = []

    def answers(last):
        def get(url):
            polls.append(url)
            return 200 if len(polls) == 4 and last == 200 else 503
        return get

    clock = Clock()
    late = wait_ready("https://h", timeout=30, interval=10, get=answers(503), clock=clock,
                      sleep=clock.sleep)
    assert (late.status, late.detail, late.seconds) == (
        Status.FAIL, "https://h/ready answered 503 for 30 s", 30)
    assert len(polls) == 4  # at 0, 10, 20 and 30 s
    polls.clear()
    clock = Clock()
    just = wait_ready("https://h", timeout=30, interval=10, get=answers(200), clock=clock,
                      sleep=clock.sleep)
    assert (just.status, just.detail, just.seconds) == (
        Status.PASS, "https://h/ready answered 200 after 30 s", 30)


@pytest.fixture
def server():
    """A local HTTP server: 200 at /ready, 503 at /down; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/ready" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def test_probe_gives_the_status_or_none_when_nothing_answers(server):
    assert probe(server + "/ready") == 200
    assert probe(server + "/down") == 503  # an error status is an answer, not an exception
    assert probe(f"http://127.0.0.1:{free_port()}/ready", timeout=2) is None
    assert probe("not a url") is None


def test_the_smoke_commands_output_is_kept_from_its_end_and_masked(monkeypatch):
    monkeypatch.setenv("PRISM_DR_SOURCE_DSN", "postgresql://admin:pr0dpass@prod/prism")
    script = ("import os; print('SOURCE', os.environ.get('PRISM_DR_SOURCE_DSN')); "
              "print('x' * 3000); print('leak postgresql://admin:s3cretpw@10.0.0.5/prism'); "
              "print('the end')")
    result = run_smoke_cmd(f'{sys.executable} -c "{script}"', "https://h/")
    assert result.status == Status.PASS
    output = result.detail.removeprefix("exit 0; output: ")
    assert len(output) == OUTPUT_KEPT_CHARS and output.endswith("the end")
    assert "s3cretpw" not in output and "pr0dpass" not in output
    source = "import os; print('SOURCE', os.environ.get('PRISM_DR_SOURCE_DSN'))"
    whole = run_smoke_cmd(f'{sys.executable} -c "{source}"', "https://h")
    assert whole.detail == "exit 0; output: SOURCE None"  # the source's DSN is not handed on
    silent = run_smoke_cmd(f"{sys.executable} -c pass", "https://h")
    assert (silent.status, silent.detail) == (Status.PASS, "exit 0")


def test_a_missing_or_hanging_smoke_command_is_named_with_its_limit():
    missing = run_smoke_cmd("k6-not-installed run smoke.js", "https://h")
    assert (missing.detail, missing.seconds) == ("--smoke-cmd: k6-not-installed not found", 0.0)
    slow = run_smoke_cmd(
        f"{sys.executable} -c 'import time; time.sleep(5)'", "https://h", timeout=1.0
    )
    assert slow.detail == "--smoke-cmd did not finish within 1 s"
    assert 1.0 <= slow.seconds < 5


def test_each_result_is_named_and_timed_to_the_millisecond():
    clock = Clock()
    clock.now = 5000.0  # a monotonic clock does not start at zero
    answers = iter([503, 200])

    def sleep(seconds):
        clock.now += seconds + 0.12345

    ready = wait_ready("https://h", timeout=60, interval=10, get=lambda u: next(answers),
                       clock=clock, sleep=sleep)
    assert (ready.name, ready.status, ready.seconds) == ("ready_via_hostname", Status.PASS, 10.123)
    clock.now = 5000.0
    never = wait_ready("https://h", timeout=5, interval=10, get=lambda u: 503, clock=clock,
                       sleep=sleep)
    assert (never.name, never.status, never.seconds) == ("ready_via_hostname", Status.FAIL,
                                                         10.123)
    quick = run_smoke_cmd(f"{sys.executable} -c 'import time; time.sleep(0.3)'", "https://h")
    slow = run_smoke_cmd(f"{sys.executable} -c 'import time; time.sleep(3)'", "https://h",
                         timeout=0.2)
    missing = run_smoke_cmd("k6-not-installed run smoke.js", "https://h")
    assert {r.name for r in (quick, slow, missing)} == {"smoke_cmd"}
    assert 0.3 <= quick.seconds < 3 and 0.2 <= slow.seconds < 3 and missing.seconds == 0.0
    assert all(r.seconds == round(r.seconds, 3) for r in (quick, slow))


def test_a_probe_waits_ten_seconds_for_an_answer_unless_told(monkeypatch):
    given = []

    def urlopen(url, timeout):
        given.append(timeout)
        raise OSError("no route")

    monkeypatch.setattr(smoke.urllib.request, "urlopen", urlopen)
    assert probe("https://h/ready") is None
    assert given == [10.0]


def test_the_smoke_command_gets_the_base_url_without_its_trailing_slash():
    script = "import os; print(os.environ['BASE_URL'])"
    result = run_smoke_cmd(f'{sys.executable} -c "{script}"', "https://drill-1.prismhub.io/")
    assert (result.status, result.detail) == (
        Status.PASS, "exit 0; output: https://drill-1.prismhub.io")


def test_output_that_is_not_utf8_is_kept_with_replacement_characters():
    script = "import sys; sys.stdout.buffer.write(bytes([0x6f, 0x6b, 0xff]))"
    result = run_smoke_cmd(f'{sys.executable} -c "{script}"', "https://h")
    assert result.detail == "exit 0; output: ok\ufffd"


def test_a_smoke_command_reading_its_input_gets_end_of_file_not_the_drills_terminal():
    script = "import sys; print('read', repr(sys.stdin.read()))"
    result = run_smoke_cmd(f'{sys.executable} -c "{script}"', "https://h", timeout=10)
    assert result.detail == "exit 0; output: read ''"


def test_a_smoke_command_has_fifteen_minutes_unless_told(monkeypatch):
    given = {}

    def run(argv, **kwargs):
        given.update(kwargs)
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(smoke.subprocess, "run", run)
    assert run_smoke_cmd("k6 run smoke.js", "https://h").status is Status.PASS
    assert given["timeout"] == 900.0


@pytest.mark.timeout(20)
def test_a_probe_of_a_server_that_never_answers_gives_up_at_its_timeout():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never replies
        port = silent.getsockname()[1]
        answered = []
        worker = threading.Thread(
            target=lambda: answered.append(probe(f"http://127.0.0.1:{port}/ready", timeout=0.5)),
            daemon=True)
        worker.start()
        worker.join(5)
        assert not worker.is_alive(), "the probe waited past its timeout"
    assert answered == [None]
