"""/ready through the hostname, and the team's smoke command with BASE_URL."""

from __future__ import annotations

import sys

from drills.verify.model import Status
from drills.verify.smoke import run_smoke_cmd, wait_ready


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
