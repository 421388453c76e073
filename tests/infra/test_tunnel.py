"""infra/tunnel.py: the tunnel, its ingress rules, the DNS record and the token for the host."""

from __future__ import annotations

from infra.offline import OfflineRun, Secret

TUNNEL = "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"
TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
DNS = "cloudflare:index/dnsRecord:DnsRecord"
HOSTNAMES = {"staging": "api.staging.example.com", "prod": "api.example.com"}


def test_remotely_managed_tunnel_without_a_secret_of_ours(each_stack: OfflineRun) -> None:
    tunnel = each_stack.one(TUNNEL)
    assert tunnel.inputs["configSrc"] == "cloudflare"
    assert tunnel.inputs["name"] == f"prism-{each_stack.stack}-api"
    # Cloudflare generates a remotely managed tunnel's secret; none is kept in state.
    assert "tunnelSecret" not in tunnel.inputs
    assert each_stack.of_type("random:index/randomBytes:RandomBytes") == []


def test_token_parameter_uses_the_stack_key(each_stack: OfflineRun) -> None:
    token = each_stack.one("aws:ssm/parameter:Parameter", "api-tunnel-token")
    key = each_stack.one("aws:kms/key:Key", "runtime-secrets-key")
    assert token.inputs["keyId"] == key.outputs["arn"]


def test_ingress_goes_to_the_api_port_then_404(each_stack: OfflineRun) -> None:
    config = each_stack.one(TUNNEL_CONFIG)
    assert config.inputs["tunnelId"] == each_stack.one(TUNNEL).id
    assert config.inputs["config"]["ingresses"] == [
        {"hostname": HOSTNAMES[each_stack.stack], "service": "http://localhost:8080"},
        {"service": "http_status:404"},
    ]


def test_ingress_follows_the_api_port() -> None:
    from tests.infra.conftest import run_stack

    run = run_stack("staging", {"prism-infra:apiHost.port": 9000})
    ingress = run.one(TUNNEL_CONFIG).inputs["config"]["ingresses"]
    assert ingress[0]["service"] == "http://localhost:9000"
    assert ingress[-1] == {"service": "http_status:404"}


def test_proxied_cname_to_the_tunnel(each_stack: OfflineRun) -> None:
    record = each_stack.one(DNS).inputs
    tunnel_id = each_stack.one(TUNNEL).id
    assert record["type"] == "CNAME"
    assert record["name"] == HOSTNAMES[each_stack.stack]
    assert record["content"] == f"{tunnel_id}.cfargotunnel.com"
    assert record["proxied"] is True
    assert record["ttl"] == 1
    assert record["zoneId"] == "0" * 32
    assert each_stack.outputs["tunnelId"] == tunnel_id
    assert each_stack.outputs["apiHostname"] == HOSTNAMES[each_stack.stack]


def test_token_stored_as_securestring_for_the_host(each_stack: OfflineRun) -> None:
    token = each_stack.one("aws:ssm/parameter:Parameter", "api-tunnel-token").inputs
    tunnel_id = each_stack.one(TUNNEL).id
    assert token["name"] == f"/prism/{each_stack.stack}/tunnel/token"
    assert token["type"] == "SecureString"
    assert token["value"] == Secret(f"offline-tunnel-token-{tunnel_id}")
