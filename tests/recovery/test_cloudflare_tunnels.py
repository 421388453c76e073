"""recovery/cloudflare.py's tunnel and DNS clean-up requests (the drill's teardown and sweep),
against a local server in the shape of Cloudflare's v4 API. It refuses to delete a tunnel
with active connections as Cloudflare does (terraform-provider-cloudflare#5255; error 1022)
until `DELETE .../connections` has cleaned them. No Cloudflare account is reachable here: this
checks paths, methods, the token header and the error we surface, not Cloudflare itself."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from infra.errors import BadInput
from recovery.cloudflare import CloudflareError, CloudflareTunnels

TOKEN = "cf-test-token-not-real-456"
ACCOUNT, ZONE = "a" * 32, "z" * 32
TUNNEL, OTHER = "6ff42ae2-765d-4adf-8112-31c55c1551ef", "0c4b1a57-9d5e-4f0b-a1c2-7e2f3d4c5b6a"
BASE = "/client/v4"


class _Api(BaseHTTPRequestHandler):
    state: ClassVar[dict] = {}

    def log_message(self, *args):
        pass

    def _send(self, status, result=None, errors=()):
        body = json.dumps(
            {"success": status < 300, "errors": list(errors), "messages": [], "result": result}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self):
        st = self.state
        st["requests"].append((self.command, self.path))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(403, errors=[{"code": 10000, "message": "Authentication error"}])
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        tunnels = f"{BASE}/accounts/{ACCOUNT}/cfd_tunnel"
        if self.command == "GET" and url.path == tunnels:
            found = [
                {"id": i, "name": t["name"], "deleted_at": t["deleted_at"]}
                for i, t in st["tunnels"].items()
                if (not query.get("name") or t["name"] == query["name"])
                and (query.get("is_deleted") != "false" or t["deleted_at"] is None)
            ]
            return self._send(200, found)
        if url.path.startswith(tunnels + "/"):
            tunnel_id, _, rest = url.path.removeprefix(tunnels + "/").partition("/")
            tunnel = st["tunnels"].get(tunnel_id)
            if tunnel is None:
                return self._send(404, errors=[{"code": 1003, "message": "tunnel not found"}])
            if self.command == "DELETE" and rest == "connections":
                tunnel["connections"] = 0
                return self._send(200, None)
            if self.command == "DELETE" and rest == "":
                if tunnel["connections"]:
                    return self._send(
                        400,
                        errors=[
                            {
                                "code": 1022,
                                "message": "Cannot delete tunnel because it has active connections",
                            }
                        ],
                    )
                tunnel["deleted_at"] = "2026-12-02T03:00:00Z"
                return self._send(200, {"id": tunnel_id})
        if self.command == "GET" and url.path == f"{BASE}/zones/{ZONE}":
            return self._send(200, {"id": ZONE, "name": "prismhub.io", "status": "active"})
        records = f"{BASE}/zones/{ZONE}/dns_records"
        if self.command == "GET" and url.path == records:
            found = [r for r in st["records"] if r["name"] == query.get("name")]
            return self._send(200, found)
        if self.command == "DELETE" and url.path.startswith(records + "/"):
            record_id = url.path.rsplit("/", 1)[1]
            st["records"] = [r for r in st["records"] if r["id"] != record_id]
            return self._send(200, {"id": record_id})
        return self._send(404, errors=[{"code": 7003, "message": "No route"}])

    do_GET = do_DELETE = _route


@pytest.fixture
def api():
    _Api.state = {
        "requests": [],
        "tunnels": {
            TUNNEL: {"name": "prism-drill-1-api", "connections": 4, "deleted_at": None},
            OTHER: {"name": "prism-drill-1-api", "connections": 0, "deleted_at": "2026-01-01"},
        },
        "records": [
            {"id": "r1", "name": "drill-1.prismhub.io"},
            {"id": "r2", "name": "api.prismhub.io"},
        ],
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    yield CloudflareTunnels(TOKEN, f"http://127.0.0.1:{server.server_port}{BASE}"), _Api.state
    server.shutdown()
    server.server_close()


def test_a_connected_tunnel_is_refused_until_its_connections_are_cleaned(api):
    tunnels, state = api
    assert tunnels.tunnels_named(ACCOUNT, "prism-drill-1-api") == [TUNNEL]  # not the deleted one
    with pytest.raises(CloudflareError) as refused:
        tunnels.delete_tunnel(ACCOUNT, TUNNEL)
    message = str(refused.value)
    assert "400 Cannot delete tunnel because it has active connections" in message
    assert TOKEN not in message and "\n" not in message
    tunnels.clean_connections(ACCOUNT, TUNNEL)
    tunnels.delete_tunnel(ACCOUNT, TUNNEL)
    assert tunnels.tunnels_named(ACCOUNT, "prism-drill-1-api") == []
    assert ("DELETE", f"{BASE}/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}/connections") in state[
        "requests"
    ]


def test_only_the_drill_hostnames_record_is_found_and_deleted(api):
    tunnels, state = api
    assert tunnels.dns_records(ZONE, "drill-1.prismhub.io") == ["r1"]
    tunnels.delete_dns_record(ZONE, "r1")
    assert [r["id"] for r in state["records"]] == ["r2"]
    assert tunnels.dns_records(ZONE, "drill-1.prismhub.io") == []


def test_without_a_token_the_drill_is_refused_with_the_fix(monkeypatch):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    with pytest.raises(BadInput, match=r"CLOUDFLARE_API_TOKEN.*Tunnel:Edit.*--no-tunnel"):
        CloudflareTunnels()


def test_the_zone_is_named_by_cloudflare(api):
    tunnels, state = api
    assert tunnels.zone_name(ZONE) == "prismhub.io"
    assert ("GET", f"{BASE}/zones/{ZONE}") in state["requests"]
