"""The application checks against the stand-in API: up, ready, degraded, always stopped."""

from __future__ import annotations

import contextlib
import re
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from drills.local.cluster import EphemeralPostgres
from drills.local.sample import build_sample
from drills.local.standin_api import serve
from drills.ports import free_port
from drills.verify import Status, Tier, app, load_manifest, verify
from drills.verify.context import APPLICATION_NAME
from tests.drills.verify.conftest import NOW, by_name, make_target

STANDIN = f"{shlex.quote(sys.executable)} -m drills.local.standin_api"
APP = ("app_health", "app_ready", "degraded_mode")


def _port_of(detail: str) -> int:
    return int(re.search(r"127\.0\.0\.1:(\d+)", detail).group(1))


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _app_results(target, tier=Tier.QUICK, on_check=None):
    return by_name(verify(target, load_manifest(), tier, on_check=on_check))


def test_started_api_is_healthy_and_ready_then_stopped(restored):
    results = _app_results(make_target(restored, api_cmd=STANDIN + " --port {port}"))
    assert results["app_health"].status == Status.PASS, results["app_health"].detail
    assert results["app_ready"].status == Status.PASS, results["app_ready"].detail
    assert results["degraded_mode"].status == Status.SKIP
    assert results["degraded_mode"].detail == "the drill gave no way to stop the database"
    assert not _listening(_port_of(results["app_health"].detail))


def test_started_api_gets_its_port_from_the_environment(restored):
    results = _app_results(make_target(restored, api_cmd=STANDIN))  # reads PORT
    assert results["app_ready"].status == Status.PASS, results["app_ready"].detail


@contextlib.contextmanager
def standin_url(dsn: str) -> Iterator[str]:
    """The stand-in API, served in-process on a free port, for probing by URL."""
    server = serve(0, dsn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def test_api_url_is_probed_as_given(restored):
    with standin_url(restored) as url:
        results = _app_results(make_target(restored, api_url=url))
    assert results["app_health"].status == Status.PASS
    assert results["app_ready"].status == Status.PASS
    assert results["degraded_mode"].status == Status.SKIP  # not an API the drill started


def test_no_api_skips_the_application_checks(restored):
    results = _app_results(make_target(restored))
    assert [results[n].status for n in APP] == [Status.SKIP] * 3


def test_api_that_cannot_reach_its_database_is_not_ready(restored, monkeypatch):
    monkeypatch.setattr(app, "READY_TIMEOUT_SECONDS", 1.0)  # it will not become ready
    port = psycopg.conninfo.conninfo_to_dict(restored)["port"]
    unreachable = restored.replace(f":{port}/", f":{free_port()}/")
    results = _app_results(make_target(unreachable, api_cmd=STANDIN + " --port {port}"))
    assert results["app_health"].status == Status.PASS
    assert results["app_ready"].status == Status.FAIL
    assert results["app_ready"].detail == (
        "/ready returned 503 within 1s: the API cannot use the restored database")


def test_api_command_that_exits_fails_health_without_leaking_the_password(restored):
    password = psycopg.conninfo.conninfo_to_dict(restored)["password"]
    command = 'echo "cannot start: DATABASE_URL=$DATABASE_URL"; exit 3'
    results = _app_results(make_target(restored, api_cmd=command))
    health = results["app_health"]
    assert health.status == Status.FAIL
    assert health.detail.startswith("the API command exited with code 3 before /health answered")
    assert "cannot start" in health.detail and password not in health.detail
    assert results["app_ready"].status == Status.FAIL


def test_api_is_stopped_even_when_the_caller_raises(restored):
    seen = {}

    def explode(result):
        if result.name == "app_health":
            seen["port"] = _port_of(result.detail)
            assert _listening(seen["port"])
            raise RuntimeError("progress display broke")

    with pytest.raises(RuntimeError, match="progress display broke"):
        _app_results(make_target(restored, api_cmd=STANDIN + " --port {port}"), on_check=explode)
    assert not _listening(seen["port"])


def test_degraded_mode_ready_turns_503_while_health_stays_200():
    # A cluster of its own: this test stops its database.
    ephemeral = EphemeralPostgres()
    with ephemeral as cluster:
        dsn = cluster.dsn()
        build_sample(dsn, scale=0.05, now=NOW)
        verify_sessions_at_stop = []

        def stop_database() -> None:
            with psycopg.connect(dsn) as conn:
                verify_sessions_at_stop.append(conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (APPLICATION_NAME,)).fetchone()[0])
            ephemeral.stop()

        target = make_target(dsn, api_cmd=STANDIN + " --port {port}",
                             stop_database=stop_database)
        results = by_name(verify(target, load_manifest(), Tier.QUICK))
        assert verify_sessions_at_stop == [0]  # called once, after verify closed its sessions
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=2)
    degraded = results["degraded_mode"]
    assert degraded.status == Status.PASS, degraded.detail
    assert "/ready 503" in degraded.detail and "/health stayed 200" in degraded.detail
    assert list(results)[-1] == "degraded_mode"
    assert all(r.status == Status.PASS for r in results.values()), {
        n: r.detail for n, r in results.items() if r.status != Status.PASS}


