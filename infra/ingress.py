"""cloudflared's ingress rules, checked before a tunnel configuration is declared.

The rules cloudflared applies when it loads ingress (cloudflared `ingress/ingress.go`,
`validate` and `validateHostname`), so a configuration it would refuse fails here first:
- at least one rule; the last one matches everything (no hostname, or `*`, and no path), and
  only the last one does;
- a hostname carries no port, and a wildcard only as the leading `*.` of a subdomain pattern;
- a service is `http_status:<code>`, `hello_world`, `bastion`, `unix:<path>`,
  `unix+tls:<path>`, or a URL with a known scheme and a host, and no path (cloudflared
  forwards the request's own path);
- a path is a regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

URL_SCHEMES = ("http", "https", "tcp", "ssh", "rdp", "smb", "ws", "wss")
NAMED_SERVICES = ("hello_world", "hello-world", "helloworld", "bastion", "socks5")


@dataclass(frozen=True)
class IngressRule:
    service: str
    hostname: str | None = None
    path: str | None = None


def _service_problem(service: str) -> str | None:
    if service.startswith(("unix:", "unix+tls:")):
        return None if service.partition(":")[2] else "names no socket path"
    if service.startswith("http_status:"):
        code = service.removeprefix("http_status:")
        ok = code.isdigit() and 100 <= int(code) <= 599
        return None if ok else "needs an HTTP status code, e.g. http_status:404"
    if service in NAMED_SERVICES:
        return None
    try:
        url = urlsplit(service)
        host = url.hostname
    except ValueError:
        return "is not a URL"
    if url.scheme not in URL_SCHEMES or not host:
        return f"needs a scheme ({', '.join(URL_SCHEMES)}) and a host"
    if url.path not in ("", "/"):
        return "has a path; cloudflared forwards the request's own path"
    return None


def _hostname_problem(hostname: str) -> str | None:
    if re.search(r":\d+$", hostname):
        return "cannot contain a port"
    if "*" in hostname and not (hostname == "*" or re.fullmatch(r"\*\.[^*]+", hostname)):
        return 'may use a wildcard only as a leading "*." (e.g. *.example.com)'
    return None


def ingress_problems(rules: Sequence[IngressRule]) -> list[str]:
    """Every rule cloudflared would refuse, as `rule N: problem`; empty when valid."""
    if not rules:
        return ["no ingress rules: cloudflared needs at least the catch-all"]
    problems = []
    last = len(rules) - 1
    for i, rule in enumerate(rules):
        where = f"rule {i + 1} ({rule.hostname or 'no hostname'})"
        if (problem := _service_problem(rule.service)) is not None:
            problems.append(f"{where}: service {rule.service!r} {problem}")
        if rule.hostname and (problem := _hostname_problem(rule.hostname)) is not None:
            problems.append(f"{where}: hostname {problem}")
        if rule.path:
            try:
                re.compile(rule.path)
            except re.error as exc:
                problems.append(f"{where}: path is not a valid regular expression ({exc})")
        catch_all = rule.hostname in (None, "", "*") and not rule.path
        if i == last and not catch_all:
            problems.append(f"{where}: the last rule must match everything (no hostname or path)")
        if i < last and catch_all:
            problems.append(f"{where}: matches everything, so the rules after it never apply")
    return problems
