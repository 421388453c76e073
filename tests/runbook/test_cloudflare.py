"""recovery/cloudflare.py's requests, against a local server answering in the shape of
Cloudflare's v4 API (DNS records, remotely-managed tunnel configurations). No Cloudflare
account is reachable here: this checks the paths, methods, bodies and token header we send,
not Cloudflare's behaviour."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from infra.errors import BadInput
from recovery.cloudflare import CloudflareApi, CloudflareError, with_ingress

TOKEN = "cf-test-token-not-real-123"
ZONE, ACCOUNT, TUNNEL = "z" * 32, "a" * 32, "6ff42ae2-765d-4adf-8112-31c55c1551ef"


class _Cloudflare(BaseHTTPRequestHandler):
    state: ClassVar[dict] = {}

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        st = self.state
        st["requests"].append((self.command, self.path))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(
                403,
                {
                    "success": False,
                    "errors": [{"code": 10000, "message": "Authentication error"}],
                    "messages": [],
                    "result": None,
                },
            )
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        records = f"/client/v4/zones/{ZONE}/dns_records"
        config = f"/client/v4/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}/configurations"
        if self.command == "GET" and self.path.startswith(records + "?"):
            found = [r for r in st["records"] if f"name={r['name']}" in self.path]
            self._send(200, {"success": True, "errors": [], "messages": [], "result": found})
        elif self.command == "PATCH" and self.path.startswith(records + "/"):
            record = next(r for r in st["records"] if r["id"] == self.path.rsplit("/", 1)[1])
            record.update(body)
            self._send(200, {"success": True, "errors": [], "messages": [], "result": record})
        elif self.path == config and self.command == "GET":
            self._send(
                200,
                {
                    "success": True,
                    "errors": [],
                    "messages": [],
                    "result": {
                        "account_id": ACCOUNT,
                        "tunnel_id": TUNNEL,
                        "version": 3,
                        "source": "cloudflare",
                        "config": st["config"],
                    },
                },
            )
        elif self.path == config and self.command == "PUT":
            st["config"] = body["config"]
            self._send(200, {"success": True, "errors": [], "messages": [], "result": body})
        else:
            self._send(
                404,
                {
                    "success": False,
                    "errors": [{"code": 7003, "message": "Could not route"}],
                    "messages": [],
                    "result": None,
                },
            )

    do_GET = do_PATCH = do_PUT = _handle

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def cloudflare():
    _Cloudflare.state = {
        "requests": [],
        "records": [
            {
                "id": "rec1",
                "type": "CNAME",
                "name": "api.prismhub.io",
                "content": "old.cfargotunnel.com",
                "proxied": True,
            }
        ],
        "config": {"ingress": [{"service": "http_status:404"}], "warp-routing": {"enabled": False}},
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Cloudflare)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/client/v4", _Cloudflare.state
    server.shutdown()
    server.server_close()


def test_point_and_ingress_requests(cloudflare):
    url, state = cloudflare
    api = CloudflareApi(TOKEN, base_url=url)
    assert api.cname_target(ZONE, "api.prismhub.io") == "old.cfargotunnel.com"
    api.point_cname(ZONE, "api.prismhub.io", f"{TUNNEL}.cfargotunnel.com")
    assert state["records"][0]["content"] == f"{TUNNEL}.cfargotunnel.com"
    assert state["records"][0]["proxied"] is True  # only the content changes
    api.set_ingress(ACCOUNT, TUNNEL, "api.prismhub.io", "http://localhost:8080")
    assert state["config"]["ingress"] == [
        {"hostname": "api.prismhub.io", "service": "http://localhost:8080"},
        {"service": "http_status:404"},
    ]
    assert state["config"]["warp-routing"] == {"enabled": False}  # the rest is kept
    api.set_ingress(ACCOUNT, TUNNEL, "api.prismhub.io", None)
    assert state["config"]["ingress"] == [{"service": "http_status:404"}]
    methods = [m for m, _ in state["requests"]]
    assert methods == ["GET", "GET", "PATCH", "GET", "PUT", "GET", "PUT"]


def test_refusals_are_one_line_without_the_token(cloudflare):
    url, _ = cloudflare
    with pytest.raises(CloudflareError) as refused:
        CloudflareApi("wrong-token", base_url=url).cname_target(ZONE, "api.prismhub.io")
    assert "403 Authentication error" in str(refused.value) and "wrong-token" not in str(
        refused.value
    )
    with pytest.raises(CloudflareError, match=r"no CNAME record for www\.prismhub\.io"):
        CloudflareApi(TOKEN, base_url=url).point_cname(ZONE, "www.prismhub.io", "x")


def test_a_missing_token_is_bad_input(monkeypatch):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    with pytest.raises(BadInput, match="CLOUDFLARE_API_TOKEN"):
        CloudflareApi()


def test_with_ingress_replaces_and_keeps_the_catch_all_last():
    rules = [
        {"hostname": "a.x.io", "service": "http://localhost:1"},
        {"service": "http_status:404"},
    ]
    updated = with_ingress(rules, "a.x.io", "http://localhost:2")
    assert updated == [
        {"hostname": "a.x.io", "service": "http://localhost:2"},
        {"service": "http_status:404"},
    ]
    assert with_ingress([], "b.x.io", "http://localhost:3") == [
        {"hostname": "b.x.io", "service": "http://localhost:3"}
    ]