ALWAYS_READY = (
    f"{shlex.quote(sys.executable)} -c 'import http.server as h, os\n"
    "class H(h.BaseHTTPRequestHandler):\n"
    "    def do_GET(self): self.send_response(200); self.end_headers()\n"
    "    def log_message(self, *a): pass\n"
    "h.HTTPServer((\"127.0.0.1\", int(os.environ[\"PORT\"])), H).serve_forever()'"
)


def test_an_api_that_stays_ready_without_its_database_fails_degraded_mode(
    restored, monkeypatch
):
    monkeypatch.setattr(app, "DEGRADE_TIMEOUT_SECONDS", 1.0)
    calls = []
    target = make_target(restored, api_cmd=ALWAYS_READY,
                         stop_database=lambda: calls.append("stopped"))
    results = _app_results(target)
    assert calls == ["stopped"]
    assert results["app_ready"].status == Status.PASS
    assert results["degraded_mode"].status == Status.FAIL
    assert results["degraded_mode"].detail == (
        "/ready returned 200 1s after the database stopped; expected 503")


def test_the_started_api_inherits_no_production_credentials(restored, tmp_path, monkeypatch):
    production = "postgresql://prism:prod-secret@db.internal/prism"
    for name, value in {"PRISM_DR_SOURCE_DSN": production, "DATABASE_URL": production,
                        "PGPASSWORD": "prod-secret", "PGHOST": "db.internal",
                        "PGSERVICEFILE": "/etc/prod.pg_service.conf",
                        "KEEP_ME": "an ordinary variable"}.items():
        monkeypatch.setenv(name, value)
    seen = tmp_path / "env"
    results = _app_results(make_target(
        restored, api_cmd=f"env > {shlex.quote(str(seen))}; exit 3"))
    assert results["app_health"].status == Status.FAIL  # it only wrote its environment
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert env["DATABASE_URL"] == restored
    assert env["PORT"].isdigit()
    assert env["KEEP_ME"] == "an ordinary variable"
    assert "PRISM_DR_SOURCE_DSN" not in env
    assert not [name for name in env if name.startswith("PG")]
    assert "prod-secret" not in seen.read_text()


def test_only_an_api_the_drill_started_proves_it_reaches_the_restored_database(restored):
    started = _app_results(make_target(restored, api_cmd=STANDIN + " --port {port}"))
    assert started["app_ready"].detail == "/ready 200: the API reaches the restored database"
    with standin_url(restored) as url:
        given = _app_results(make_target(restored, api_url=url))
    assert given["app_ready"].status == Status.PASS
    assert given["app_ready"].detail == (
        f"/ready 200 from {url.rstrip('/')} (an API you started: this does "
        "not prove it uses the restored database)")
    assert "reaches the restored database" not in given["app_ready"].detail


# -- each verdict and its detail, against a scripted HTTP server in this process -------------


