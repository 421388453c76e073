"""The tunnel policy on the declared ingress (pulumi-cloudflare 6 shape) and on broken ones."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE

from tests.policy.conftest import check

CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
API = {"hostname": "api.example.com", "service": "http://localhost:8080"}
CATCH_ALL = {"service": "http_status:404"}


@pytest.fixture(scope="module")
def declared(prod_declared: dict) -> dict[str, Any]:
    return prod_declared[(CONFIG, "api-tunnel-config")]


def _with(declared: dict, rules: Any, key: str = "ingresses") -> dict[str, Any]:
    return {**declared, "config": {key: rules}}


def test_declared_ingress_passes(declared: dict, staging_declared: dict) -> None:
    assert declared["config"]["ingresses"][-1] == CATCH_ALL
    assert check("tunnel-catch-all-last", CONFIG, declared) == []
    staging = staging_declared[(CONFIG, "api-tunnel-config")]
    assert check("tunnel-catch-all-last", CONFIG, staging, stack="staging") == []


def test_last_rule_with_hostname_fails(declared: dict) -> None:
    [msg] = check("tunnel-catch-all-last", CONFIG, _with(declared, [API]))
    assert "matches api.example.com only" in msg


def test_last_rule_with_path_fails(declared: dict) -> None:
    [msg] = check(
        "tunnel-catch-all-last", CONFIG, _with(declared, [API, {**CATCH_ALL, "path": "/x"}])
    )
    assert "matches a path only" in msg


def test_empty_ingress_fails(declared: dict) -> None:
    [msg] = check("tunnel-catch-all-last", CONFIG, _with(declared, []))
    assert "is empty" in msg
    [msg] = check("tunnel-catch-all-last", CONFIG, {**declared, "config": {}})
    assert "is empty" in msg


def test_catch_all_before_the_end_fails(declared: dict) -> None:
    [msg] = check("tunnel-catch-all-last", CONFIG, _with(declared, [CATCH_ALL, API, CATCH_ALL]))
    assert "rule 1 of 3 is a catch-all" in msg


def test_wildcard_hostname_counts_as_catch_all(declared: dict) -> None:
    rules = [API, {"hostname": "*", "service": "http_status:404"}]
    assert check("tunnel-catch-all-last", CONFIG, _with(declared, rules)) == []


def test_provider_5_shape_is_read_too(declared: dict) -> None:
    assert (
        check("tunnel-catch-all-last", CONFIG, _with(declared, [API, CATCH_ALL], "ingressRules"))
        == []
    )
    assert check("tunnel-catch-all-last", CONFIG, _with(declared, [API], "ingressRules"))


def test_unknown_ingress_is_not_judged(declared: dict) -> None:
    assert check("tunnel-catch-all-last", CONFIG, _with(declared, UNKNOWN_ARRAY_VALUE)) == []


def test_the_findings_say_what_cloudflared_needs(declared: dict) -> None:
    assert check("tunnel-catch-all-last", CONFIG, _with(declared, [])) == [
        "config.ingresses is empty: cloudflared needs rules ending with a catch-all"
    ]
    assert check("tunnel-catch-all-last", CONFIG, _with(declared, [CATCH_ALL, API])) == [
        "the last ingress rule matches api.example.com only: add a last rule without hostname "
        "or path (service http_status:404)",
        "ingress rule 1 of 2 is a catch-all: the rules after it are never reached",
    ]


def test_a_catch_all_just_before_the_last_rule_is_found(declared: dict) -> None:
    rules = [API, CATCH_ALL, CATCH_ALL]
    [msg] = check("tunnel-catch-all-last", CONFIG, _with(declared, rules))
    assert msg.startswith("ingress rule 2 of 3 is a catch-all")


def test_an_empty_hostname_counts_as_catch_all(declared: dict) -> None:
    rules = [API, {"hostname": "", "service": "http_status:404"}]
    assert check("tunnel-catch-all-last", CONFIG, _with(declared, rules)) == []


def test_a_last_rule_that_is_not_a_rule_is_no_catch_all(declared: dict) -> None:
    [msg] = check("tunnel-catch-all-last", CONFIG, _with(declared, [API, "http_status:404"]))
    assert msg.startswith("the last ingress rule matches a path only")
