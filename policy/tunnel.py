"""Tunnel policy: a remotely managed tunnel's ingress ends with a catch-all rule.

cloudflared matches ingress rules top to bottom and refuses a configuration whose last rule
has a hostname or a path; a request for any other name must get a definite answer (Prism's
is `http_status:404`), not reach the API by accident. A catch-all before the end makes every
later rule unreachable, which is the same mistake the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from policy.base import Resource, is_unknown, plain
from policy.config import PolicyConfig

TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
# pulumi-cloudflare 6 calls the list `ingresses`; version 5 called it `ingressRules`.
_INGRESS_KEYS = ("config.ingresses", "config.ingressRules")


def _is_catch_all(rule: object) -> bool:
    rule = plain(rule)
    if not isinstance(rule, Mapping):
        return False
    hostname = plain(rule.get("hostname"))
    return hostname in (None, "", "*") and not plain(rule.get("path"))


def ends_with_catch_all(tunnel: Resource, config: PolicyConfig) -> Iterator[str]:
    rules = next((v for k in _INGRESS_KEYS if (v := tunnel.get(k)) is not None), None)
    if is_unknown(rules):
        return
    if not isinstance(rules, list) or not rules:
        yield "config.ingresses is empty: cloudflared needs rules ending with a catch-all"
        return
    if not _is_catch_all(rules[-1]):
        last = plain(rules[-1])
        host = plain(last.get("hostname")) if isinstance(last, Mapping) else None
        yield (
            f"the last ingress rule matches {host or 'a path'} only: add a last rule without "
            "hostname or path (service http_status:404)"
        )
    early = [i for i, rule in enumerate(rules[:-1]) if _is_catch_all(rule)]
    if early:
        yield (
            f"ingress rule {early[0] + 1} of {len(rules)} is a catch-all: the rules after it "
            "are never reached"
        )
