"""A local stand-in for Cloudflare's GET /client/v4/user/tokens/verify, answering in the shape
Cloudflare documents (developers.cloudflare.com/fundamentals/api/troubleshooting, "The token is
not verified"; API reference "Verify Token": status active | disabled | expired). A token it
does not know gets Cloudflare's 401 envelope with error 1000 "Invalid API Token"."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def cloudflare_verify(tokens: Mapping[str, str]) -> Iterator[str]:
    """Serve token → status; yields the API base URL (http://127.0.0.1:<port>/client/v4)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if self.path != "/client/v4/user/tokens/verify":
                status, body = 404, {"success": False, "errors": [{"code": 7003}], "result": None}
            elif token in tokens:
                result = {"id": "f267e341f3dd4697bd3b9f71dd96247f", "status": tokens[token]}
                status, body = (
                    200,
                    {"success": True, "errors": [], "messages": [], "result": result},
                )
            else:
                errors = [{"code": 1000, "message": "Invalid API Token"}]
                status, body = 401, {"success": False, "errors": errors, "result": None}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/client/v4"
    finally:
        server.shutdown()
        server.server_close()
