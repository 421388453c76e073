"""Moving a hostname between Cloudflare tunnels: the cutover of `prism-dr recover`.

A cutover is two changes: the recovery tunnel learns to serve the production hostname (an
ingress rule ahead of its catch-all), then the production hostname's proxied CNAME points at
the recovery tunnel. Undoing reverses both. `Cutover` is the interface the runbook uses;
`CloudflareApi` implements it over Cloudflare's v4 REST API with a token from
CLOUDFLARE_API_TOKEN. It cannot run here (no Cloudflare account): it is kept to plain
requests and tested only through a fake.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any, Protocol

from infra.errors import BadInput

API = "https://api.cloudflare.com/client/v4"
TOKEN_ENV = "CLOUDFLARE_API_TOKEN"


def tunnel_target(tunnel_id: str) -> str:
    return f"{tunnel_id}.cfargotunnel.com"


class Cutover(Protocol):
    def cname_target(self, zone_id: str, hostname: str) -> str:
        """Where the hostname's CNAME points now."""
        ...

    def point_cname(self, zone_id: str, hostname: str, target: str) -> None:
        """Point the existing proxied CNAME of `hostname` at `target`."""
        ...

    def set_ingress(
        self, account_id: str, tunnel_id: str, hostname: str, service: str | None
    ) -> None:
        """Serve `hostname` through the tunnel to `service`; None removes the hostname's rule."""
        ...


class CloudflareError(BadInput):
    """Cloudflare refused or could not be reached; nothing further was changed."""


class CloudflareApi:
    def __init__(self, token: str | None = None, base_url: str = API) -> None:
        token = token or os.environ.get(TOKEN_ENV, "")
        if not token:
            raise BadInput(
                f"--cutover needs {TOKEN_ENV}: a Cloudflare API token with DNS:Edit on the zone "
                "and Cloudflare Tunnel:Edit on the account"
            )
        self._token = token  # never logged, never in a message
        self._base = base_url.rstrip("/")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self._base}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as error:
            try:
                errors = json.load(error).get("errors") or []
            except ValueError:
                errors = []
            first = errors[0].get("message") if errors else error.reason
            raise CloudflareError(
                f"Cloudflare {method} {path.split('?')[0]}: {error.code} {first}"
            ) from None
        except OSError as error:
            raise CloudflareError(f"cannot reach Cloudflare: {error}") from None
        if not payload.get("success", False):
            raise CloudflareError(
                f"Cloudflare {method} {path.split('?')[0]} failed: {payload.get('errors')}"
            )
        return payload.get("result")

    def verify_token(self) -> str:
        """The token's status (`active`, `disabled`, `expired`): GET /user/tokens/verify, which
        any valid token may call (Cloudflare API v4, "Verify Token"). It does not list what
        the token may do."""
        return str((self._call("GET", "/user/tokens/verify") or {}).get("status", "unknown"))

    def _record(self, zone_id: str, hostname: str) -> dict[str, Any]:
        found = self._call("GET", f"/zones/{zone_id}/dns_records?type=CNAME&name={hostname}")
        if not found:
            raise CloudflareError(f"no CNAME record for {hostname} in zone {zone_id}")
        return found[0]

    def cname_target(self, zone_id: str, hostname: str) -> str:
        return str(self._record(zone_id, hostname)["content"])

    def point_cname(self, zone_id: str, hostname: str, target: str) -> None:
        record = self._record(zone_id, hostname)
        self._call("PATCH", f"/zones/{zone_id}/dns_records/{record['id']}", {"content": target})

    def set_ingress(
        self, account_id: str, tunnel_id: str, hostname: str, service: str | None
    ) -> None:
        path = f"/accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations"
        config = (self._call("GET", path) or {}).get("config") or {}
        config["ingress"] = with_ingress(config.get("ingress") or [], hostname, service)
        self._call("PUT", path, {"config": config})


def with_ingress(
    rules: list[dict[str, Any]], hostname: str, service: str | None
) -> list[dict[str, Any]]:
    """`rules` with `hostname`'s rule replaced (or removed), kept ahead of the catch-all."""
    kept = [r for r in rules if r.get("hostname") != hostname]
    if service is None:
        return kept
    at = next((i for i, r in enumerate(kept) if not r.get("hostname")), len(kept))
    return [*kept[:at], {"hostname": hostname, "service": service}, *kept[at:]]


# -- what a drill leaves in Cloudflare: its tunnel and its DNS record ---------------------------


def drill_tunnel_name(stack: str) -> str:
    """The name infra/tunnel.py gives a stack's tunnel."""
    return f"prism-{stack}-api"


class TunnelCleanup(Protocol):
    """Finding and removing a drill's tunnel and DNS record (the sweep and `drill reap --run`),
    and the zone's name the drill hostname goes under."""

    def zone_name(self, zone_id: str) -> str: ...

    def tunnels_named(self, account_id: str, name: str) -> list[str]:
        """Ids of the account's live (not deleted) tunnels with this name."""
        ...

    def clean_connections(self, account_id: str, tunnel_id: str) -> None:
        """Drop the tunnel's connections: Cloudflare refuses to delete a connected tunnel."""
        ...

    def delete_tunnel(self, account_id: str, tunnel_id: str) -> None: ...

    def dns_records(self, zone_id: str, hostname: str) -> list[str]:
        """Ids of the zone's records named `hostname`."""
        ...

    def delete_dns_record(self, zone_id: str, record_id: str) -> None: ...


class CloudflareTunnels(CloudflareApi):
    """TunnelCleanup over the v4 API (developers.cloudflare.com/api: Cloudflare Tunnel, DNS
    Records). The token needs Cloudflare Tunnel:Edit and DNS:Edit."""

    def __init__(self, token: str | None = None, base_url: str = API) -> None:
        if not (token or os.environ.get(TOKEN_ENV)):
            raise BadInput(
                f"the drill's tunnel needs {TOKEN_ENV}: a Cloudflare API token with Cloudflare "
                "Tunnel:Edit on the account and DNS:Edit on the zone (or drill without the tunnel: "
                "--no-tunnel)"
            )
        super().__init__(token, base_url)

    def zone_name(self, zone_id: str) -> str:
        """The zone's own name (GET /zones/{zone_id}), e.g. `example.com`."""
        return str((self._call("GET", f"/zones/{zone_id}") or {})["name"])

    def tunnels_named(self, account_id: str, name: str) -> list[str]:
        found = self._call("GET", f"/accounts/{account_id}/cfd_tunnel?name={name}&is_deleted=false")
        return [str(t["id"]) for t in found or [] if t.get("name") == name]

    def clean_connections(self, account_id: str, tunnel_id: str) -> None:
        self._call("DELETE", f"/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connections")

    def delete_tunnel(self, account_id: str, tunnel_id: str) -> None:
        self._call("DELETE", f"/accounts/{account_id}/cfd_tunnel/{tunnel_id}")

    def dns_records(self, zone_id: str, hostname: str) -> list[str]:
        found = self._call("GET", f"/zones/{zone_id}/dns_records?name={hostname}")
        return [str(r["id"]) for r in found or [] if r.get("name") == hostname]

    def delete_dns_record(self, zone_id: str, record_id: str) -> None:
        self._call("DELETE", f"/zones/{zone_id}/dns_records/{record_id}")
