"""ApiTunnel: the only public way in. Cloudflare terminates TLS and forwards through a tunnel
that cloudflared on the API host dials out, so the host needs no inbound port.

The tunnel is remotely managed (`config_src = "cloudflare"`): its ingress rules live here,
and the host only needs the tunnel token, which goes to SSM as a SecureString. Replacing the
host (full DR, §4.2 of the spec) therefore reconnects the tunnel with no Cloudflare change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_cloudflare as cloudflare

from infra.config import ConfigError, TunnelConfig, full_key, resource_tags
from infra.ingress import IngressRule, ingress_problems
from infra.options import child_options

CATCH_ALL_SERVICE = "http_status:404"


def tunnel_cname_target(tunnel_id: str) -> str:
    return f"{tunnel_id}.cfargotunnel.com"


@dataclass(frozen=True)
class ApiTunnelArgs:
    settings: TunnelConfig
    stack: str
    api_port: int
    token_parameter: str  # SSM name the host reads the token from
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    # KMS key of the token's SecureString (the stack's RuntimeSecrets key); None: aws/ssm.
    key_id: pulumi.Input[str] | None = None


class ApiTunnel(pulumi.ComponentResource):
    tunnel_id: pulumi.Output[str]
    hostname: str

    def __init__(
        self, name: str, args: ApiTunnelArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("prism:infra:ApiTunnel", name, None, opts)
        s = args.settings
        child = child_options(self, opts)

        # No tunnel_secret: pulumi-cloudflare 6 documents it as the password of a *locally*
        # managed tunnel; for a remotely managed one Cloudflare generates the secret itself, and
        # a write-only secret kept in state only invites drift.
        tunnel = cloudflare.ZeroTrustTunnelCloudflared(
            f"{name}-tunnel",
            account_id=s.account_id,
            name=f"prism-{args.stack}-api",
            config_src="cloudflare",
            opts=child,
        )
        rules = [
            IngressRule(hostname=s.hostname, service=f"http://localhost:{args.api_port}"),
            # cloudflared requires a last rule without hostname; anything else is a 404.
            IngressRule(service=CATCH_ALL_SERVICE),
        ]
        problems = ingress_problems(rules)
        if problems:  # cloudflared would refuse the configuration: say so before declaring it
            raise ConfigError(f"{full_key('tunnel')}.hostname", f"gives an ingress {problems[0]}")
        cloudflare.ZeroTrustTunnelCloudflaredConfig(
            f"{name}-config",
            account_id=s.account_id,
            tunnel_id=tunnel.id,
            config=cloudflare.ZeroTrustTunnelCloudflaredConfigConfigArgs(
                ingresses=[
                    cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(
                        hostname=r.hostname, service=r.service, path=r.path
                    )
                    for r in rules
                ]
            ),
            opts=child,
        )
        cloudflare.DnsRecord(
            f"{name}-dns",
            zone_id=s.zone_id,
            name=s.hostname,
            type="CNAME",
            content=tunnel.id.apply(tunnel_cname_target),
            proxied=True,
            ttl=1,  # "automatic": the only TTL a proxied record takes
            # DNS record tags need a paid plan; the comment carries the ownership instead.
            comment=f"prism:stack={args.stack} prism:component=api-tunnel (pulumi)",
            opts=child,
        )

        token = cloudflare.get_zero_trust_tunnel_cloudflared_token_output(
            account_id=s.account_id,
            tunnel_id=tunnel.id,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        aws.ssm.Parameter(
            f"{name}-token",
            name=args.token_parameter,
            type="SecureString",
            key_id=args.key_id,
            value=pulumi.Output.secret(token.token),
            description=f"cloudflared token of tunnel prism-{args.stack}-api",
            tags=resource_tags(args.stack, "api-tunnel", args.extra_tags),
            opts=child,
        )

        self.tunnel_id = tunnel.id
        self.hostname = s.hostname
        self.register_outputs({"tunnel_id": self.tunnel_id, "hostname": self.hostname})
