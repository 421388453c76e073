"""A stand-in for Prism's Go API, for drills without the real one.

It answers the two endpoints a drill probes, with the seed's degraded-mode contract:
`/health` is 200 while the process runs; `/ready` is 200 only while `SELECT 1` on
DATABASE_URL succeeds within about two seconds, else 503.

    DATABASE_URL=postgresql://... python -m drills.local.standin_api --port 8080
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

READY_TIMEOUT_SECONDS = 2


def database_ready(dsn: str) -> tuple[bool, str]:
    """Whether the database answers `SELECT 1` in time, and a reason free of secrets."""
    try:
        with psycopg.connect(
            dsn, connect_timeout=READY_TIMEOUT_SECONDS, application_name="prism-standin-api",
            options=f"-c statement_timeout={READY_TIMEOUT_SECONDS * 1000}",
        ) as conn:
            conn.execute("SELECT 1")
        return True, "database reachable"
    except psycopg.Error as err:
        return False, f"database unavailable ({type(err).__name__})"


class Handler(BaseHTTPRequestHandler):
    server_version = "prism-standin-api"
    dsn: str = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/health":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        elif path == "/ready":
            ok, reason = database_ready(self.dsn)
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            self._reply(status, {"status": "ready" if ok else "unavailable", "reason": reason})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _reply(self, status: HTTPStatus, body: dict[str, str]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:
        # Request lines and statuses only: DATABASE_URL never reaches a log.
        sys.stderr.write(f"standin-api: {format % args}\n")


def serve(port: int, dsn: str, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"dsn": dsn})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print("standin-api: set DATABASE_URL to the database to serve", file=sys.stderr)
        return 2
    server = serve(args.port, dsn, args.host)

    def stop(signum, frame) -> None:
        # shutdown() waits for serve_forever, so it must run outside the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"standin-api listening on http://{args.host}:{server.server_port}", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