class Scripted:
    """A local HTTP server answering /health and /ready with the statuses set on it."""

    def __init__(self):
        self.health, self.ready = 200, 200
        self.ready_hangs = 0.0  # seconds /ready takes to answer
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/ready":
                    time.sleep(scripted.ready_hangs)
                self.send_response(scripted.health if self.path == "/health" else scripted.ready)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.port = self.httpd.server_port
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(app, "READY_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(app, "DEGRADE_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(app, "POLL_SECONDS", 0.05)
    server = Scripted()
    yield server
    server.close()


def api_at(url: str) -> app.Api:
    return app.Api(make_target("postgresql://u:pw@127.0.0.1:1/db", api_url=url))


def started_api(server: Scripted, dsn: str = "postgresql://u:pw@127.0.0.1:1/db") -> app.Api:
    """An Api as the drill leaves it once its command answered /health: the command's port is
    the scripted server's."""
    api = app.Api(make_target(dsn, api_cmd="the-api --port {port}"))
    api.port, api.healthy, api.ready_ok = server.port, True, True
    return api


def test_an_api_at_a_url_is_judged_by_its_answers_and_named_by_its_address(scripted):
    api = api_at(scripted.url + "/")
    assert api.health() == (Status.PASS, f"/health 200 at {scripted.url}")
    scripted.ready = 503
    assert api.ready() == (Status.FAIL, f"/ready returned 503 within 0.5s at {scripted.url}")
    scripted.health = 500
    assert api_at(scripted.url).health() == (
        Status.FAIL, f"/health returned 500 at {scripted.url}")


def test_an_api_that_never_answered_health_cannot_be_ready(scripted):
    api = api_at(scripted.url)
    assert api.ready() == (Status.FAIL, "the API never answered /health, so it cannot be ready")


def test_nothing_listening_is_named_unreachable_with_the_reason(scripted):
    nobody = f"http://127.0.0.1:{free_port()}"
    outcome = api_at(nobody).health()
    assert outcome.status is Status.FAIL
    assert outcome.detail.startswith("/health unreachable (") and outcome.detail.endswith(
        f") at {nobody}")
    assert "refused" in outcome.detail.lower()


def test_an_address_without_a_port_is_named_without_one():
    assert api_at("https://api.example.test/v1/")._where() == "https://api.example.test"


def test_degraded_mode_needs_an_api_the_drill_started_a_way_to_stop_and_a_ready_api(scripted):
    stopped = []
    assert api_at(scripted.url).degraded(lambda: stopped.append(1)) == (
        Status.SKIP, "needs an API command the drill starts (--api-cmd)")
    api = started_api(scripted)
    assert api.degraded(None) == (Status.SKIP, "the drill gave no way to stop the database")
    api.ready_ok = False
    assert api.degraded(lambda: stopped.append(1)) == (
        Status.SKIP, "/ready never returned 200, so a 503 would prove nothing")
    assert stopped == []  # nothing stopped when the check cannot prove anything


def test_degraded_mode_passes_as_soon_as_ready_turns_503_and_health_stays(
    scripted, monkeypatch
):
    monkeypatch.setattr(app, "DEGRADE_TIMEOUT_SECONDS", 5.0)

    def stop():
        scripted.ready = 503

    outcome = started_api(scripted).degraded(stop)
    assert outcome.status is Status.PASS
    waited = re.fullmatch(r"database stopped: /ready 503 after (\d\.\d)s, /health stayed 200",
                          outcome.detail)
    assert waited, outcome.detail
    assert float(waited.group(1)) < 2.0  # not the whole allowance


def test_an_api_that_dies_with_its_database_fails_degraded_mode_saying_why(scripted):
    outcome = started_api(scripted).degraded(scripted.close)
    assert outcome.status is Status.FAIL
    assert outcome.detail.startswith("/health unreachable (") and outcome.detail.endswith(
        ") once the database stopped; it must stay 200")
    assert "refused" in outcome.detail.lower()


def test_an_unreachable_apis_reason_is_cut_and_an_api_not_started_said_nothing():
    api = api_at("http://127.0.0.1:9")
    assert api._said(None, "r" * 300) == f"unreachable ({'r' * 120})"
    assert api._last_output() == "no output"


def test_degraded_mode_fails_when_health_falls_with_the_database(scripted):
    def stop():
        scripted.ready, scripted.health = 503, 500

    assert started_api(scripted).degraded(stop) == (
        Status.FAIL, "/health returned 500 once the database stopped; it must stay 200")


def test_a_stop_that_fails_is_named_masked_and_cut(scripted):
    dsn = "postgresql://u:s3cret-pw@127.0.0.1:1/db"

    def stop():
        raise RuntimeError(f"pg_ctl stop failed for {dsn} " + "x" * 300)

    outcome = started_api(scripted, dsn).degraded(stop)
    assert outcome.status is Status.FAIL
    assert outcome.detail.startswith("stopping the database failed: pg_ctl stop failed for ")
    assert "s3cret-pw" not in outcome.detail
    assert len(outcome.detail) == len("stopping the database failed: ") + 200


def test_the_environment_handed_to_the_api_withholds_what_leads_to_another_database():
    given = {"PATH": "/usr/bin", "DATABASE_URL": "postgresql://prod", "PGHOST": "prod",
             "PGPASSWORD": "x", "PRISM_DR_SOURCE_DSN": "postgresql://prod", "PRISM_ENV": "drill",
             "APGAR": "kept: PG only as a prefix counts"}
    assert app.api_environment(given) == {"PATH": "/usr/bin", "PRISM_ENV": "drill",
                                          "APGAR": "kept: PG only as a prefix counts"}


def test_a_started_apis_last_words_are_its_last_line_masked_and_cut(restored):
    password = psycopg.conninfo.conninfo_to_dict(restored)["password"]
    command = ('echo "first line"; echo "fatal: cannot use $DATABASE_URL '
               + "y" * 300 + '"; exit 4')
    health = _app_results(make_target(restored, api_cmd=command))["app_health"]
    said = health.detail.removeprefix(
        "the API command exited with code 4 before /health answered: ")
    assert said.startswith("fatal: cannot use ") and len(said) == 200
    assert password not in health.detail and "first line" not in health.detail
    garbled = _app_results(make_target(restored, api_cmd=r"printf '\377 fatal\n'; exit 4"))
    assert garbled["app_health"].detail.endswith(": \ufffd fatal")
    silent = _app_results(make_target(restored, api_cmd="exit 5"))["app_health"]
    assert silent.detail == "the API command exited with code 5 before /health answered: no output"


def test_health_and_ready_answer_as_soon_as_the_api_does(scripted, monkeypatch):
    monkeypatch.setattr(app, "READY_TIMEOUT_SECONDS", 5.0)
    api = api_at(scripted.url)
    started = time.monotonic()
    assert api.health().status is Status.PASS
    assert api.ready().status is Status.PASS
    assert time.monotonic() - started < 2.0  # not the whole allowance


def test_an_api_gone_before_ready_is_named_unreachable_with_the_reason(scripted):
    at_url = api_at(scripted.url)
    assert at_url.health().status is Status.PASS
    started = started_api(scripted)
    scripted.close()
    given = at_url.ready()
    assert given.detail.startswith("/ready unreachable (") and given.detail.endswith(
        f") within 0.5s at {scripted.url}")
    own = started.ready()
    assert own.detail.startswith("/ready unreachable (") and own.detail.endswith(
        ") within 0.5s: the API cannot use the restored database")
    assert "refused" in given.detail.lower() and "refused" in own.detail.lower()


def test_without_an_api_the_checks_skip_saying_what_was_missing():
    api = app.Api(make_target("postgresql://u:pw@127.0.0.1:1/db"))
    for outcome in (api.health(), api.ready()):
        assert outcome == (Status.SKIP, "no API URL or API command given")


def test_a_smoke_command_runs_against_an_api_at_a_url_once_it_is_ready(restored):
    script = "import os; print(os.environ[\"BASE_URL\"])"
    with standin_url(restored) as url:
        results = _app_results(make_target(
            restored, api_url=url, smoke_cmd=f"{shlex.quote(sys.executable)} -c '{script}'"))
    assert results["smoke_cmd"].status is Status.PASS
    assert results["smoke_cmd"].detail == f"exit 0; output: {url.rstrip('/')}"


def test_a_ready_that_hangs_once_the_database_stopped_is_named_and_fails(scripted, monkeypatch):
    """An API whose /ready waits on the dead database with no timeout of its own: /health
    answers, /ready never does; that is not the 503 the contract asks for."""
    monkeypatch.setattr(app, "REQUEST_TIMEOUT_SECONDS", 0.2)

    def stop():
        scripted.ready_hangs = 1.0

    outcome = started_api(scripted).degraded(stop)
    assert outcome.status is Status.FAIL
    assert re.fullmatch(r"/ready unreachable \(timed out\) \ds after the database stopped; "
                        r"expected 503", outcome.detail), outcome.detail
